"""The server's pages (``/``, ``/docs``) load nothing from the internet, in a real browser too."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from scopeml import __version__
from scopeml.server.app import create_app
from scopeml.server.config import ServerConfig
from scopeml.server.pages import add_pages
from tests.browser.plugin import LiveServer, RecordedPage, pixel_std, serve_app

# A blank page has a pixel standard deviation of 0; our pages measure in the tens.
MIN_PIXEL_STD = 5.0


class Links(HTMLParser):
    """Every ``src``/``href`` in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def links(page: str) -> list[str]:
    parser = Links()
    parser.feed(page)
    return parser.urls


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    return TestClient(create_app(ServerConfig(tmp_path_factory.mktemp("pages"))))


# --- without a browser --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/docs"])
def test_pages_link_only_to_this_server(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    urls = links(response.text)
    assert urls, "a page with no links or assets is not the page we mean"
    assert [url for url in urls if not url.startswith("/")] == []
    assert "default-src 'self'" in response.headers["content-security-policy"]
    for url in urls:  # every asset and link the page names is served (the metrics one with 401)
        assert client.get(url).status_code in (200, 401), url


def test_docs_scripts_are_served_from_the_package(client: TestClient) -> None:
    page = client.get("/docs").text
    assert "cdn." not in page and "https://" not in page
    script = client.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
    css = client.get("/static/swagger-ui/swagger-ui.css")
    assert css.headers["content-type"].startswith("text/css") and ".swagger-ui" in css.text
    assert '"validatorUrl": null' in page


def test_favicon_is_our_own_svg(client: TestClient) -> None:
    for path in ("/favicon.ico", "/static/favicon.svg"):
        response = client.get(path)
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert b"<title>scopeml</title>" in response.content


def test_landing_page_says_how_to_start(client: TestClient) -> None:
    page = client.get("/", headers={"host": "scope.example:8123"}).text
    assert f"scopeml server {__version__}" in page
    assert "Health: <span" in page and ">ok<" in page
    assert "scopeml admin create-token USER" in page
    assert 'Client("http://scope.example:8123", "sml_…")' in page


def test_landing_page_escapes_the_host_header(client: TestClient) -> None:
    page = client.get("/", headers={"host": 'x"><script>alert(1)</script>'}).text
    assert "<script>" not in page


def test_pages_are_open_and_outside_the_schema(client: TestClient) -> None:
    """Pages and schema describe the API and need no token; the data routes still do."""
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/redoc").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/", "/docs", "/favicon.ico"} & set(paths)
    assert client.get("/models").status_code == 401


def test_add_pages_refuses_an_app_with_cdn_docs() -> None:
    with pytest.raises(ValueError, match="docs_url=None"):
        add_pages(FastAPI())


# --- in Chromium --------------------------------------------------------------------------------


def test_docs_render_operations_offline(browser_page: RecordedPage) -> None:
    page = browser_page.page
    page.goto("/docs")
    page.locator(".opblock").first.wait_for()
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    tags = page.locator(".opblock-tag").all_inner_texts()
    assert any(path.startswith("/models") for path in paths), paths
    assert any(path.startswith("/jobs") for path in paths), paths
    assert {"models", "jobs"} <= {tag.split()[0] for tag in tags if tag.strip()}
    shot = browser_page.screenshot("docs")
    assert pixel_std(shot) > MIN_PIXEL_STD
    assert browser_page.offsite_requests() == []
    assert any(
        url.endswith("/static/swagger-ui/swagger-ui-bundle.js") for url in browser_page.requests
    )
    assert any(url.endswith("/openapi.json") for url in browser_page.requests)
    assert browser_page.console_errors == [] and browser_page.page_errors == []


def test_docs_try_it_out_with_a_token(browser_page: RecordedPage, live_server: LiveServer) -> None:
    """Authorize with a token, run GET /models: the page talks to its own server only."""
    page = browser_page.page
    page.goto("/docs")
    page.locator("button.authorize").first.click()
    page.locator(".modal-ux input").first.fill(live_server.token)
    page.locator(".modal-ux button.authorize").first.click()
    page.locator(".modal-ux button.btn-done").first.click()
    operation = page.locator(".opblock-get", has=page.locator('[data-path="/models"]')).first
    operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    operation.locator(".execute").click()
    status = operation.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    assert browser_page.offsite_requests() == []
    assert browser_page.console_errors == [] and browser_page.page_errors == []


def test_landing_page_offline(browser_page: RecordedPage) -> None:
    page = browser_page.page
    page.goto("/")
    assert page.locator("h1").inner_text() == f"scopeml server {__version__}"
    assert page.locator("#health").inner_text().startswith("Health: ok")
    shot = browser_page.screenshot("landing")
    assert pixel_std(shot) > MIN_PIXEL_STD
    page.get_by_role("link", name="API documentation").click()
    page.locator(".opblock").first.wait_for()
    assert page.url.endswith("/docs")
    assert browser_page.offsite_requests() == []
    assert browser_page.console_errors == [] and browser_page.page_errors == []


def test_checks_catch_fastapis_cdn_docs(browser_page: RecordedPage, tmp_path: Path) -> None:
    """The same checks on a stock FastAPI app (docs from a CDN): requests leave, page blank."""
    stock = FastAPI()
    with serve_app(stock) as url:
        browser_page.page.goto(f"{url}/docs")
        browser_page.page.wait_for_load_state("load")
        shot = browser_page.screenshot("stock-docs")
    offsite = browser_page.offsite_requests(url)
    assert any("cdn.jsdelivr.net" in request for request in offsite), offsite
    assert pixel_std(shot) < MIN_PIXEL_STD
