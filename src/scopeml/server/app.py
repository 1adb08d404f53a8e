"""The REST application: routes, authentication, limits, error mapping.

Every route except ``/health`` (and the schema at ``/openapi.json``, ``/docs``) needs an API token
(``Authorization: Bearer sml_…``). Models are private to their owner unless shared; a model the
caller may not see answers 404, as one that does not exist. Bad input answers 422 with a
``detail`` that says what was wrong; a body over its size limit answers 413.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from scopeml.errors import IncompatibleModelError, InvalidRequestError, ScopeMLError
from scopeml.server.config import ServerConfig
from scopeml.server.database import Database, new_id
from scopeml.server.jobs import (
    JobOptions,
    JobRunner,
    resolve_image_path,
    upload_suffix,
)
from scopeml.server.metrics import Metrics
from scopeml.server.models import CONTAINER_SUFFIXES, ModelRegistry, spec_from_dict
from scopeml.server.tiles import (
    NPY_MEDIA_TYPE,
    check_tile,
    decode_tile,
    encode_array,
    labels_from_probabilities,
)

NPY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            NPY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
BINARY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
NPY_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {NPY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}},
}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or unknown API token"},
    404: {"description": "No such model or job (or not yours)"},
}


# --- response and request bodies --------------------------------------------------------------


class ModelInfo(BaseModel):
    id: str
    owner: str
    name: str
    shared: bool
    size: int
    sha256: str
    spec: dict[str, Any]
    created: float


class ModelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shared: bool


class UploadInfo(BaseModel):
    id: str
    size: int


class JobRequest(BaseModel):
    """A whole-image job: a server-side image (below the allowed root) or an uploaded one."""

    model_config = ConfigDict(extra="forbid")
    model_id: str = Field(max_length=64)
    image_path: str | None = Field(default=None, max_length=4096)
    upload_id: str | None = Field(default=None, max_length=64)
    options: JobOptions = Field(default_factory=JobOptions)


class JobInfo(BaseModel):
    id: str
    owner: str
    model_id: str
    status: Literal["queued", "running", "done", "failed"]
    done: int
    total: int
    error: str | None
    options: dict[str, Any]
    created: float
    updated: float


class Health(BaseModel):
    status: str
    version: str


# --- the application ----------------------------------------------------------------------------


def create_app(config: ServerConfig) -> FastAPI:
    """Build the application for one configuration (state opens when the app starts).

    Examples
    --------
    >>> import tempfile
    >>> app = create_app(ServerConfig(Path(tempfile.mkdtemp())))
    >>> "/models/{model_id}/predict" in {route.path for route in app.routes}
    True
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for folder in (config.data_dir, config.uploads_dir):
            folder.mkdir(parents=True, exist_ok=True)
        db = Database(config.db)
        metrics = Metrics()
        executor = ThreadPoolExecutor(
            max(config.predict_workers, min(4, os.cpu_count() or 1)),
            thread_name_prefix="scopeml-predict",
        )
        registry = ModelRegistry(config, db, metrics, executor)
        jobs = JobRunner(config, db, registry)
        app.state.db, app.state.metrics = db, metrics
        app.state.registry, app.state.jobs = registry, jobs
        jobs.resume_unfinished()
        try:
            yield
        finally:
            await asyncio.to_thread(jobs.close)
            await registry.close()
            executor.shutdown(wait=True, cancel_futures=True)
            db.close()

    from scopeml import __version__

    app = FastAPI(
        title="scopeml",
        version=__version__,
        summary="Segmentation of large microscopy images: model registry, tiles, jobs.",
        lifespan=lifespan,
    )
    app.state.config = config
    app.add_middleware(RequestMetrics)
    _add_error_handlers(app)
    _add_routes(app, config)
    return app


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


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ScopeMLError)
    async def bad_input(request: Request, err: ScopeMLError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=422)


# --- authentication and bodies ------------------------------------------------------------------

bearer = HTTPBearer(auto_error=False, description="An API token from `scopeml admin create-token`")


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> dict[str, Any]:
    """The caller's ``{"user", "admin"}``; 401 without a valid token."""
    user = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        user = request.app.state.db.user_for_token(credentials.credentials)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or unknown API token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


User = Annotated[dict[str, Any], Depends(current_user)]


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE, f"request body is larger than the limit of {limit} bytes"
    )


