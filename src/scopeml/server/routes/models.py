"""Model routes: upload, list, inspect, share and delete model containers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from scopeml.errors import InvalidRequestError, ScopeMLError
from scopeml.server.database import new_id
from scopeml.server.deps import (
    Config,
    Db,
    OwnedModel,
    Registry,
    User,
    VisibleModel,
    disposition_name,
    image_check,
    refuse_boundary,
    refuse_form,
    save_body,
)
from scopeml.server.models import CONTAINER_SUFFIXES
from scopeml.server.paths import kept_name
from scopeml.server.schemas import BINARY_BODY, ERRORS, STREAMED, ModelInfo, ModelUpdate

router = APIRouter(prefix="/models", tags=["models"])

DEFAULT_NAME = "model.czann"  # the record's name of an upload that gives none
PACKAGE_SUFFIX = ".zip"  # a bioimage.io model package, imported as a czann on upload
CONVERT_FIRST = (
    "the server imports bioimage.io packages with ONNX weights; convert this one first with "
    "scopeml model convert PACKAGE -o MODEL.czann and upload the czann"
)


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
    filename: Annotated[str | None, Query(max_length=255)] = None,
    shared: bool = False,
) -> ModelInfo:
    """Upload a model container (``.czann``, ``.czseg``, ``.czmodel``) or a bioimage.io model
    package (``.zip`` with ONNX weights) as the raw body (``curl --data-binary @FILE``; a
    multipart form, ``curl -F``, answers 422).

    A package is imported as ``scopeml model convert`` does it (the same zip limits as a czann,
    its declared sha256 checked, nothing downloaded) and stored as that czann; a package with
    TorchScript weights is refused: convert it with ``scopeml model convert`` and upload the
    czann.

    ``filename`` (else a ``Content-Disposition`` header's ``filename``) is a display name and
    picks the container type by its suffix; without either the model is named ``model.czann``.
    It is stored under a new random id. Errors name the file by that name.
    """
    given = filename or disposition_name(request)
    if given:  # its folders dropped first, so the suffix is the file's ("x.czann/" has none)
        base = given.replace("\\", "/").rsplit("/", 1)[-1]
        if not base.strip("."):
            raise InvalidRequestError(f"filename {given[:100]!r} names a folder, not a model file")
        given = base
    name = given or DEFAULT_NAME
    refuse_form(request, given or "the uploaded model")
    suffix = Path(name).suffix.lower()
    if suffix not in (*CONTAINER_SUFFIXES, PACKAGE_SUFFIX):
        raise InvalidRequestError(
            f"filename {name!r} must end in one of {', '.join(CONTAINER_SUFFIXES)} or "
            f"{PACKAGE_SUFFIX} (a bioimage.io model package)"
        )
    if given:  # kept and shown as an upload's name is: no folders, no control characters
        given = name = kept_name(given, name[-len(suffix) :], "model")
    where = given or "the uploaded model"
    upload = config.uploads_dir / f"model-{new_id()}"
    imported = upload.with_name(f"{upload.name}.czann")
    await save_body(request, upload, config.max_model_bytes)
    try:
        refuse_boundary(upload, where)
        stored = upload
        with image_check(request, user["user"]):  # run on a probe tile, in a child
            if suffix == PACKAGE_SUFFIX:
                stored = await asyncio.to_thread(_import_package, upload, imported, name)
                suffix = ".czann"
            record = await asyncio.to_thread(
                registry.add, stored, owner=user["user"], name=name, suffix=suffix,
                shared=shared,
            )  # fmt: skip
    except ScopeMLError as err:
        if given or err.path != name:
            raise
        raise InvalidRequestError(f"{where}: {err.problem}") from err  # not "model.czann: …"
    finally:
        upload.unlink(missing_ok=True)
        imported.unlink(missing_ok=True)
    return ModelInfo(**record)


def _import_package(upload: Path, target: Path, name: str) -> Path:
    """An uploaded bioimage.io package imported as the czann ``target`` (in memory, then
    written): ONNX weights only, since exporting TorchScript runs torch on the uploaded code.
    Errors name the upload by ``name``, never by the server's file."""
    from scopeml.errors import InvalidContainerError
    from scopeml.model.bioimageio.importer import build_czann
    from scopeml.model.bioimageio.package import is_package, open_package
    from scopeml.model.container import write_container

    if not is_package(upload):
        raise InvalidContainerError(
            "not a bioimage.io model package (no rdf.yaml or bioimageio.yaml at the top of the "
            f"zip); uploads take {', '.join(CONTAINER_SUFFIXES)} containers or such a package",
            path=name,
        )
    try:
        package = open_package(upload)
        try:
            if package.description.weights.onnx is None:
                raise InvalidContainerError(CONVERT_FIRST)
            imported = build_czann(package)
        finally:
            package.close()
        return write_container(target, imported.graph, imported.metadata)
    except ScopeMLError as err:
        raise InvalidContainerError(err.problem, path=name) from err


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
