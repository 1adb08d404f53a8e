"""Model routes: upload, list, inspect, share and delete model containers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from scopeml.errors import InvalidRequestError
from scopeml.server.database import new_id
from scopeml.server.deps import Config, Db, OwnedModel, Registry, User, VisibleModel, save_body
from scopeml.server.models import CONTAINER_SUFFIXES
from scopeml.server.schemas import BINARY_BODY, ERRORS, STREAMED, ModelInfo, ModelUpdate

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", responses={401: ERRORS[401]})
async def list_models(user: User, db: Db, registry: Registry) -> list[ModelInfo]:
    """The built-in models (``builtin``: read-only, usable by name), models you own and models
    shared with everyone."""
    builtins = await asyncio.to_thread(registry.builtins)
    rows = db.list_models(user["user"], admin=user["admin"])
    return [ModelInfo(**row) for row in [*builtins, *rows]]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=BINARY_BODY,
    max_body_size=STREAMED,
    responses={**ERRORS, 413: {"description": "Container too large"}},
)
async def upload_model(
    request: Request,
    user: User,
    config: Config,
    registry: Registry,
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
            registry.add, upload, owner=user["user"], name=filename, suffix=suffix, shared=shared
        )
    finally:
        upload.unlink(missing_ok=True)
    return ModelInfo(**record)


@router.get("/{model_id}", responses=ERRORS)
async def get_model(record: VisibleModel) -> ModelInfo:
    """A model's record, with its spec (channels, classes, halo, tile step)."""
    return ModelInfo(**record)


@router.patch("/{model_id}", responses=ERRORS)
async def update_model(record: OwnedModel, update: ModelUpdate, db: Db) -> ModelInfo:
    """Share a model with every user, or make it private again (owner only)."""
    db.set_model_shared(record["id"], update.shared)
    return ModelInfo(**db.get_model(record["id"]))


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_model(record: OwnedModel, registry: Registry) -> Response:
    """Delete a model (owner only)."""
    await registry.remove(record["id"])
    return Response(status_code=status.HTTP_204_NO_CONTENT)
