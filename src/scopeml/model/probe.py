"""Validate a model by running it once: a small probe tile, a time budget, a memory bound.

A container can be well-formed and still hostile: a 400-byte ``Loop`` of 2**62 iterations, or a
``ConstantOfShape`` that asks for gigabytes. Before the probe runs, shape inference (with data
propagation, on the graph without its weights) sizes every tensor the graph would make for the
probe tile; one over the memory limit refuses the model without allocating anything. Then the
probe tile runs under the per-call time budget of :mod:`scopeml.model.runtime`, in a child
process whose address space is capped (``RLIMIT_AS``) at what it had after loading the model
plus the memory limit (and 256 MiB of slack): a graph whose allocations depend on pixel
values, which shape inference cannot size, fails to allocate there instead of exhausting the
machine. The parent kills the child a minute after the budget, should one kernel not return.

:func:`run_isolated` runs a given input (a bioimage.io package's test input, which
``model validate`` checks) under the same bounds: its tensors sized first, then the capped
child, the input and output passed as ``.npy`` files. :func:`check_halo` runs the model so
on an image and a crop of it, to find a MinOverlap too small for the graph (tile seams).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from scopeml.errors import (
    IncompatibleModelError,
    InvalidContainerError,
    ModelTimeoutError,
    ScopeMLError,
)
from scopeml.model.container import Container, graph_skeleton, read_container
from scopeml.model.graph import MEMORY_LIMIT_ENV, largest_tensor, resolve_memory_limit
from scopeml.model.runtime import TIME_BUDGET_ENV, load_model, model_spec, resolve_time_budget
from scopeml.model.spec import ModelSpec

#: Smallest side of the probe tile (rounded up to the tile step).
PROBE_SIZE = 32
#: Most pixels (the product of the spatial sizes) of the input the halo check runs on.
HALO_CHECK_PIXELS = 2**20
#: Largest difference between a tile's core and a whole-image run taken for the same result,
#: relative to the output's largest value (at least 1).
HALO_TOLERANCE = 1e-4
#: Address space an isolated probe may add beyond the memory limit (buffers, small tensors).
SLACK_BYTES = 256 * 2**20
#: Seconds the parent waits beyond the time budget (interpreter start, model load) before it
#: kills an isolated probe.
GRACE_SECONDS = 60.0


@dataclass(frozen=True)
class ProbeResult:
    """What validating a model found: the probe's shapes and the largest inferred tensor."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    largest_tensor: str | None
    largest_tensor_bytes: int


