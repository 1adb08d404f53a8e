"""Run a model container: one long-lived ONNX Runtime session behind the :class:`Model` protocol.

czann graphs are channels-last (``N×Y×X×C``); inside scopeml batches are channels-first
(``N×C×Y×X``). :class:`OnnxModel` transposes at its boundary, so the engine never sees NHWC.

A graph is untrusted code of a sort: a ``Loop`` of 2**62 iterations is 400 bytes. Every run
therefore has a time budget; a watchdog timer sets ONNX Runtime's ``RunOptions.terminate`` when
it is spent, ONNX Runtime stops between two nodes (loop iterations included) and the call raises
:class:`~scopeml.errors.ModelTimeoutError`. One kernel that runs long on its own (a huge
``MatMul``) is not interrupted mid-kernel; memory checks before a run keep those small.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import threading
import warnings
from collections.abc import Sequence
from os import PathLike
from typing import Any

import numpy as np

from scopeml.errors import (
    IncompatibleModelError,
    InvalidContainerError,
    InvalidRequestError,
    ModelTimeoutError,
    ScopeMLError,
    find_stack_level,
)
from scopeml.model.container import Container, graph_skeleton, read_container
from scopeml.model.graph import (
    MEMORY_LIMIT_ENV,
    largest_tensor,
    resolve_memory_limit,
    softmax_channels_last,
)
from scopeml.model.metadata import LegacyModelMetadata, ModelMetadata, default_classes
from scopeml.model.spec import ModelSpec

logger = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

#: Environment variable with the default per-call time budget, in seconds (``0``: none).
TIME_BUDGET_ENV = "SCOPEML_MODEL_TIME_BUDGET"
#: Per-call time budget when neither the caller nor the environment sets one, in seconds.
DEFAULT_TIME_BUDGET = 300.0


def resolve_time_budget(time_budget: float | None = None) -> float:
    """The per-call time budget in seconds: ``time_budget``, else the environment, else 300.

    ``0`` (or ``inf``) means no budget. A malformed value is an :class:`InvalidRequestError`.

    Examples
    --------
    >>> resolve_time_budget(2.5)
    2.5
    >>> resolve_time_budget(0)
    inf
    """
    source = "time budget"
    if time_budget is None:
        text = os.environ.get(TIME_BUDGET_ENV, "").strip()
        if not text:
            return DEFAULT_TIME_BUDGET
        source = TIME_BUDGET_ENV
        try:
            time_budget = float(text)
        except ValueError as err:
            raise InvalidRequestError(f"{source} must be seconds, got {text!r}") from err
    value = float(time_budget)
    if math.isnan(value) or value < 0:
        raise InvalidRequestError(f"{source} must be seconds >= 0 (0: none), got {value}")
    return math.inf if value == 0 else value


def model_spec(container: Container) -> ModelSpec:
    """What the engine needs to know about a container, read from its metadata and graph.

    ``halo`` is ``MinOverlap`` (``BorderSize`` for legacy models) per spatial axis;
    ``tile_shape`` is the graph's fixed spatial input size (``None`` when the graph is dynamic,
    whatever ``InputShape`` says); ``tile_step`` comes from the graph's strides; ``pixel_size`` is
    ``Scaling`` (x, y[, z] in metres) reordered to the spatial axes ``([Z,] Y, X)``;
    ``normalize`` is the policy the container records (a built-in twin's when it records none).
    """
    graph, meta = container.graph, container.metadata
    spatial = graph.spatial_dims
    normalize = None
    if isinstance(meta, LegacyModelMetadata):
        in_channels = graph.input_shape[-1] or len(meta.pixel_types)
        classes = meta.classes
        halo = (meta.border_size,) * spatial
        name, pixel_size = meta.name, None
        extra: dict[str, Any] = {"model_id": str(meta.model_id), "format": "czseg"}
        normalize = _builtin_copy(container, extra)
    else:
        if not meta.model_type.is_pixelwise:
            classifies = "Classification" in meta.model_type.value
            raise IncompatibleModelError(
                f"{meta.model_type.with_article} model has no per-pixel output to tile"
                + ("; it classifies whole images or objects: scopeml classify "
                   "(sm.classify_images, sm.classify_object_crops)" if classifies else ""),
                path=container.path,
            )  # fmt: skip
        if "InstanceSegmentation" in meta.model_type.value:  # ZEN's own layout is unknown
            warnings.warn(
                f"{container.path or meta.model_name}: {meta.model_type.with_article} model is "
                "run as a semantic segmentation: its output is taken as per-pixel class scores "
                "(instances: --outputs instances, from a boundary class); a graph that outputs "
                "anything else gives meaningless labels",
                UserWarning,
                stacklevel=find_stack_level(),
            )
        in_channels = graph.input_shape[-1] or meta.in_channels
        classes = meta.classes or default_classes(meta.out_channels, meta.model_type)
        halo = meta.min_overlap or (0,) * spatial
        name = meta.model_name or (container.path.stem if container.path else "")
        pixel_size = _pixel_size(meta, spatial)
        extra = {
            "model_id": str(meta.model_id),
            "format": "czann",
            "model_type": meta.model_type.value,
            # scopeml's own model.json keys (scale auto's diameter …): they travel with the spec
            **{k: v for k, v in (meta.model_extra or {}).items() if k.startswith("ScopeML")},
        }
        normalize = meta.normalize  # scopeml's models record their policy: the spec says it
        if normalize is None and "ScopeMLObjectDiameter" not in extra:
            normalize = _builtin_copy(container, extra)  # packed by czmodel, say: none recorded
    return ModelSpec(
        spatial_dims=spatial,
        in_channels=int(in_channels),
        classes=tuple(classes),
        halo=tuple(int(size) for size in halo),
        tile_step=graph.tile_step,
        tile_shape=graph.fixed_spatial,
        name=name,
        pixel_size=pixel_size,
        extra=extra,
        normalize=normalize,
    )


def _builtin_copy(container: Container, extra: dict[str, Any]) -> str | None:
    """A copy of a built-in model that records neither its normalisation nor its object size
    (``model convert nuclei -o m.czseg``: the legacy XML has no place for them; its graph
    packed into a czann by czmodel) runs as the built-in does: they come from the built-in
    (the normalisation returned, the object size into ``extra``), with a warning saying so.
    Packed by czmodel, it ran on raw intensities without a word (18,345 pixels differed)."""
    from scopeml.model.convert import builtin_twin, scopeml_keys

    twin = builtin_twin(container.onnx_bytes)
    if twin is None:
        return None
    name, meta = twin
    extra.update(scopeml_keys(meta))
    legacy = isinstance(container.metadata, LegacyModelMetadata)
    shown = container.path.name if container.path else "the container"
    warnings.warn(
        f"{shown}: the graph is scopeml's built-in {name} model, so its normalisation "
        f"{meta.normalize} and object size apply, which "
        f"{'a legacy container cannot record' if legacy else 'this czann does not record'} "
        "(--normalize and --scale choose others)",
        UserWarning,
        stacklevel=find_stack_level(),
    )
    return meta.normalize


def _pixel_size(meta: ModelMetadata, spatial: int) -> tuple[float, ...] | None:
    if meta.scaling is None or len(meta.scaling) < spatial:
        return None
    return tuple(float(size) for size in reversed(meta.scaling[:spatial]))


def set_default_time_budget(time_budget: float | None) -> None:
    """Make ``time_budget`` the default of every model loaded later in this process.

    For command-line options (``--time-budget``): it sets ``$SCOPEML_MODEL_TIME_BUDGET``, so
    models loaded deep inside a run (or in its worker processes) get it too. ``None`` leaves the
    default as it is.
    """
    if time_budget is not None:
        value = resolve_time_budget(time_budget)
        os.environ[TIME_BUDGET_ENV] = "0" if math.isinf(value) else repr(value)


def choose_providers(requested: Sequence[str] | None = None) -> list[str]:
    """ONNX Runtime providers: ``requested`` if given, else CUDA when present, else CPU.

    A missing CUDA provider is a fallback, logged once per process: at WARNING where an NVIDIA
    device exists (a CPU-only ONNX Runtime on a GPU machine is worth fixing), else at INFO (on
    a CPU machine every model load would otherwise repeat it). An unknown requested provider is
    an :class:`InvalidRequestError` listing the available ones.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested:
        unknown = [name for name in requested if name not in available]
        if unknown:
            raise InvalidRequestError(
                f"ONNX Runtime providers {unknown} are not available; available: {available}"
            )
        return list(requested)
    if CUDA in available:
        return [CUDA, CPU]
    _note_cpu_fallback(tuple(available))
    return [CPU]


@functools.cache
def _note_cpu_fallback(available: tuple[str, ...]) -> None:
    level = logging.WARNING if os.path.exists("/dev/nvidiactl") else logging.INFO
    logger.log(
        level, "%s is not available (ONNX Runtime has %s); running on CPU", CUDA, list(available)
    )


def check_constant_tensors(container: Container, memory_limit: int | None = None) -> None:
    """Refuse a graph that makes a tensor over the memory limit whatever its input.

    ONNX Runtime folds constant sub-graphs when it builds a session, so a few hundred bytes of
    ``ConstantOfShape``/``Tile`` can take gigabytes before the first run; shape inference on
    the graph without its weights sizes them first.
    """
    limit = resolve_memory_limit(memory_limit)
    name, size = largest_tensor(graph_skeleton(container.onnx_bytes, path=container.path))
    if size > limit:
        raise InvalidContainerError(
            f"the graph would make tensor {name!r} of {size / 2**30:.2f} GiB whatever its "
            f"input; the limit is {limit / 2**30:.2f} GiB ({MEMORY_LIMIT_ENV})",
            path=container.path,
        )


def session_bytes(onnx_bytes: bytes) -> bytes:
    """The graph a session runs: ``onnx_bytes`` with any channels-first softmax before the
    turn to channels last made a last-axis one (:func:`softmax_channels_last`: the same
    numbers, sooner); parsed only when the bytes name a ``Softmax``."""
    if b"Softmax" not in onnx_bytes:
        return onnx_bytes
    import onnx

    model = onnx.load_model_from_string(onnx_bytes)
    return model.SerializeToString() if softmax_channels_last(model) else onnx_bytes


class OnnxModel:
    """A model container ready to run: metadata, :class:`ModelSpec` and one ONNX session.

    The session is created once and reused for every batch; ``predict`` is safe to call from
    several threads (ONNX Runtime sessions are).

    Examples
    --------
    >>> from scopeml.model.testing import tiny_czann
    >>> model = load_model(tiny_czann(), providers=["CPUExecutionProvider"])
    >>> model.spec.halo, model.spec.tile_step, model.spec.tile_shape
    ((16, 16), (4, 4), None)
    >>> model.predict(np.zeros((2, 1, 16, 24), np.float32)).shape
    (2, 2, 16, 24)
    """

    def __init__(
        self,
        container: Container,
        *,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        time_budget: float | None = None,
        memory_limit: int | None = None,
    ) -> None:
        import onnxruntime as ort
        from onnx import helper

        self.spec = model_spec(container)
        self.time_budget = resolve_time_budget(time_budget)
        check_constant_tensors(container, memory_limit)
        self.metadata = container.metadata
        self.path = container.path
        chosen = choose_providers(providers)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # ONNX Runtime's memory pattern plans one block per run for all of a tile's
        # intermediate tensors; tiles run side by side each hold one, and the arena keeps
        # them. Without it the arena reuses freed tensors: the nuclei model's 1120² tiles on
        # two threads peaked at about 0.78x the memory and ran in about 0.9x the time.
        options.enable_mem_pattern = False
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        try:
            self._session = ort.InferenceSession(
                session_bytes(container.onnx_bytes), sess_options=options, providers=chosen
            )
        except Exception as err:  # onnxruntime's Fail/InvalidGraph/NotImplemented: bad graph
            raise InvalidContainerError(
                f"ONNX Runtime cannot load the graph ({err})", path=container.path
            ) from err
        self.providers = tuple(self._session.get_providers())
        if chosen[0] not in self.providers:
            logger.warning(
                "%s could not be initialised; %s runs on %s", chosen[0], self.path, self.providers
            )
        model_input = self._session.get_inputs()[0]
        self._input_name = container.graph.input_name
        self._output_name = container.graph.output_name
        self._input_dtype = helper.tensor_dtype_to_np_dtype(container.graph.input_dtype)
        self._warned_input = self._warned_output = False
        batch_dim = model_input.shape[0] if model_input.shape else None
        self._max_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None

    def __repr__(self) -> str:
        spec = self.spec
        return (
            f"OnnxModel(path={self.path!r}, in_channels={spec.in_channels}, "
            f"classes={spec.classes!r}, halo={spec.halo}, providers={self.providers})"
        )

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Map an ``N×C×[Z×]Y×X`` batch to ``N×K×[Z×]Y×X`` float32 model output.

        Raises
        ------
        IncompatibleModelError
            Wrong rank or channel count, a size other than a fixed ``tile_shape``, or a graph
            that fails on this input.
        """
        batch = np.asarray(batch)
        spec = self.spec
        rank = spec.spatial_dims + 2
        if batch.ndim != rank:
            axes = "N×C×Y×X" if spec.spatial_dims == 2 else "N×C×Z×Y×X"
            raise IncompatibleModelError(
                f"batch has shape {batch.shape}; the model expects {axes}", path=self.path
            )
        if batch.shape[1] != spec.in_channels:
            raise IncompatibleModelError(
                f"batch has {batch.shape[1]} channels; the model expects {spec.in_channels}",
                path=self.path,
            )
        spatial = tuple(batch.shape[2:])
        if spec.tile_shape is not None and spatial != spec.tile_shape:
            raise IncompatibleModelError(
                f"batch has spatial size {spatial}; the model's graph is fixed to "
                f"{spec.tile_shape}",
                path=self.path,
            )
        channels_last = self._as_input(np.moveaxis(batch, 1, -1))
        if len(batch) == 0:
            return np.zeros((0, spec.n_classes, *spatial), np.float32)
        step = self._max_batch or len(batch)
        outputs = [self._run(channels_last[i : i + step]) for i in range(0, len(batch), step)]
        result = outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
        expected = (len(batch), *spatial, spec.n_classes)
        if result.shape != expected:
            raise IncompatibleModelError(
                f"the graph returned shape {result.shape}; expected {expected} (N×...×K)",
                path=self.path,
            )
        self._check_output(result, batch)
        return np.ascontiguousarray(np.moveaxis(result, -1, 1), dtype=np.float32)

    def _check_output(self, result: np.ndarray, batch: np.ndarray) -> None:
        """One warning the first time the graph answers NaN or infinity where its input was
        finite (the engine's always is): such pixels were written as label 0, or as infinity
        in a regression image, without a word."""
        if self._warned_output or np.isfinite(result).all():
            return
        finite_input = np.isfinite(batch).all(axis=1)[..., None]  # N×…×1, as result is N×…×K
        bad = int(np.count_nonzero(~np.isfinite(result) & finite_input))
        if not bad:
            return
        self._warned_output = True
        warnings.warn(
            f"{self.path}: the model answered NaN or infinity ({bad:,} of {result.size:,} values "
            "of a batch) on finite input: those pixels get no class (label 0), a regression "
            "image keeps them; check the model (scopeml model validate)",
            UserWarning,
            stacklevel=3,
        )

    def _as_input(self, values: np.ndarray) -> np.ndarray:
        """The graph's input dtype. A graph of a narrower type gets values beyond its range
        clipped to it, and an integer graph fractions rounded, with one warning: cast, a
        float16 graph's became infinite (its output NaN: a raw 16-bit image's brightest pixels
        are over 65504) and a uint8 graph's wrapped round (256 read as 0)."""
        dtype = np.dtype(self._input_dtype)
        integer = np.issubdtype(dtype, np.integer)
        if values.dtype == dtype or not (integer or dtype == np.float16):
            return np.ascontiguousarray(values, dtype=dtype)
        info = np.iinfo(dtype) if integer else np.finfo(dtype)
        low, high = float(info.min), float(info.max)
        with np.errstate(invalid="ignore"):  # NaN: no class, as the engine gives it none
            over = bool(((values < low) | (values > high)).any())
        fractions = integer and bool(np.any(np.modf(values)[0][np.isfinite(values)]))
        if (over or fractions) and not self._warned_input:
            self._warned_input = True
            beyond = f"{low:g}…{high:g}" if integer else f"±{high:g}"
            what = " and ".join(
                ([f"values beyond {beyond} (clipped to them)"] if over else [])
                + (["fractions (rounded)"] if fractions else [])
            )
            warnings.warn(
                f"{self.path}: the model takes {dtype} and the input has {what}; normalise "
                "the input to the model's range to keep its values apart",
                UserWarning,
                stacklevel=2,
            )
        if integer:
            values = np.rint(np.nan_to_num(values, nan=0.0))
        return np.ascontiguousarray(np.clip(values, low, high), dtype=dtype)

    def release_memory(self) -> None:
        """Give back what ONNX Runtime's arena holds from earlier runs (it keeps it for the
        next: a server stayed 1 GB larger after a burst of tiles): a run on the smallest
        input the graph takes, asking the arena to shrink as it ends. For a process holding
        models while idle; every run in between keeps the arena's speed."""
        spec = self.spec
        smallest = np.zeros((1, *(spec.tile_shape or spec.tile_step), spec.in_channels))
        feeds = {self._input_name: smallest.astype(self._input_dtype)}
        with contextlib.suppress(ScopeMLError):  # the arena as it was
            run_within_budget(self._session, [self._output_name], feeds, path=self.path,
                              time_budget=self.time_budget, release_memory=True)  # fmt: skip

    def _run(self, channels_last: np.ndarray) -> np.ndarray:
        feeds = {self._input_name: channels_last}
        (output,) = run_within_budget(
            self._session, [self._output_name], feeds, time_budget=self.time_budget, path=self.path
        )
        return np.asarray(output)


#: ONNX Runtime's words for memory it could not allocate (its BFCArena), with the size.
_ALLOCATION = re.compile(r"Failed to allocate memory for requested buffer of size (\d+)")


def run_within_budget(
    session: Any,
    output_names: Sequence[str] | None,
    feeds: dict[str, np.ndarray],
    *,
    time_budget: float,
    path: str | PathLike[str] | None = None,
    release_memory: bool = False,
) -> list[Any]:
    """``session.run(output_names, feeds)``, stopped when it runs past ``time_budget`` seconds.

    The one watchdog of every ONNX Runtime run in scopeml: a timer sets the run's own
    ``RunOptions.terminate`` (other runs of the session go on), ONNX Runtime stops between two
    nodes, and the call raises :class:`~scopeml.errors.ModelTimeoutError`; any other failure is
    an :class:`~scopeml.errors.IncompatibleModelError` naming the input shape.

    Examples
    --------
    >>> import onnxruntime as ort
    >>> from scopeml.model.testing import endless_loop_onnx
    >>> graph = endless_loop_onnx().SerializeToString()
    >>> session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    >>> feeds = {"input": np.zeros((1, 4, 4, 2), np.float32)}
    >>> run_within_budget(session, None, feeds, time_budget=0.2)
    Traceback (most recent call last):
    ...
    scopeml.errors.ModelTimeoutError: the model ran past its time budget of 0.2 s ...
    """
    import onnxruntime as ort

    options = ort.RunOptions()
    options.log_severity_level = 4  # a stopped run is reported as our error, not logged
    if release_memory:  # the arena's free chunks given back as the run ends
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    watchdog = None
    if math.isfinite(time_budget):
        watchdog = threading.Timer(time_budget, setattr, (options, "terminate", True))
        watchdog.daemon = True
        watchdog.start()
    shapes = ", ".join(str(array.shape) for array in feeds.values())
    try:
        return session.run(output_names, feeds, options)
    except Exception as err:  # onnxruntime raises its own types for bad shapes
        if _ALLOCATION.search(str(err)):  # its arena's: said as memory, with the way out
            wanted = _ALLOCATION.search(str(err))[1]
            raise MemoryError(
                f"the model could not get {int(wanted) / 2**20:,.0f} MB for a batch of "
                f"{shapes} (N×...×C)"
            ) from err
        if options.terminate:
            raise ModelTimeoutError(
                f"the model ran past its time budget of {time_budget:g} s and was stopped "
                f"(input {shapes}, N×...×C); set --time-budget or {TIME_BUDGET_ENV} if it "
                "needs longer",
                path=path,
            ) from err
        raise IncompatibleModelError(
            f"the graph failed on input {shapes} (N×...×C): {err}", path=path
        ) from err
    finally:
        if watchdog is not None:
            watchdog.cancel()


def load_model(
    source: str | PathLike[str] | Container,
    *,
    providers: Sequence[str] | None = None,
    threads: int | None = None,
    time_budget: float | None = None,
    memory_limit: int | None = None,
) -> OnnxModel:
    """Open a ``.czann``/``.czseg``/``.czmodel`` (or a :class:`Container`) for inference.

    Parameters
    ----------
    source
        Container file or an already read container.
    providers
        ONNX Runtime providers in order of preference; default CUDA when present, else CPU.
    threads
        Intra-op threads of the session; default ONNX Runtime's (all physical cores). Set it
        when several workers share a machine.
    time_budget
        Seconds one ``predict`` call (one ONNX Runtime run) may take before it is stopped with
        :class:`~scopeml.errors.ModelTimeoutError`; default ``$SCOPEML_MODEL_TIME_BUDGET``, else
        300; ``0`` for none.
    memory_limit
        Largest tensor (bytes) the graph may make whatever its input (constant-folded by ONNX
        Runtime); default ``$SCOPEML_MODEL_MEMORY_LIMIT``, else 1 GiB.
    """
    container = source if isinstance(source, Container) else read_container(source)
    return OnnxModel(
        container,
        providers=providers,
        threads=threads,
        time_budget=time_budget,
        memory_limit=memory_limit,
    )
