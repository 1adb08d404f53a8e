"""The server's human-facing pages, served without internet: a landing page and Swagger UI.

FastAPI's own ``/docs`` loads Swagger UI's script, style sheet and favicon from public CDNs, so on
the offline networks where microscopy facilities run analysis servers it is a blank page. Here
the assets come from the ``fastapi-offline`` package (Swagger UI 5, its files installed with
it), the favicon from ``static/`` beside this module, and every page carries a
Content-Security-Policy that lets the browser load nothing from another origin.

``/``, ``/docs`` and ``/openapi.json`` are open, deliberately: they describe the API (routes,
parameters, the server's version) and hold no data. Everything that reads or writes models, tiles
or jobs still needs a token, which Swagger UI's *Authorize* button takes for *Try it out*.
"""

from __future__ import annotations

import html
from importlib.resources import files
from pathlib import Path
from string import Template

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
SWAGGER_URL = "/static/swagger-ui"
STATIC_URL = "/static"
FAVICON = "favicon.svg"

# Same-origin only; Swagger UI starts from an inline script and draws icons from data: URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"}

LANDING = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scopeml server</title>
<link rel="icon" href="$favicon" type="image/svg+xml">
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem;
       color: #14213d; }
h1 { display: flex; align-items: center; gap: .6rem; }
h1 img { width: 2.2rem; height: 2.2rem; }
pre { background: #f1f3f8; padding: .8rem 1rem; border-radius: 6px; overflow-x: auto; }
code { font-family: ui-monospace, monospace; }
.ok { color: #137333; font-weight: bold; }
footer { margin-top: 2rem; font-size: .85rem; color: #555; }
</style>
</head>
<body>
<h1><img src="$favicon" alt="">scopeml server $version</h1>
<p>Segmentation of large microscopy images: model registry, tile prediction, whole-image jobs.</p>
<p id="health">Health: <span class="ok">$status</span>
  (<a href="$root/health"><code>/health</code></a>)</p>
<ul>
  <li><a href="$root/docs">API documentation</a> (Swagger UI; try calls with your token)</li>
  <li><a href="$root/openapi.json">OpenAPI schema</a></li>
  <li><a href="$root/metrics">Prometheus metrics</a> (needs an admin token)</li>
</ul>
<h2>Get a token</h2>
<p>On the server machine, with the data directory the server was started with:</p>
<pre><code>scopeml admin create-token USER --data-dir DATA_DIR</code></pre>
<p>It prints the token once; only its hash is stored.</p>
<h2>Use it from Python</h2>
<pre><code>from scopeml.client import Client

client = Client("$base_url", "sml_…")  # your token
model_id = client.upload_model("my_model.czann")["id"]  # yours; built-ins go by name
# Tiles are read and fused on your machine, predicted by this server:
client.segment("local.ome.tif", model_id, "out.ome.zarr")
client.segment("local.ome.tif", "nuclei", "nuclei.ome.zarr")  # the built-in model</code></pre>
<p>or from a shell:</p>
<pre><code>curl -H "Authorization: Bearer $$TOKEN" $base_url/models</code></pre>
<p>A whole-image job on the server (every option goes under <code>"options"</code>):</p>
<pre><code>curl -H "Authorization: Bearer $$TOKEN" -H "Content-Type: application/json" \
  -d '{"model_id": "nuclei", "image_path": "plate1/a.ome.tif",
       "options": {"outputs": ["labels", "instances"], "measure": true}}' \
  $base_url/jobs</code></pre>
<footer>Swagger UI and the other third-party files served here:
  <a href="$root$static/LICENSES.md">licences</a>.</footer>
</body>
</html>
""")


def add_pages(app: FastAPI) -> None:
    """Serve ``/`` (landing page), ``/docs`` (Swagger UI), ``/favicon.ico`` and ``/static``.

    The app must be created with ``docs_url=None, redoc_url=None``; FastAPI's own pages would
    take ``/docs`` and load their assets from the internet.

    Examples
    --------
    >>> from fastapi.testclient import TestClient
    >>> app = FastAPI(docs_url=None, redoc_url=None)
    >>> add_pages(app)
    >>> page = TestClient(app).get("/docs")
    >>> page.status_code, "/static/swagger-ui/swagger-ui-bundle.js" in page.text
    (200, True)
    """
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError(
            "create the app with docs_url=None, redoc_url=None: FastAPI's own docs pages load "
            "Swagger UI from a CDN and would shadow the offline ones"
        )
    swagger_dir = files("fastapi_offline") / "static"
    app.mount(SWAGGER_URL, StaticFiles(directory=str(swagger_dir)), name="swagger-ui")
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
    app.add_api_route("/", landing_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs", docs_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)


async def landing_page(request: Request) -> HTMLResponse:
    """Version, health and how to start: what a new user needs on an offline network."""
    from scopeml.server.routes.service import health

    root = request.scope.get("root_path", "")
    state = await health()
    text = LANDING.substitute(
        version=html.escape(state.version),
        status=html.escape(state.status),
        root=html.escape(root),
        static=STATIC_URL,
        favicon=html.escape(f"{root}{STATIC_URL}/{FAVICON}"),
        base_url=html.escape(str(request.base_url).rstrip("/")),
    )
    return HTMLResponse(text, headers=HEADERS)


async def docs_page(request: Request) -> HTMLResponse:
    """Swagger UI from the package's own files, pointed at this app's schema."""
    app: FastAPI = request.app
    root = request.scope.get("root_path", "")
    page = get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - API documentation",
        swagger_js_url=f"{root}{SWAGGER_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{SWAGGER_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{STATIC_URL}/{FAVICON}",
        # validatorUrl: no badge that would ask validator.swagger.io about the schema.
        swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
    )
    page.headers.update(HEADERS)
    return page


async def favicon() -> FileResponse:
    """Browsers ask for ``/favicon.ico`` on pages without an icon link (e.g. ``/health``)."""
    return FileResponse(STATIC_DIR / FAVICON, media_type="image/svg+xml")
