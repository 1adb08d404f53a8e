"""The REST application: state, middleware, error mapping, and the routers of ``routes/``.

Every route except ``/health`` (and the schema at ``/openapi.json``, ``/docs``) needs an API token
(``Authorization: Bearer sml_…``). Models are private to their owner unless shared; a model the
caller may not see answers 404, as one that does not exist. Bad input answers 422 with a
``detail`` that says what was wrong; a body over its size limit answers 413. Every error answers
JSON (``{"detail": …}``), and what it echoes of the request (an id, a name) is bounded
(:func:`bounded`): a 60 000-character id in a path answers a short 404.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.requests import ClientDisconnect

from scopeml.errors import ScopeMLError
from scopeml.server.config import ServerConfig, private_dir
from scopeml.server.database import Database
from scopeml.server.jobs import JobRunner
from scopeml.server.metrics import Metrics
from scopeml.server.models import ModelRegistry
from scopeml.server.pages import add_pages
from scopeml.server.routes import ROUTERS

log = logging.getLogger(__name__)

MAX_ERRORS = 10  # validation errors listed in a 422 answer
MAX_MESSAGE = 200  # characters of each message
MAX_WORD = 160  # characters of one word of an error (an id or a name it echoes)
MAX_DETAIL = 2000  # characters of an error's detail


def create_app(config: ServerConfig) -> FastAPI:
    """Build the application for one configuration (state opens when the app starts).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> app = create_app(ServerConfig(Path(tempfile.mkdtemp())))
    >>> "/models/{model_id}/predict" in app.openapi()["paths"]
    True
    """
    from scopeml import __version__

    app = _App(
        title="scopeml",
        version=__version__,
        summary="Segmentation of large microscopy images: model registry, tiles, jobs.",
        lifespan=lifespan,
        docs_url=None,  # pages.add_pages serves /docs from the package, not a CDN
        redoc_url=None,
        max_body_size=config.max_json_bytes,  # the routes that stream binary bodies lift it
    )
    app.state.config = config
    app.state.uploading = Counter()  # per user, the bytes of uploads still streaming in
    app.state.image_checks = Counter()  # per user, requests whose files are being checked
    app.add_middleware(RequestMetrics)
    app.add_exception_handler(ScopeMLError, bad_input)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(ClientDisconnect, client_gone)
    for router in ROUTERS:
        app.include_router(router)
    add_pages(app)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the database, model registry and job runner on start; close them on stop."""
    config: ServerConfig = app.state.config
    for folder in (config.data_dir, config.uploads_dir):
        private_dir(folder)
    with data_folder_lock(config):
        async with _serving(app, config):
            yield


def data_folder_lock(config: ServerConfig) -> Any:
    """One server per data folder: a second one would resume, so run again, the jobs the
    first is running (the lock of an analysis results folder, worded for a server)."""
    from scopeml.analysis.results_lock import results_lock

    return results_lock(config.data_dir, who="scopeml server", doing="using", place="data folder")


@asynccontextmanager
async def _serving(app: FastAPI, config: ServerConfig) -> AsyncIterator[None]:
    db = Database(config.db)
    metrics = Metrics()
    # One thread per slot of the fair scheduler: a granted slot never waits for a thread.
    executor = ThreadPoolExecutor(config.predict_workers, thread_name_prefix="scopeml-predict")
    registry = ModelRegistry(config, db, metrics, executor)
    jobs = JobRunner(config, db, registry)
    app.state.db, app.state.metrics = db, metrics
    app.state.registry, app.state.jobs = registry, jobs
    metrics.watch_jobs(jobs.counts)
    jobs.resume_unfinished()
    try:
        yield
    finally:
        await asyncio.to_thread(jobs.close)
        await registry.close()
        executor.shutdown(wait=True, cancel_futures=True)
        db.close()


class _App(FastAPI):
    """The application, its outermost layers answering a too-large body in JSON
    (:class:`JsonTooLarge`) and a stalled one 408 (:class:`BodyTimeout`)."""

    def build_middleware_stack(self) -> Any:
        return JsonTooLarge(BodyTimeout(super().build_middleware_stack(), self))