def _declared_length(request: Request, limit: int) -> None:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _too_large(limit)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    _declared_length(request, limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def save_body(request: Request, target: Path, limit: int) -> int:
    """Stream the body to ``target`` (via a temporary file); 413 past ``limit`` bytes."""
    _declared_length(request, limit)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    size = 0
    try:
        with partial.open("wb") as file:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                file.write(chunk)
        if size == 0:
            raise InvalidRequestError("request body is empty")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return size


# --- routes -------------------------------------------------------------------------------------


def _add_routes(app: FastAPI, config: ServerConfig) -> None:
    def registry(request: Request) -> ModelRegistry:
        return request.app.state.registry

    def model_or_404(request: Request, model_id: str, user: dict[str, Any]) -> dict[str, Any]:
        record = registry(request).visible(model_id, user)
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no model {model_id!r}")
        return record

    def owned_model(request: Request, model_id: str, user: dict[str, Any]) -> dict[str, Any]:
        record = model_or_404(request, model_id, user)
        if record["owner"] != user["user"] and not user["admin"]:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only the owner may change a model")
        return record

    def job_or_404(request: Request, job_id: str, user: dict[str, Any]) -> dict[str, Any]:
        job = request.app.state.db.get_job(job_id)
        if job is None or (job["owner"] != user["user"] and not user["admin"]):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id!r}")
        return job

    @app.get("/health", tags=["service"])
    async def health() -> Health:
        """Liveness: no token needed."""
        from scopeml import __version__

        return Health(status="ok", version=__version__)

    @app.get(
        "/metrics",
        tags=["service"],
        response_class=PlainTextResponse,
        responses={401: ERRORS[401]},
    )
    async def metrics(request: Request, user: User) -> PlainTextResponse:
        """Prometheus metrics: requests, tiles predicted, latency histogram."""
        return PlainTextResponse(
            request.app.state.metrics.render(), media_type="text/plain; version=0.0.4"
        )

    # models ------------------------------------------------------------------------------------

    @app.get("/models", tags=["models"], responses={401: ERRORS[401]})
    async def list_models(request: Request, user: User) -> list[ModelInfo]:
        """Models you own and models shared with everyone."""
        rows = request.app.state.db.list_models(user["user"], admin=user["admin"])
        return [ModelInfo(**row) for row in rows]

    @app.post(
        "/models",
        tags=["models"],
        status_code=status.HTTP_201_CREATED,
        openapi_extra=BINARY_BODY,
        responses={**ERRORS, 413: {"description": "Container too large"}},
    )
    async def upload_model(
        request: Request,
        user: User,
        filename: Annotated[str, Query(max_length=255)] = "model.czann",
        shared: bool = False,
    ) -> ModelInfo:
        """Upload a model container (``.czann``, ``.czseg``, ``.czmodel``) as the raw body.

        ``filename`` is a display name and picks the container type by its suffix; the model is
        stored under a new random id.
        """
        suffix = Path(filename).suffix.lower()
        if suffix not in CONTAINER_SUFFIXES:
            raise InvalidRequestError(
                f"filename {filename!r} must end in one of {', '.join(CONTAINER_SUFFIXES)}"
            )
        upload = config.uploads_dir / f"model-{new_id()}"
        await save_body(request, upload, config.max_model_bytes)
        try:
            record = await asyncio.to_thread(
                registry(request).add, upload, owner=user["user"], name=filename,
                suffix=suffix, shared=shared,
            )  # fmt: skip
        finally:
            upload.unlink(missing_ok=True)
        return ModelInfo(**record)

    @app.get("/models/{model_id}", tags=["models"], responses=ERRORS)
    async def get_model(request: Request, model_id: str, user: User) -> ModelInfo:
        """A model's record, with its spec (channels, classes, halo, tile step)."""
        return ModelInfo(**model_or_404(request, model_id, user))

    @app.patch("/models/{model_id}", tags=["models"], responses=ERRORS)
    async def update_model(
        request: Request, model_id: str, update: ModelUpdate, user: User
    ) -> ModelInfo:
        """Share a model with every user, or make it private again (owner only)."""
        owned_model(request, model_id, user)
        request.app.state.db.set_model_shared(model_id, update.shared)
        return ModelInfo(**request.app.state.db.get_model(model_id))

    @app.delete(
        "/models/{model_id}",
        tags=["models"],
        status_code=status.HTTP_204_NO_CONTENT,
        responses=ERRORS,
    )
    async def delete_model(request: Request, model_id: str, user: User) -> Response:
        """Delete a model (owner only)."""
        owned_model(request, model_id, user)
        await registry(request).remove(model_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @app.post(
        "/models/{model_id}/predict",
        tags=["tiles"],
        openapi_extra=NPY_BODY,
        response_class=Response,
        responses={**NPY_RESPONSE, **ERRORS, 413: {"description": "Tile too large"}},
    )
    async def predict_tile(
        request: Request,
        model_id: str,
        user: User,
        output: Literal["probabilities", "labels"] = "probabilities",
    ) -> Response:
        """Predict one tile ``C×[Z×]Y×X`` or a batch ``N×C×[Z×]Y×X``.

        The body is ``.npy`` bytes, or raw bytes with ``X-Tile-Dtype`` and ``X-Tile-Shape``
        headers. The answer is ``.npy``: float32 probabilities ``[N×]K×[Z×]Y×X`` or, with
        ``output=labels``, the argmax ``[N×][Z×]Y×X``. Tiles arriving together are batched.
        """
        record = model_or_404(request, model_id, user)
        body = await read_body(request, config.max_tile_bytes)
        spec = spec_from_dict(record["spec"])
        tile = decode_tile(body, request.headers)
        batch = check_tile(tile, spec)
        try:
            probabilities = await registry(request).batcher(model_id).predict(batch)
        except IncompatibleModelError as err:
            raise InvalidRequestError(err.problem) from err
        result = probabilities if output == "probabilities" else (
            labels_from_probabilities(probabilities)
        )  # fmt: skip
        if tile.ndim == spec.spatial_dims + 1:
            result = result[0]
        return Response(encode_array(result), media_type=NPY_MEDIA_TYPE)

    # images and jobs ---------------------------------------------------------------------------

    @app.post(
        "/images",
        tags=["jobs"],
        status_code=status.HTTP_201_CREATED,
        openapi_extra=BINARY_BODY,
        responses={401: ERRORS[401], 413: {"description": "Image too large"}},
    )
    async def upload_image(
        request: Request,
        user: User,
        filename: Annotated[str, Query(max_length=255)],
    ) -> UploadInfo:
        """Upload an image file (CZI, OME-TIFF, TIFF, PNG) for a job; returns its upload id."""
        suffix = upload_suffix(filename)
        upload_id = new_id()
        target = config.uploads_dir / f"{upload_id}{suffix}"
        size = await save_body(request, target, config.max_image_bytes)
        record = {
            "id": upload_id,
            "owner": user["user"],
            "path": str(target),
            "size": size,
            "created": time.time(),
        }
        request.app.state.db.add_upload(record)
        return UploadInfo(id=upload_id, size=size)

    @app.post(
        "/jobs",
        tags=["jobs"],
        status_code=status.HTTP_202_ACCEPTED,
        responses=ERRORS,
    )
    async def submit_job(request: Request, job: JobRequest, user: User) -> JobInfo:
        """Segment a whole image on the server; poll ``GET /jobs/{id}`` for progress."""
        model_or_404(request, job.model_id, user)
        if (job.image_path is None) == (job.upload_id is None):
            raise InvalidRequestError("give exactly one of image_path and upload_id")
        if job.upload_id is not None:
            upload = request.app.state.db.get_upload(job.upload_id)
            if upload is None or upload["owner"] != user["user"]:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no upload {job.upload_id!r}")
            image = upload["path"]
        else:
            image = str(resolve_image_path(job.image_path or "", config.allowed_root))
        options = job.options.segment_options()
        job_id = new_id()
        request.app.state.db.add_job(
            {
                "id": job_id,
                "owner": user["user"],
                "model_id": job.model_id,
                "image": image,
                "options": options,
            }
        )
        request.app.state.jobs.submit(job_id)
        return JobInfo(**request.app.state.db.get_job(job_id))

    @app.get("/jobs", tags=["jobs"], responses={401: ERRORS[401]})
    async def list_jobs(request: Request, user: User) -> list[JobInfo]:
        """Your jobs."""
        rows = request.app.state.db.list_jobs(user["user"], admin=user["admin"])
        return [JobInfo(**row) for row in rows]

    @app.get("/jobs/{job_id}", tags=["jobs"], responses=ERRORS)
    async def get_job(request: Request, job_id: str, user: User) -> JobInfo:
        """A job's status and progress (tiles done / total)."""
        return JobInfo(**job_or_404(request, job_id, user))

    @app.delete(
        "/jobs/{job_id}",
        tags=["jobs"],
        status_code=status.HTTP_204_NO_CONTENT,
        responses={409: {"description": "Job still queued or running"}, **ERRORS},
    )
    async def delete_job(request: Request, job_id: str, user: User) -> Response:
        """Delete a finished or failed job and its output."""
        job = job_or_404(request, job_id, user)
        if job["status"] in ("queued", "running"):
            raise HTTPException(status.HTTP_409_CONFLICT, f"job is {job['status']}")
        await asyncio.to_thread(request.app.state.jobs.remove, job_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @app.get(
        "/jobs/{job_id}/result",
        tags=["jobs"],
        response_class=FileResponse,
        responses={
            200: {
                "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}
            },
            409: {"description": "Job not done"},
            **ERRORS,
        },
    )
    async def job_result(request: Request, job_id: str, user: User) -> FileResponse:
        """The job's OME-Zarr output as a zip (``result.ome.zarr/…``)."""
        job = job_or_404(request, job_id, user)
        if job["status"] != "done":
            raise HTTPException(status.HTTP_409_CONFLICT, f"job is {job['status']}, not done")
        path = await asyncio.to_thread(request.app.state.jobs.result_zip, job_id)
        return FileResponse(path, media_type="application/zip", filename=f"{job_id}.zip")
