"""Image routes: upload an image file for jobs, list and delete uploads (per-user quota).

Each upload lives alone in its own folder ``uploads/<id>/`` and is opened with that folder as
its only allowed root, at upload and in every job: a multi-file OME-TIFF whose OME-XML names
``/etc/…`` or ``../other.tif`` is refused, never read.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from scopeml.errors import InvalidRequestError
from scopeml.server.config import ServerConfig, private_dir
from scopeml.server.database import new_id
from scopeml.server.deps import (
    Config,
    Db,
    User,
    disposition_name,
    image_check,
    refuse_boundary,
    refuse_form,
    save_body,
)
from scopeml.server.jobs import ANALYSIS
from scopeml.server.limits import check_job_image
from scopeml.server.paths import upload_name
from scopeml.server.schemas import BINARY_BODY, ERRORS, STREAMED, UploadInfo

router = APIRouter(prefix="/images", tags=["images"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=BINARY_BODY,
    max_body_size=STREAMED,
    responses={
        401: ERRORS[401],
        413: {"description": "Image too large or quota exceeded"},
        422: ERRORS[422],
    },
)
async def upload_image(
    request: Request,
    user: User,
    config: Config,
    db: Db,
    filename: Annotated[str | None, Query(max_length=255)] = None,
) -> UploadInfo:
    """Upload an image file (CZI, OME-TIFF, TIFF, PNG) for a job; returns its upload id and the
    name it is kept under (``filename``, else a ``Content-Disposition`` header's, without
    folders, sanitised): jobs and analysis results name the image by it.

    Send the raw file (``curl --data-binary @FILE``); a multipart form (``curl -F``) answers
    422 saying so. The body streams to disk and is refused (413) as soon as it passes the
    image size limit or the rest of your quota; an image that does not open, or that names
    files outside its upload, is refused (422) and nothing is kept.
    """
    filename = filename or disposition_name(request)
    refuse_form(request, filename or "the uploaded image")  # first: how to send it
    if not filename:
        raise InvalidRequestError(
            "name the image: ?filename=cells.tif (or a Content-Disposition header's filename); "
            "its suffix says its format"
        )
    name = upload_name(filename)  # checks the suffix first
    upload_id = new_id()
    with _quota_held(request, config, db, user["user"]) as (limit, what):
        folder = private_dir(config.uploads_dir / upload_id)
        target = folder / name
        try:
            size = await save_body(request, target, limit, what)
            refuse_boundary(target, filename)
            with image_check(request, user["user"]):
                await asyncio.to_thread(check_job_image, target, None, [folder], filename, config)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        record = {"id": upload_id, "owner": user["user"], "path": str(target), "size": size,
                  "created": time.time()}  # fmt: skip
        db.add_upload(record)  # counted by the quota from here: the hold ends
    return UploadInfo(id=upload_id, size=size, name=name)


@router.get("", responses={401: ERRORS[401]})
async def list_uploads(user: User, db: Db) -> list[UploadInfo]:
    """Your uploaded images."""
    return [
        UploadInfo(id=row["id"], size=row["size"], name=Path(row["path"]).name)
        for row in db.list_uploads(user["user"])
    ]


@router.delete(
    "/{upload_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"description": "A queued or running job reads it"}, **ERRORS},
)
async def delete_upload(upload_id: str, user: User, config: Config, db: Db) -> Response:
    """Delete an uploaded image (frees its bytes of your quota)."""
    upload = db.get_upload(upload_id)
    if upload is None or upload["owner"] != user["user"]:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no upload {upload_id!r}")
    jobs = [job["id"] for job in db.jobs_on_image(upload["path"])] + _analyses_on(db, upload_id)
    if jobs:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"job{'s' * (len(jobs) > 1)} {', '.join(jobs)} (queued or running) "
            f"read{'s' * (len(jobs) == 1)} this image: cancel or delete "
            f"{'them' if len(jobs) > 1 else 'it'} first",
        )
    db.delete_upload(upload_id)
    path = Path(upload["path"])
    if path.parent.parent == config.uploads_dir:
        await asyncio.to_thread(shutil.rmtree, path.parent, True)
    else:  # a single-file upload of an older server
        path.unlink(missing_ok=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _analyses_on(db: Db, upload_id: str) -> list[str]:
    """The queued or running analysis jobs that read the upload (among their images)."""
    name = f"upload {upload_id}"
    return [
        job["id"]
        for job in db.unfinished_jobs()
        if job["model_id"] == ANALYSIS and name in job["options"].get("images", [])
    ]


@contextmanager
def _quota_held(
    request: Request, config: ServerConfig, db: Db, user: str
) -> Iterator[tuple[int, str]]:
    """The most bytes this upload may have (the size limit, or what is left of the quota), held
    from the quota until the upload is recorded: uploads sent at once each see the others'
    bytes, so together they cannot pass the quota. An upload that declares its length holds
    that; one sent in chunks holds all it may have."""
    uploading: Counter[str] = request.app.state.uploading
    left = config.upload_quota_bytes - db.upload_usage(user) - uploading[user]
    if left <= 0:
        streaming = " (with the uploads still in progress)" if uploading[user] else ""
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"upload quota of {config.upload_quota_bytes} bytes is used up{streaming}; "
            "delete uploads with DELETE /images/{id}",
        )
    limit, what = (
        (left, f"what is left of your upload quota ({config.upload_quota_bytes} bytes in all)")
        if left < config.max_image_bytes
        else (config.max_image_bytes, "the image size limit")
    )
    length = request.headers.get("content-length", "")
    held = min(int(length), limit) if length.isdigit() else limit
    uploading[user] += held
    try:
        yield limit, what
    finally:
        uploading[user] -= held