def bounded(text: str) -> str:
    """An error message with what it echoes bounded: a word over ``MAX_WORD`` characters is
    cut in its middle (``…``), the whole at ``MAX_DETAIL``.

    Examples
    --------
    >>> message = bounded("no job '" + "a" * 60_000 + "'")
    >>> len(message), message[:12], message[-4:]
    (167, "no job 'aaaa", "aaa'")
    >>> bounded("job is done, not running")
    'job is done, not running'
    """
    head = MAX_WORD * 3 // 4
    tail = MAX_WORD - head - 1

    def cut(match: re.Match[str]) -> str:
        return f"{match[0][:head]}…{match[0][-tail:]}"

    text = re.sub(rf"\S{{{MAX_WORD + 1},}}", cut, text)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


async def bad_input(request: Request, err: Exception) -> JSONResponse:
    """Errors caused by the request's content answer 422 with their one-line message."""
    return JSONResponse({"detail": bounded(str(err))}, status_code=422)


async def client_gone(request: Request, err: Exception) -> Response:
    """A client that went away in the middle of its body (an upload stopped): one log line, not
    a server error's traceback; the partial body is gone already (``save_body``)."""
    log.info("%s %s: the client disconnected before its body ended", request.method,
             request.url.path)  # fmt: skip
    return Response(status_code=400)


#: Why a JSON body did not parse, other than its syntax, by the cause FastAPI chains.
UNPARSED_BODY = {
    RecursionError: "the request body's JSON is nested too deep: send a flatter object",
    UnicodeDecodeError: "the request body is not UTF-8 text: send JSON in UTF-8",
}


async def http_error(request: Request, err: Exception) -> Any:
    """An HTTP error (404, 409, 413, …) as FastAPI answers it, its message :func:`bounded`."""
    assert isinstance(err, StarletteHTTPException)
    if err.status_code == 413 and err.detail == "Content Too Large":  # Starlette's body limit
        err = StarletteHTTPException(413, too_large(request.scope), err.headers)
    if err.status_code == 400 and err.detail == "There was an error parsing the body":
        # FastAPI's words where json.loads failed otherwise than on its syntax: said by cause
        said = UNPARSED_BODY.get(type(err.__cause__), "the request body does not parse as JSON")
        err = StarletteHTTPException(400, said, err.headers)
    if isinstance(err.detail, str):
        err = StarletteHTTPException(err.status_code, bounded(err.detail), err.headers)
    return await http_exception_handler(request, err)


def too_large(scope: dict[str, Any]) -> str:
    """The message of a body over the request's limit (as ``deps.too_large`` says it)."""
    limit = scope.get(MAX_BODY_SIZE_SCOPE_KEY)
    within = "the limit" if limit is None else f"the limit of {limit} bytes"
    return f"request body is larger than {within}"


class BodyTimeout:
    """ASGI wrapper: a request whose body stalls (no part of it for the config's
    ``body_timeout`` seconds) is answered 408 and its connection closed, whatever route reads
    it (an upload, a tile, a job's JSON): stalled uploads held their connection, file and quota
    for ever (9,000 held 4,844 file descriptors). Only the body is timed: once it is whole,
    waiting for a disconnect (a long download) is not."""

    def __init__(self, app: Any, owner: Any) -> None:
        self.app, self.owner = app, owner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        timeout = self.owner.state.config.body_timeout if scope["type"] == "http" else 0
        if not timeout:
            await self.app(scope, receive, send)
            return
        whole = False

        async def timed() -> dict[str, Any]:
            nonlocal whole
            if whole:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except TimeoutError:
                raise HTTPException(
                    status.HTTP_408_REQUEST_TIMEOUT,
                    f"no part of the request body came in {timeout:g} s (--body-timeout)",
                    headers={"Connection": "close"},
                ) from None
            whole = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed, send)


