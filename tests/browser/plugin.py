"""Browser-test fixtures: a live scopeml server and a Chromium page that records its requests.

``live_server`` runs the real application under uvicorn in a thread on a free 127.0.0.1 port.
``browser_page`` is a fresh Playwright page in Debian's Chromium (``/usr/bin/chromium``;
Playwright's own browser download cannot work offline), bound to that server: it records every
request and console message, and aborts any request that would leave the machine, so a page that
reaches for the internet fails its test here as it would break on an offline network.

Without Playwright or Chromium the browser tests skip with the reason; with
``SCOPEML_REQUIRE_BROWSER=1`` (set by ``.ci/run``) they fail instead, so CI cannot go green on
a missing install.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT_S = 30.0
PAGE_TIMEOUT_MS = 30_000
# Requests the browser may really send (recorded all the same); anything else is aborted.
LOOPBACK = re.compile(r"^(https?://(127\.0\.0\.1|localhost)(:\d+)?/|data:|blob:|about:)")


@dataclass(frozen=True)
class LiveServer:
    """A running server: its base URL, data directory and one user's API token."""

    url: str
    data_dir: Path
    token: str


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread on a free loopback port; yield its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"uvicorn did not start within {START_TIMEOUT_S} s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT_S)
        sock.close()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real application (``create_app``) on 127.0.0.1, with a token for user ``browser``."""
    from scopeml.server.app import create_app
    from scopeml.server.config import ServerConfig
    from scopeml.server.database import Database

    data_dir = tmp_path_factory.mktemp("live-server")
    db = Database(data_dir / "scopeml.db")
    token = db.create_token("browser")
    db.close()
    with serve_app(create_app(ServerConfig(data_dir))) as url:
        yield LiveServer(url, data_dir, token)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class RecordedPage:
    """A Playwright page with what it asked for: request URLs, console errors, page errors."""

    page: Any
    origin: str
    screenshots: Path
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def offsite_requests(self, origin: str | None = None) -> list[str]:
        """Requests to anywhere but ``origin`` (default: the live server); data: URLs are local."""
        home = origin or self.origin
        return [
            url
            for url in self.requests
            if not url.startswith(("data:", "blob:", "about:")) and _origin(url) != home
        ]

    def screenshot(self, name: str, **options: Any) -> Path:
        """Save a PNG under the test's temporary folder and return its path."""
        path = self.screenshots / f"{name}.png"
        self.page.screenshot(path=str(path), **options)
        return path


def pixel_std(png: Path) -> float:
    """Standard deviation of a screenshot's pixel values: 0 for a blank page.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> path = Path(tempfile.mkdtemp()) / "white.png"
    >>> Image.new("RGB", (8, 8), "white").save(path)
    >>> pixel_std(path)
    0.0
    """
    from PIL import Image

    with Image.open(png) as image:
        return float(np.asarray(image.convert("RGB"), dtype=np.float64).std())


def chromium_executable() -> str | None:
    """``$SCOPEML_CHROMIUM``, else Debian's ``chromium`` on the PATH; ``None`` if not there."""
    executable = os.environ.get("SCOPEML_CHROMIUM") or shutil.which("chromium")
    return executable if executable and Path(executable).is_file() else None


def _missing(reason: str) -> None:
    if os.environ.get("SCOPEML_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (SCOPEML_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Playwright; skipped with the reason when either is missing.

    One per test module: Playwright's sync API keeps an asyncio loop running in the main thread
    while it is open, so a later test's ``asyncio.run`` (the server doctests) would fail."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("browser tests need Playwright: pip install playwright")
    executable = chromium_executable()
    if executable is None:
        _missing("browser tests need Chromium: apt-get install chromium (or set SCOPEML_CHROMIUM)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, timeout=PAGE_TIMEOUT_MS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def browser_page(browser: Any, live_server: LiveServer, tmp_path: Path) -> Iterator[RecordedPage]:
    """A fresh page on ``live_server`` (``page.goto("/docs")``) recording every request."""
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}, service_workers="block"
    )
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    recorded = RecordedPage(page, _origin(live_server.url), tmp_path)
    context.on("request", lambda request: recorded.requests.append(request.url))
    page.on(
        "console",
        lambda message: (
            recorded.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: recorded.page_errors.append(str(error)))
    context.route(lambda url: not LOOPBACK.match(url), lambda route: route.abort())
    try:
        yield recorded
    finally:
        context.close()
