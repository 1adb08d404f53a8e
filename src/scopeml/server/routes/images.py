"""Image routes: upload an image file for a job."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from scopeml.server.database import new_id
from scopeml.server.deps import Config, Db, User, save_body
from scopeml.server.jobs import upload_suffix
from scopeml.server.schemas import BINARY_BODY, ERRORS, UploadInfo

router = APIRouter(prefix="/images", tags=["images"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=BINARY_BODY,
    responses={401: ERRORS[401], 413: {"description": "Image too large"}},
)
async def upload_image(
    request: Request,
    user: User,
    config: Config,
    db: Db,
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
    db.add_upload(record)
    return UploadInfo(id=upload_id, size=size)