def probe_spatial_shape(spec: ModelSpec) -> tuple[int, ...]:
    """The probe tile: the model's fixed input size, else ``PROBE_SIZE`` rounded to the step.

    Examples
    --------
    >>> probe_spatial_shape(ModelSpec(2, 1, ("a", "b"), (8, 8), tile_step=(16, 16)))
    (32, 32)
    """
    if spec.tile_shape is not None:
        return tuple(spec.tile_shape)
    return tuple(-(-max(PROBE_SIZE, step) // step) * step for step in spec.tile_step)


def probe_model(
    source: str | PathLike[str] | Container,
    *,
    time_budget: float | None = None,
    memory_limit: int | None = None,
    isolated: bool = True,
) -> ProbeResult:
    """Check that a per-pixel model runs on a zero probe tile within time and memory bounds.

    Parameters
    ----------
    source
        Container file or an already read container.
    time_budget
        Seconds the probe run may take (see :func:`scopeml.model.runtime.resolve_time_budget`).
    memory_limit
        Largest tensor, in bytes, the graph may make for the probe tile (default 1 GiB or
        ``$SCOPEML_MODEL_MEMORY_LIMIT``); an isolated probe may allocate that (plus 256 MiB)
        in all.
    isolated
        Run the probe in a child process with capped memory (needs the container as a file;
        one read from bytes runs in this process, bounded by the static check only).

    Raises
    ------
    InvalidContainerError
        The graph would make a tensor over the memory limit.
    ModelTimeoutError
        The probe ran past the time budget (it is stopped).
    IncompatibleModelError
        The graph fails on the probe or returns non-finite values.

    Examples
    --------
    >>> from scopeml.model.testing import tiny_czann
    >>> probe_model(tiny_czann(), time_budget=10, isolated=False).output_shape
    (1, 2, 32, 32)
    """
    container = source if isinstance(source, Container) else read_container(source)
    limit = resolve_memory_limit(memory_limit)
    spec = model_spec(container)
    spatial = probe_spatial_shape(spec)
    batch_shape = (1, spec.in_channels, *spatial)
    what = f"a {'×'.join(map(str, spatial))} probe tile"
    name, size = _check_tensor_sizes(container, batch_shape, limit, what)
    can_isolate = sys.platform.startswith("linux")  # RLIMIT_AS and /proc/self/status
    if isolated and can_isolate and container.path is not None and container.path.is_file():
        output_shape = _run_in_child(container.path, batch_shape, None, time_budget, limit, what)
    else:
        zeros = np.zeros(batch_shape, np.float32)
        output_shape = _run(container, [zeros], time_budget, limit, finite=True)[0].shape
    return ProbeResult(batch_shape, tuple(output_shape), name, size)


def check_halo(
    path: str | PathLike[str],
    *,
    time_budget: float | None = None,
    memory_limit: int | None = None,
) -> str | None:
    """The line to warn with when the model's halo is too small for its graph, else ``None``.

    A MinOverlap below the graph's reach validated, then ``segment`` showed seams (0.036 off a
    whole-image run). The model runs, as :func:`run_isolated` runs it, on a seeded random
    input and on a crop of it that keeps the halo (MinOverlap rounded up to the tile step, as
    tiles keep it) around an inner core; where the core differs, the crop (up to twice the
    halo, at least :data:`PROBE_SIZE`, within :data:`HALO_CHECK_PIXELS`) also tells the
    smallest halo that gives the same core. A fixed-size graph (a legacy container's) takes
    no other size: :func:`_fixed_halo` runs two overlapping tiles of its size instead.
    """
    container = read_container(path)
    spec = model_spec(container)
    limits = {"time_budget": time_budget, "memory_limit": memory_limit}
    name = "BorderSize" if container.legacy else "MinOverlap"
    if spec.tile_shape is not None:
        return _fixed_halo(path, spec, name, limits)
    step = spec.tile_step
    halo = tuple(-(-h // s) * s for h, s in zip(spec.halo, step, strict=True))
    reach = tuple(max(2 * h, -(-PROBE_SIZE // s) * s) for h, s in zip(halo, step, strict=True))
    if math.prod(2 * r + 3 * s for r, s in zip(reach, step, strict=True)) > HALO_CHECK_PIXELS:
        reach = halo  # too large to look further: check the halo it has
    crop = tuple(2 * r + s for r, s in zip(reach, step, strict=True))
    whole = tuple(c + 2 * s for c, s in zip(crop, step, strict=True))
    if math.prod(whole) > HALO_CHECK_PIXELS:
        return None
    pixels = np.random.default_rng(0).random((1, spec.in_channels, *whole), np.float32)
    inner = (..., *(slice(s, s + c) for s, c in zip(step, crop, strict=True)))
    what = f"a {'×'.join(map(str, whole))} random input (the halo check)"
    full, cropped = run_isolated_all(path, [pixels, pixels[inner]], what=what, **limits)
    difference = np.abs(full[inner] - cropped).max(axis=(0, 1))
    tolerance = HALO_TOLERANCE * max(1.0, float(np.abs(full).max()))
    return _halo_line(name, spec, halo, reach, difference, tolerance, "a whole-image run")


def _fixed_halo(path: str | PathLike[str], spec: ModelSpec, name: str, limits: dict) -> str | None:
    """:func:`check_halo` of a graph that takes one size (a legacy BorderSize of 0 on the
    nuclei graph validated without a word, where the czann of the same graph warned of
    seams): it runs on two tiles of that size over a seeded random image, the second shifted
    by one tile step on every axis; where both keep the halo around their cores, their
    outputs must agree."""
    tile, step = tuple(spec.tile_shape or ()), spec.tile_step
    halo = tuple(-(-h // s) * s for h, s in zip(spec.halo, step, strict=True))
    shared = tuple(t - s for t, s in zip(tile, step, strict=True))  # what both tiles cover
    whole = tuple(t + s for t, s in zip(tile, step, strict=True))
    if any(n <= 2 * h for n, h in zip(shared, halo, strict=True)):
        return None  # no core that both tiles keep: nothing to compare
    if math.prod(whole) > HALO_CHECK_PIXELS:
        return None
    pixels = np.random.default_rng(0).random((1, spec.in_channels, *whole), np.float32)
    first = pixels[(..., *(slice(0, t) for t in tile))]
    second = pixels[(..., *(slice(s, s + t) for s, t in zip(step, tile, strict=True)))]
    what = f"two {'×'.join(map(str, tile))} tiles of a random input (the halo check)"
    one, two = run_isolated_all(path, [first, second], what=what, **limits)
    if one.shape[2:] != tile:
        return None  # not one output pixel per input pixel
    difference = np.abs(
        one[(..., *(slice(s, None) for s in step))] - two[(..., *(slice(0, n) for n in shared))]
    ).max(axis=(0, 1))
    tolerance = HALO_TOLERANCE * max(1.0, float(np.abs(one).max()))
    reach = tuple(-(-n // 2) - s for n, s in zip(shared, step, strict=True))
    return _halo_line(name, spec, halo, reach, difference, tolerance, "an overlapping tile's")


def _halo_line(
    name: str,
    spec: ModelSpec,
    halo: tuple[int, ...],
    reach: tuple[int, ...],
    difference: np.ndarray,
    tolerance: float,
    against: str,
) -> str | None:
    """The warning of :func:`check_halo`, from the ``difference`` of two runs over the
    region both keep (its edge ``halo`` away from theirs, or ``reach`` at most): ``None``
    when the halo gives the same core."""
    step = spec.tile_step
    span = difference.shape

    def worst(kept: tuple[int, ...]) -> float:  # the largest difference in the core it leaves
        core = tuple(slice(k, c - k) for k, c in zip(kept, span, strict=True))
        return float(difference[core].max())

    if worst(halo) <= tolerance:
        return None
    widths = range(1, max(r // s for r, s in zip(reach, step, strict=True)) + 1)
    candidates = [tuple(min(max(h, k * s), r) for h, s, r in zip(halo, step, reach, strict=True))
                  for k in widths]  # fmt: skip
    needed = next((kept for kept in candidates if worst(kept) <= tolerance), None)
    rounded = f" ({list(halo)} at the tile step)" if halo != spec.halo else ""
    found = (f"a {name} of {list(needed)} gives the same core" if needed else
             f"the graph reaches further than {list(reach)} px: give it a {name} that covers "
             "its receptive field")  # fmt: skip
    return (
        f"{name} {list(spec.halo)}{rounded} is too small for the graph: a tile's core differs "
        f"from {against} by up to {worst(halo):.3g} (seams between tiles); {found}"
    )


def run_isolated(
    path: str | PathLike[str],
    batch: np.ndarray,
    *,
    time_budget: float | None = None,
    memory_limit: int | None = None,
    what: str | None = None,
    classifier: bool = False,
) -> np.ndarray:
    """Run the model file ``path`` on ``batch`` (``N×C×[Z×]Y×X``) under the probe's bounds;
    a ``classifier`` (a classification model: ``N×C×H×W`` at its input size) gives ``N×K``.

    As :func:`probe_model` runs its zero tile: shape inference first sizes every tensor the
    graph would make for ``batch``'s shape (one over the memory limit refuses the run, nothing
    allocated), then the run takes place in a child process whose address space is capped at
    what it had after loading the model and ``batch`` plus the memory limit (and 256 MiB of
    slack), under the time budget. ``batch`` goes to the child and the output comes back
    through ``.npy`` files in a temporary folder. Off Linux it runs here, bounded by the
    shape check only. ``what`` names the input in errors (default: "a A×B input").

    Raises
    ------
    InvalidContainerError
        A tensor over the memory limit (inferred), or an allocation past the cap.
    ModelTimeoutError
        The run went past the time budget (it is stopped).
    IncompatibleModelError
        The graph fails on ``batch``.

    Examples
    --------
    >>> from scopeml.model.testing import tiny_czann
    >>> run_isolated(tiny_czann(), np.zeros((1, 1, 40, 40), np.float32), time_budget=10).shape
    (1, 2, 40, 40)
    """
    limits = {"time_budget": time_budget, "memory_limit": memory_limit}
    return run_isolated_all(path, [batch], what=what, classifier=classifier, **limits)[0]


def run_isolated_all(
    path: str | PathLike[str],
    batches: Sequence[np.ndarray],
    *,
    time_budget: float | None = None,
    memory_limit: int | None = None,
    what: str | Sequence[str] | None = None,
    classifier: bool = False,
) -> list[np.ndarray]:
    """:func:`run_isolated` on each of ``batches`` in turn, in one child (the model loaded
    once; each run under the time budget, the child under their sum): their outputs. ``what``
    names them all, or each (a list as long as ``batches``)."""
    import tempfile

    container = read_container(path)
    limit = resolve_memory_limit(memory_limit)
    batches = [np.ascontiguousarray(batch, np.float32) for batch in batches]
    if what is None or isinstance(what, str):
        what = [what or f"a {'×'.join(map(str, b.shape[2:]))} input" for b in batches]
    for batch, named in zip(batches, what, strict=True):
        _check_tensor_sizes(container, batch.shape, limit, named)
    if not sys.platform.startswith("linux"):
        return _run(str(path), batches, time_budget, limit, classifier=classifier)
    with tempfile.TemporaryDirectory(prefix="scopeml-run-") as folder:
        inputs = [Path(folder) / f"input{index}.npy" for index in range(len(batches))]
        outputs = [Path(folder) / f"output{index}.npy" for index in range(len(batches))]
        for file, batch in zip(inputs, batches, strict=True):
            np.save(file, batch, allow_pickle=False)
        shape = batches[0].shape
        _run_in_child(Path(path), shape, (inputs, outputs), time_budget, limit, what, classifier)
        return [np.load(file, allow_pickle=False) for file in outputs]


def _check_tensor_sizes(
    container: Container, batch_shape: tuple[int, ...], limit: int, what: str
) -> tuple[str | None, int]:
    """The largest tensor the graph makes for a ``batch_shape`` input (shape inference on the
    graph without its weights); refused when over ``limit``, before anything is allocated."""
    graph_input = (batch_shape[0], *batch_shape[2:], batch_shape[1])
    skeleton = graph_skeleton(container.onnx_bytes, path=container.path)
    name, size = largest_tensor(skeleton, graph_input)
    if size > limit:
        raise InvalidContainerError(
            f"the graph would make tensor {name!r} of {size / 2**30:.2f} GiB for {what}; "
            f"the limit is {limit / 2**30:.2f} GiB (--memory-limit or {MEMORY_LIMIT_ENV})",
            path=container.path,
        )
    return name, size


def _run(
    container: Container | str,
    batches: Sequence[np.ndarray],
    time_budget: float | None,
    memory_limit: int,
    cap_memory: bool = False,
    finite: bool = False,
    classifier: bool = False,
    results: list[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """The model's output on each of ``batches``; ``cap_memory`` caps this process's address
    space once the model is loaded; ``finite`` refuses non-finite values (a zero probe's
    check); a ``classifier`` (a file's path) runs as ``scopeml classify`` runs it, to ``N×K``
    scores. ``results``: the list the outputs are added to, one by one (its length tells
    which batch failed)."""
    if classifier:
        from scopeml.classify import ImageClassifier

        model: Any = ImageClassifier(str(container), time_budget=time_budget)
        run = model.scores
    else:
        model = load_model(
            container,
            providers=["CPUExecutionProvider"],
            time_budget=time_budget,
            memory_limit=memory_limit,
        )
        run = model.predict
    if cap_memory:
        _cap_address_space(memory_limit + SLACK_BYTES)
    results = [] if results is None else results
    for batch in batches:
        results.append(run(batch))
    if finite and not all(np.all(np.isfinite(result)) for result in results):
        raise IncompatibleModelError(
            "the graph returns non-finite values on a zero input", path=model.path
        )
    return results


def _cap_address_space(extra: int) -> None:
    from scopeml.address_space import cap_address_space

    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
    cap_address_space(size + extra)


def _run_in_child(
    path: PathLike[str],
    batch_shape: tuple[int, ...],
    files: tuple[list[Path], list[Path]] | None,
    time_budget: float | None,
    limit: int,
    what: str | Sequence[str],
    classifier: bool = False,
) -> tuple[int, ...]:
    """Run the model in a capped child on zeros of ``batch_shape``, or on each ``.npy`` of
    ``files[0]`` writing its outputs to ``files[1]``; the (first) output's shape. ``what``
    names the input, or each input (a list: an allocation past the cap names the one)."""
    budget = resolve_time_budget(time_budget)
    request = {
        "path": str(path), "shape": batch_shape, "budget": budget, "limit": limit,
        "classifier": classifier,
    }  # fmt: skip
    if files is not None:
        request.update(inputs=list(map(str, files[0])), outputs=list(map(str, files[1])))
    code = "from scopeml.model.probe import child_main; child_main()"
    runs = len(files[0]) if files is not None else 1
    wait = None if math.isinf(budget) else runs * budget + GRACE_SECONDS
    source = str(Path(__file__).resolve().parents[2])  # this scopeml, installed or not
    paths = [source, *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, json.dumps(request)],
            capture_output=True,
            text=True,
            timeout=wait,
            env=env,
        )
    except subprocess.TimeoutExpired as err:  # one kernel that never returned: killed
        raise ModelTimeoutError(
            f"the model ran past its time budget of {budget:g} s and was killed "
            f"(set --time-budget or {TIME_BUDGET_ENV} if it needs longer)",
            path=path,
        ) from err
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError) as err:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        raise IncompatibleModelError(f"the probe run crashed ({tail[0][:300]})", path=path) from err
    if "shape" in answer:
        return tuple(answer["shape"])
    problem = answer["problem"]
    if not isinstance(what, str):
        what = what[min(answer.get("index", 0), len(what) - 1)]
    if "allocate" in problem or answer["error"] == "MemoryError":
        raise InvalidContainerError(
            f"the graph tried to allocate more than {(limit + SLACK_BYTES) / 2**30:.2f} GiB on "
            f"{what} (--memory-limit or {MEMORY_LIMIT_ENV}, plus 256 MiB)",
            path=path,
        )
    kind = {
        "ModelTimeoutError": ModelTimeoutError,
        "InvalidContainerError": InvalidContainerError,
    }.get(answer["error"], IncompatibleModelError)
    raise kind(problem, path=path)


def child_main() -> None:
    """Entry point of an isolated run: one JSON request in ``argv``, one JSON answer out (the
    first output's shape, or the error); the outputs go to the request's ``outputs`` files."""
    request = json.loads(sys.argv[1])
    done: list[np.ndarray] = []  # the outputs so far: their count names a failing input
    try:
        given = request.get("inputs")
        batches = (
            [np.load(file, allow_pickle=False) for file in given]
            if given is not None
            else [np.zeros(request["shape"], np.float32)]
        )  # held before the address space is capped, as the model is
        results = _run(
            request["path"],
            batches,
            request["budget"] if math.isfinite(request["budget"]) else 0,
            request["limit"],
            cap_memory=True,
            finite=given is None,
            classifier=request.get("classifier", False),
            results=done,
        )
        for file, result in zip(request.get("outputs") or (), results, strict=False):
            np.save(file, result, allow_pickle=False)  # no files: a zero probe's shape alone
        answer: dict[str, object] = {"shape": list(results[0].shape)}
    except ScopeMLError as err:
        answer = {"error": type(err).__name__, "problem": err.problem, "index": len(done)}
    except MemoryError as err:
        answer = {"error": "MemoryError", "problem": str(err), "index": len(done)}
    print(json.dumps(answer), flush=True)