class JsonTooLarge:
    """ASGI wrapper: the plain-text 413 that the body limit answers by itself (Starlette's,
    for a ``Content-Length`` over the limit) becomes JSON, ``{"detail": …}`` with the limit, as
    every other error of this server."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] | None = None

        async def rewrite(message: dict[str, Any]) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] == 413:
                headers = dict(message.get("headers", ()))
                if headers.get(b"content-type", b"").startswith(b"text/plain"):
                    held = message  # its body follows: replaced below
                    return
            if held is not None and message["type"] == "http.response.body":
                body = json.dumps({"detail": too_large(scope)}).encode()
                headers = [
                    (name, value)
                    for name, value in held.get("headers", ())
                    if name not in (b"content-type", b"content-length")
                ]
                headers += [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({**held, "headers": headers})
                held = None
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, rewrite)


async def invalid_request(request: Request, err: Exception) -> JSONResponse:
    """422 for a body or parameter that fails validation, without echoing the input back."""
    errors = err.errors() if isinstance(err, RequestValidationError) else []
    detail = [
        {
            "loc": [str(part)[:MAX_MESSAGE] for part in list(error.get("loc", ()))[:8]],
            "msg": _message(error, request)[:MAX_MESSAGE],
            "type": str(error.get("type", ""))[:MAX_MESSAGE],
        }
        for error in errors[:MAX_ERRORS]
    ]
    return JSONResponse({"detail": detail}, status_code=422)


#: pydantic's error for a body that is no JSON object: one not sent as JSON is read as text
NOT_AN_OBJECT = ("model_attributes_type", "dict_type")


def _message(error: dict[str, Any], request: Request) -> str:
    """A validation error's message; a JSON body sent as another type (``curl -d`` sends
    ``application/x-www-form-urlencoded``) is told how to send it, not that it is no object."""
    not_json = "json" not in request.headers.get("content-type", "").lower()
    whole_body = list(error.get("loc", ())) == ["body"] and error.get("type") in NOT_AN_OBJECT
    if whole_body and not_json:
        return "send the request as JSON (Content-Type: application/json)"
    if error.get("type") == "json_invalid":  # its loc is the character: said as such
        where = list(error.get("loc", ()))[1:2]
        at = f" at character {where[0]}" if where and str(where[0]).isdigit() else ""
        cause = str((error.get("ctx") or {}).get("error", "")).strip()
        return f"not valid JSON{at}" + (f": {cause}" if cause else "")
    if error.get("type") in NUMBER_WORDS:
        return NUMBER_WORDS[str(error["type"])] + _bounds(error)
    return str(error.get("msg", "")) + _option_hint(error)


#: pydantic's words for a number that is no integer, said as what the number is: its own
#: (``"Unable to parse input string as an integer"`` for ``1e308``) name a string.
NUMBER_WORDS = {
    "int_parsing_size": "Input should be an integer; this number is out of range",
    "int_from_float": "Input should be an integer; this number has a fractional part",
}


def _bounds(error: dict[str, Any]) -> str:
    """The range an integer field of a request takes, where it has one (``tile_size``:
    16 to 8192), for :data:`NUMBER_WORDS`."""
    from scopeml.server.job_options import JobOptions

    loc = [str(part) for part in error.get("loc", ())]
    field = JobOptions.model_fields.get(loc[-1]) if loc[:2] == ["body", "options"] else None
    if field is None or len(loc) != 3:
        return ""
    low = next((m.ge for m in field.metadata if getattr(m, "ge", None) is not None), None)
    high = next((m.le for m in field.metadata if getattr(m, "le", None) is not None), None)
    return f" ({low} to {high})" if low is not None and high is not None else ""


def _option_hint(error: dict[str, Any]) -> str:
    """For a job's option sent beside ``options`` (``{"measure": true}``), where it goes:
    pydantic alone says only that extra inputs are not permitted."""
    from scopeml.server.job_options import JobOptions

    loc = list(error.get("loc", ()))
    if error.get("type") != "extra_forbidden" or len(loc) != 2 or loc[0] != "body":
        return ""
    name = str(loc[1])
    if name not in JobOptions.model_fields:
        return ""
    return f': {name!r} is an option: send it in options ({{"options": {{"{name}": …}}}})'


class RequestMetrics:
    """ASGI middleware counting requests by route template and status, with their latency."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status_code = 500

        async def send_and_record(message: dict[str, Any]) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            metrics: Metrics | None = getattr(scope["app"].state, "metrics", None)
            if metrics is not None:
                route = getattr(scope.get("route"), "path", "unmatched")
                metrics.observe_request(
                    scope["method"], route, status_code, time.perf_counter() - start
                )
