"""The model registry: containers on disk under random ids, their records, loaded sessions.

An upload is validated as ``scopeml model validate`` does it (a safe container, then a zero
probe tile run under the time budget and a memory bound: :func:`~scopeml.model.probe.probe_model`),
loaded once to learn its :class:`~scopeml.model.spec.ModelSpec`, then moved to
``models/<id><suffix>``;
the user's file name is kept only as a display name. Loaded models are cached (one runtime session
per model, least recently used evicted), each with one :class:`MicroBatcher` for tile requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import hashlib
import json
import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from scopeml.errors import InvalidContainerError, ModelTimeoutError, ScopeMLError
from scopeml.model.container import CONTAINER_SUFFIXES
from scopeml.model.registry import BUILTIN_MODELS
from scopeml.model.spec import Model, ModelSpec, recorded_normalize
from scopeml.server.batcher import MicroBatcher
from scopeml.server.budget import ByteBudget
from scopeml.server.config import ServerConfig, private_dir
from scopeml.server.database import Database, new_id
from scopeml.server.fair import FairScheduler
from scopeml.server.metrics import Metrics

BUILTIN_OWNER = "(built-in)"  # the owner of a built-in model's record: no user has this name
PROBE_TIME_BUDGET_S = 10.0
RUNTIME_KEY = "runtime_bytes_per_pixel"  # in a model record's spec: see runtime_bytes_per_pixel
SPEC_FIELDS = (
    "spatial_dims",
    "in_channels",
    "classes",
    "halo",
    "tile_step",
    "tile_shape",
    "name",
    "pixel_size",
    "normalize",
)


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    """The JSON form of a spec (``extra`` kept only where it is plain JSON).

    Examples
    --------
    >>> spec = ModelSpec(2, 1, ("bg", "fg"), (8, 8))
    >>> spec_from_dict(spec_to_dict(spec)) == spec
    True
    """
    data = asdict(spec)
    result = {name: data[name] for name in SPEC_FIELDS}
    try:
        result["extra"] = json.loads(json.dumps(spec.extra))
    except (TypeError, ValueError):
        result["extra"] = {}
    return result


def spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    """Inverse of :func:`spec_to_dict` (lists become tuples again)."""
    values = {name: data.get(name) for name in SPEC_FIELDS}
    for name in ("classes", "halo", "tile_step", "tile_shape", "pixel_size"):
        if values[name] is not None:
            values[name] = tuple(values[name])
    values["name"] = values["name"] or ""
    values["tile_step"] = values["tile_step"] or ()
    return ModelSpec(**values, extra=dict(data.get("extra") or {}))


def server_problem(err: ScopeMLError) -> str:
    """``err.problem`` as the server's user should read it: a model past its time budget
    names the server's ``--model-time-budget``, not the command line's ``--time-budget``.

    Examples
    --------
    >>> from scopeml.errors import ModelTimeoutError
    >>> server_problem(ModelTimeoutError("ran past 3 s; set --time-budget or X if it needs longer"))
    'ran past 3 s; the server sets it with --model-time-budget'
    """
    if isinstance(err, ModelTimeoutError):
        return re.sub(
            r"set --time-budget or \w+ if it needs longer",
            "the server sets it with --model-time-budget",
            err.problem,
        )
    return err.problem


def served_spec(model: Model) -> ModelSpec:
    """A model's spec as a client sees it: with the input normalisation its container records
    (so a client's engine normalises as a local run of the same file does)."""
    return replace(model.spec, normalize=recorded_normalize(model))


def runtime_bytes_per_pixel(path: Path, spec: ModelSpec) -> float:
    """Bytes of intermediate tensors the graph makes per input pixel (all of them summed).

    ONNX shape inference on the graph without its weights, at the probe tile's size; the runtime
    reuses buffers, so this is an upper bound of its working memory (374 B/pixel for the test
    U-Net, whose server process grew by ~270 B/pixel on a 1536² tile). The server counts it in
    a tile's memory (:func:`scopeml.server.tiles.tile_memory`). 0 when inference cannot tell.
    """
    import onnx
    from onnx import helper

    from scopeml.model.container import graph_skeleton, read_container
    from scopeml.model.probe import probe_spatial_shape

    spatial = probe_spatial_shape(spec)
    skeleton = graph_skeleton(read_container(path).onnx_bytes, path=path)
    dims = skeleton.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != len(spatial) + 2:
        return 0.0
    for dim, size in zip(dims, (1, *spatial, spec.in_channels), strict=True):
        dim.Clear()
        dim.dim_value = size
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton, data_prop=True)
    except Exception:  # a best effort: odd graphs still run under the time budget
        return 0.0
    total = 0
    for value in [*inferred.graph.value_info, *inferred.graph.output]:
        tensor = value.type.tensor_type
        sizes = [dim.dim_value for dim in tensor.shape.dim]
        if sizes and all(size > 0 for size in sizes):
            total += math.prod(sizes) * helper.tensor_dtype_to_np_dtype(tensor.elem_type).itemsize
    return total / math.prod(spatial)


