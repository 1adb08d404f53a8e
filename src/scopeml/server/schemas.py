"""Request and response bodies of the REST API (pydantic), shared by the route modules."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from scopeml.server.config import ServerConfig
from scopeml.server.job_options import JobOptions
from scopeml.server.jobs import ANALYSIS, IMAGES_NAME
from scopeml.server.paths import image_name
from scopeml.server.tiles import NPY_MEDIA_TYPE

#: ``max_body_size`` of the routes that stream a binary body: they check their own limit from the
#: server's config while streaming (the app's JSON limit does not apply to them).
STREAMED = 1 << 62

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


class ValidationProblem(BaseModel):
    """One field of a request that failed validation: where it is (``["body", "options",
    "tile_size"]``), what is wrong, and pydantic's name for the kind of problem."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """An error's body: one line saying the problem (an image that does not open, a settings
    line), or, for fields that fail validation, a list of them. FastAPI's own schema for 422
    declared the list only, and most 422 answers are the line."""

    detail: str | list[ValidationProblem]


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or unknown API token"},
    404: {"description": "No such model or job (or not yours)"},
    422: {"model": ErrorBody, "description": "The request's content cannot be used: one line "
          "saying why, or a list of the fields that fail validation"},
}  # fmt: skip


class ModelInfo(BaseModel):
    id: str
    owner: str
    name: str
    shared: bool
    size: int
    sha256: str
    spec: dict[str, Any]
    created: float
    builtin: bool = False
    description: str | None = None


class ModelUpdate(BaseModel):
    """``PATCH /models/{id}``: ``{"shared": true}`` or ``false``, a JSON boolean only (not
    ``"yes"``, ``1`` or ``"true"``)."""

    model_config = ConfigDict(extra="forbid")
    shared: StrictBool


class UploadInfo(BaseModel):
    id: str
    size: int
    name: str | None = None  # the uploaded file's name (sanitised): the image's name in results


class JobRequest(BaseModel):
    """A whole-image job: a server-side image (below the allowed root) or an uploaded one."""

    #: The example the API page fills in (made up from the fields' limits, it was refused:
    #: both image_path and upload_id, tile_size 16, scale 0, normalize "string"…).
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"model_id": "nuclei", "image_path": "plate1/a.tif",
         "options": {"outputs": ["labels", "instances"]}},
        {"model_id": "nuclei", "upload_id": "0123abcd", "options": {}},
    ]})  # fmt: skip
    model_id: str = Field(max_length=64)
    image_path: str | None = Field(default=None, max_length=4096)
    upload_id: str | None = Field(default=None, max_length=64)
    options: JobOptions = Field(default_factory=JobOptions)


class JobInfo(BaseModel):
    """A job's record. ``image`` is what it ran on as the client knows it: the path below the
    allowed root, or the uploaded file's name (with ``upload_id``); never the server's path.
    An analysis job reads several: ``images`` names all it was given, folders and patterns
    as given (``image`` is the first), and
    ``upload_ids`` holds the uploads among them. ``attempts`` counts the runs started (a
    cancelled or stopped run too); ``total`` is 0 until a run has counted its work.
    ``warnings`` holds what its runs warned of (label images an analysis left out, a scale
    auto that found no objects), each once, one line each, at most 20 and a line saying more
    were left out; as a local run's warnings, by the names the client knows.
    A ``cancelled`` job keeps its record and partial output until deleted, as does a
    ``timed_out`` one (its run passed the server's ``--max-job-seconds``); both resume."""

    id: str
    owner: str
    model_id: str
    status: Literal["queued", "running", "done", "failed", "cancelled", "timed_out"]
    image: str | None = None
    upload_id: str | None = None
    images: list[str] = Field(default_factory=list)  # every image it reads, by public name
    upload_ids: list[str] = Field(default_factory=list)  # the uploads among them
    done: int
    total: int
    error: str | None
    attempts: int = 0
    step: str | None = None  # running (or last; none queued): starting, segment, …, analyze
    warnings: list[str] = Field(default_factory=list)  # what its runs warned of, each once
    options: dict[str, Any]
    created: float
    updated: float


class Health(BaseModel):
    status: str
    version: str


def job_info(row: dict[str, Any], config: ServerConfig) -> JobInfo:
    """A job's record for a client: its image by the name the client knows (see
    :func:`~scopeml.server.paths.image_name`), not where the server keeps it."""
    name, upload = image_name(row["image"], config)
    named = [image_name(image, config) for image in job_images(row, config)]
    queued = row["status"] == "queued"  # a resumed job waiting: not in its last run's step
    return JobInfo(
        **{**row, "image": name, "upload_id": upload, **({"step": None} if queued else {})},
        images=[public for public, _ in named],
        upload_ids=[upload_id for _, upload_id in named if upload_id is not None],
    )


def job_images(row: dict[str, Any], config: ServerConfig) -> list[str]:
    """The server paths of every image a job reads: an analysis's list kept with its settings
    (``images.json``), else its one image."""
    if row["model_id"] == ANALYSIS:
        try:
            images = json.loads((config.jobs_dir / row["id"] / IMAGES_NAME).read_text())
        except (OSError, ValueError):  # removed meanwhile: the first is all that is known
            images = None
        if isinstance(images, list) and all(isinstance(image, str) for image in images):
            return images
    return [row["image"]]
