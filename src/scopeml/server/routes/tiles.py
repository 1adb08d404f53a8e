"""Tile routes: predict one tile or a batch with a model, batched with concurrent requests."""

from __future__ import annotations

from typing import Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Request, Response, status

from scopeml.errors import IncompatibleModelError, InvalidRequestError, ModelTimeoutError
from scopeml.server.deps import Config, Registry, User, VisibleModel, read_body
from scopeml.server.models import RUNTIME_KEY, server_problem, spec_from_dict
from scopeml.server.schemas import ERRORS, NPY_BODY, NPY_RESPONSE, STREAMED
from scopeml.server.tiles import (
    NPY_MEDIA_TYPE,
    check_tile,
    decode_tile,
    encode_array,
    finite_batch,
    labels_from_probabilities,
    tile_memory,
)

router = APIRouter(tags=["tiles"])


@router.post(
    "/models/{model_id}/predict",
    openapi_extra=NPY_BODY,
    max_body_size=STREAMED,
    response_class=Response,
    responses={**NPY_RESPONSE, **ERRORS, 413: {"description": "Tile too large"}},
)
async def predict_tile(
    request: Request,
    record: VisibleModel,
    config: Config,
    registry: Registry,
    user: User,
    output: Literal["probabilities", "labels"] = "probabilities",
) -> Response:
    """Predict one tile ``C×[Z×]Y×X`` or a batch ``N×C×[Z×]Y×X``.

    The body is ``.npy`` bytes, or raw bytes with ``X-Tile-Dtype`` and ``X-Tile-Shape``
    headers. The answer is ``.npy``: float32 probabilities ``[N×]K×[Z×]Y×X`` or, with
    ``output=labels``, the labels ``[N×][Z×]Y×X`` as ``segment`` writes them (class ``k`` as
    ``k + 1``). Tiles arriving together are batched.
    A pixel NaN or infinite in any channel is read as 0 and answers 0 (every probability,
    label 0), as in a local run; the rest of its tile is predicted as usual.
    A tile whose output would not fit the server's per-tile memory limit answers 413; tiles
    sent side by side wait their turn while others hold ``predict_workers`` times that limit.
    """
    body = await read_body(request, config.max_tile_bytes)
    spec = spec_from_dict(record["spec"])
    tile = decode_tile(body, request.headers)
    needed = tile_memory(tile, spec, len(body), record["spec"].get(RUNTIME_KEY, 0.0))
    if needed > config.max_tile_memory:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"tile {tuple(tile.shape)} needs about {needed} bytes of server memory (input, "
            f"{spec.n_classes} class outputs, the model's working memory); the limit is "
            f"{config.max_tile_memory}: send smaller tiles",
        )
    async with registry.tile_memory(user["user"], needed):  # requests side by side: bounded
        batch, invalid = finite_batch(check_tile(tile, spec))
        try:
            probabilities = await registry.batcher(record["id"], user["user"]).predict(batch)
        except (IncompatibleModelError, ModelTimeoutError) as err:  # no server paths
            raise InvalidRequestError(server_problem(err)) from err
        if invalid is not None:  # as a local run answers them (tiling.kernel.mask_invalid)
            probabilities = np.where(invalid[:, np.newaxis], np.float32(0), probabilities)
        if output == "labels":
            probabilities = labels_from_probabilities(probabilities)
            if invalid is not None:
                probabilities[invalid] = 0
        if tile.ndim == spec.spatial_dims + 1:
            probabilities = probabilities[0]
        return Response(encode_array(probabilities), media_type=NPY_MEDIA_TYPE)