def load_model_file(path: Path, *, time_budget: float | None = None) -> Model:
    """Load a stored container (one place to change when other model kinds are served).

    ``time_budget``: seconds one ``predict`` call may run before it is stopped with
    :class:`~scopeml.errors.ModelTimeoutError` (``0``: no limit).
    """
    from scopeml.model import load_model

    return load_model(path, time_budget=time_budget)


class ModelRegistry:
    """Models of one server: files, database records, cached sessions and their batchers.

    Each user has a batcher per model (batches never mix users), and every batcher's calls
    take a slot of one :class:`FairScheduler`: the predict workers are shared round-robin
    between users, at most ``config.user_predict_workers`` each.
    """

    def __init__(
        self,
        config: ServerConfig,
        db: Database,
        metrics: Metrics,
        executor: Executor | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.metrics = metrics
        self._executor = executor
        self._cache: OrderedDict[str, Model] = OrderedDict()
        self._batchers: dict[tuple[str, str], MicroBatcher] = {}
        self._builtin_records: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.scheduler = FairScheduler(config.predict_workers, config.user_predict_workers or 1)
        #: The memory all tile requests hold at once (each within ``max_tile_memory``), and
        #: one user's share of it (as of the predict workers).
        self.tile_budget = ByteBudget(config.max_tile_memory * config.predict_workers)
        self._user_budgets: dict[str, ByteBudget] = {}
        self._trim: asyncio.Task[None] | None = None  # see _trim_when_idle
        private_dir(config.models_dir)

    def path(self, model_id: str) -> Path:
        """The container file of a registered or built-in model."""
        if model_id in BUILTIN_MODELS:
            return BUILTIN_MODELS[model_id].path
        for suffix in CONTAINER_SUFFIXES:
            candidate = self.config.models_dir / f"{model_id}{suffix}"
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"model file of {model_id} is missing")

    def add(
        self, upload: Path, *, owner: str, name: str, suffix: str, shared: bool = False
    ) -> dict[str, Any]:
        """Validate an uploaded container and register it; the upload file is consumed.

        Raises
        ------
        InvalidContainerError
            The container is corrupt, unsafe or does not load.
        """
        if suffix not in CONTAINER_SUFFIXES:
            raise InvalidContainerError(
                f"unknown container type {suffix!r}; known: {', '.join(CONTAINER_SUFFIXES)}",
                path=name,
            )
        model_id = new_id()
        target = self.config.models_dir / f"{model_id}{suffix}"
        os.replace(upload, target)
        try:
            from scopeml.model.probe import probe_model

            _refuse_classifier(target)
            probe_model(target, time_budget=self.probe_time_budget)  # runs once, bounded
            model = self._load(target)
            spec = served_spec(model)
            if spec.name == model_id:  # no name in the metadata: not the random file name
                spec = replace(spec, name=Path(name).stem)
            per_pixel = runtime_bytes_per_pixel(target, spec)
        except Exception as err:
            target.unlink(missing_ok=True)
            give_back_memory()  # a refused container may have unpacked hundreds of MB
            if isinstance(err, ScopeMLError):  # corrupt, unsafe, too slow, too big, failing
                raise InvalidContainerError(server_problem(err), path=name) from err
            raise InvalidContainerError(f"model does not load: {err}", path=name) from err
        record = {
            "id": model_id,
            "owner": owner,
            "name": name,
            "shared": shared,
            "size": target.stat().st_size,
            "sha256": _sha256(target),
            "spec": {**spec_to_dict(spec), RUNTIME_KEY: per_pixel},
            "created": time.time(),
        }
        self.db.add_model(record)
        self._remember(model_id, model)
        return self.db.get_model(model_id) or record

    @property
    def probe_time_budget(self) -> float:
        """Seconds the upload's probe tile may take: the model time budget, at most
        ``PROBE_TIME_BUDGET_S`` (a probe tile is small; an upload should not wait long)."""
        budget = self.config.model_time_budget or math.inf
        return min(budget, PROBE_TIME_BUDGET_S)

    def builtins(self) -> list[dict[str, Any]]:
        """Records of the built-in models (every user may use them; nobody may change them)."""
        return [self.builtin(name) for name in sorted(BUILTIN_MODELS)]

    def builtin(self, name: str) -> dict[str, Any]:
        """The record of the built-in model ``name`` (its spec read once, then kept)."""
        with self._lock:
            record = self._builtin_records.get(name)
        if record is not None:
            return record
        path = BUILTIN_MODELS[name].path
        spec = served_spec(self.get(name))
        record = {
            "id": name,
            "owner": BUILTIN_OWNER,
            "name": name,
            "shared": True,
            "size": path.stat().st_size,
            "sha256": _sha256(path),
            "spec": {**spec_to_dict(spec), RUNTIME_KEY: runtime_bytes_per_pixel(path, spec)},
            "created": path.stat().st_mtime,
            "builtin": True,
            "description": BUILTIN_MODELS[name].description,
        }
        with self._lock:
            self._builtin_records[name] = record
        return record

    def visible(self, model_id: str, user: dict[str, Any]) -> dict[str, Any] | None:
        """The record of a model ``user`` may use, ``None`` when absent or private to another;
        a built-in name (``"nuclei"``) is every user's."""
        if model_id in BUILTIN_MODELS:
            return self.builtin(model_id)
        record = self.db.get_model(model_id)
        if record is None:
            return None
        if record["owner"] == user["user"] or record["shared"] or user["admin"]:
            return record
        return None

    def get(self, model_id: str) -> Model:
        """The loaded model (loaded once, then cached)."""
        with self._lock:
            model = self._cache.get(model_id)
            if model is not None:
                self._cache.move_to_end(model_id)
                return model
        model = self._load(self.path(model_id))
        self._remember(model_id, model)
        return model

    def _load(self, path: Path) -> Model:
        return load_model_file(path, time_budget=self.config.model_time_budget)

    def batcher(self, model_id: str, user: str) -> MicroBatcher:
        """The micro-batcher of ``user``'s tiles for a model (created on first use)."""
        with self._lock:
            batcher = self._batchers.get((model_id, user))
            if batcher is None:
                batcher = MicroBatcher(
                    lambda batch: self.get(model_id).predict(batch),
                    max_batch=self.config.max_batch,
                    wait_s=self.config.batch_wait_ms / 1000,
                    concurrency=self.config.user_predict_workers or 1,
                    executor=self._executor,
                    on_batch=self.metrics.add_tiles,
                    gate=lambda: self.scheduler.slot(user),
                )
                self._batchers[(model_id, user)] = batcher
            return batcher

    @contextlib.asynccontextmanager
    async def tile_memory(self, user: str, nbytes: int) -> AsyncIterator[None]:
        """Hold ``nbytes`` of the user's share, then of the server's budget, for the block."""
        share = self._user_budgets.get(user)
        if share is None:
            workers = self.config.user_predict_workers or 1
            share = self._user_budgets[user] = ByteBudget(self.config.max_tile_memory * workers)
        async with share.reserve(nbytes), self.tile_budget.reserve(nbytes):
            yield
        if self.tile_budget.used == 0 and (self._trim is None or self._trim.done()):
            self._trim = asyncio.get_running_loop().create_task(self._trim_when_idle())

    async def _trim_when_idle(self) -> None:
        """A burst of tiles over, give its memory back (the models' arenas and glibc keep it
        for reuse: the server stayed 1.36 GB after eight 1504² tiles of ``nuclei``, 0.29 GB
        now), once no tile has been held for ``IDLE_TRIM_S``: not between the tiles of one
        client's stream."""
        await asyncio.sleep(IDLE_TRIM_S)
        if self.tile_budget.used:
            return
        with self._lock:
            models = list(self._cache.values())
        for model in models:
            if callable(release := getattr(model, "release_memory", None)):
                await asyncio.to_thread(release)
        await asyncio.to_thread(give_back_memory)

    async def remove(self, model_id: str) -> None:
        """Delete a model's record, file, session and batcher."""
        self.db.delete_model(model_id)
        with self._lock:
            self._cache.pop(model_id, None)
            keys = [key for key in self._batchers if key[0] == model_id]
            batchers = [self._batchers.pop(key) for key in keys]
        for batcher in batchers:
            await batcher.close()
        for suffix in CONTAINER_SUFFIXES:
            (self.config.models_dir / f"{model_id}{suffix}").unlink(missing_ok=True)

    async def close(self) -> None:
        if self._trim is not None:
            self._trim.cancel()
        with self._lock:
            batchers = list(self._batchers.values())
            self._batchers.clear()
            self._cache.clear()
        for batcher in batchers:
            await batcher.close()

    def _remember(self, model_id: str, model: Model) -> None:
        with self._lock:
            self._cache[model_id] = model
            self._cache.move_to_end(model_id)
            while len(self._cache) > self.config.model_cache:
                self._cache.popitem(last=False)


#: Seconds without a tile request held before the server gives freed memory back.
IDLE_TRIM_S = 1.0

#: Model formats an upload may not be: what to do instead, a client can act on.
CLASSIFIER_UPLOAD = (
    "is a scopeml {kind}; model uploads take czann and legacy (.czseg/.czmodel) model "
    "containers. Run the classifier locally (scopeml segment -m FILE, or an analysis settings "
    "file), or on this server in an analysis job (submit_analysis, POST /analyses) whose "
    "settings name the classifier's file below the server's --allowed-root"
)


def _refuse_classifier(path: Path) -> None:
    """Refuse a pixel or object classifier with what to do instead (its own loader's refusal,
    'not a czann model container', tells a client nothing it can do)."""
    from scopeml.model.registry import classifier_kind

    kind = classifier_kind(path)
    if kind is not None:
        raise InvalidContainerError(CLASSIFIER_UPLOAD.format(kind=kind))


def give_back_memory() -> None:
    """Return freed heap memory to the system (glibc keeps it for reuse otherwise), so a
    refused upload does not leave the server hundreds of MB larger. A no-op off glibc."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
