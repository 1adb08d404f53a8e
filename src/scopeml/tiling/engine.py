"""One segmentation run: check, plan, normalise, open the store, execute, publish."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from scopeml.errors import (
    Cancelled,
    IncompatibleModelError,
    IncompleteOutputError,
    InvalidImageError,
    InvalidRequestError,
    OutputCompleteError,
    ScopeMLError,
    find_stack_level,
)
from scopeml.io.image import Image
from scopeml.io.stores import is_zarr_store
from scopeml.model.spec import Model, ModelSpec, recorded_normalize
from scopeml.progress import Progress, ProgressCallback, ProgressEvent, as_progress
from scopeml.tiling.execute import LoadRef, check_scheduler, run_dask, run_local
from scopeml.tiling.identity import RunNames, image_content, run_identity
from scopeml.tiling.kernel import TileContext, process_batch
from scopeml.tiling.model_inputs import (
    CLI_CHANNELS,
    ChannelOption,
    channel_mismatch,
    check_raw_model,
)
from scopeml.tiling.normalize import (
    Normalization,
    chosen_policy,
    compute_normalization,
)
from scopeml.tiling.options import SegmentOptions
from scopeml.tiling.outputs import (
    OutputSpec,
    class_index,
    model_outputs,
    needs_probabilities,
    output_specs,
)
from scopeml.tiling.plan import Tile, TilePlan, plan_blend_tiles, plan_tiles
from scopeml.tiling.store import (
    OutputStore,
    PublishedLock,
    check_own_store,
    check_partial,
    check_same_run,
    is_own_store,
    other_tiling,
    partial_path,
    recorded_run,
    refuse_held,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TILE = {2: 512, 3: 128}


def default_tile(spec: ModelSpec) -> tuple[int, ...]:
    """A model's tile when none is asked for: :data:`DEFAULT_TILE`, in 2-D widened to eight
    halos up to four times that (rounded up to the model's step), so that a deep model's halo
    costs at most 1.56× its tile's core, about what a 56-px halo costs in a 512 tile (1.49×),
    while a model shrinking the image (whose halo in image pixels grows as 1 / scale) still
    reads bounded windows; 3-D tiles stay small (their memory grows as the cube).

    >>> default_tile(ModelSpec(2, 1, ("bg", "fg"), (56, 56), (8, 8)))
    (512, 512)
    >>> default_tile(ModelSpec(2, 1, ("bg", "fg"), (112, 100), (16, 16)))
    (896, 800)
    >>> default_tile(ModelSpec(2, 1, ("bg", "fg"), (896, 896), (128, 128)))  # 112 px at 1/8
    (2048, 2048)
    >>> default_tile(ModelSpec(3, 1, ("bg", "fg"), (40, 40, 40)))
    (128, 128, 128)
    """
    size = DEFAULT_TILE[spec.spatial_dims]
    if spec.spatial_dims == 3:
        return (size,) * 3
    return tuple(
        -(-min(max(size, 8 * h), 4 * size) // s) * s
        for h, s in zip(spec.halo, spec.tile_step, strict=True)
    )


def spatial_axes(model: Model) -> tuple[str, ...]:
    """The image axes a model sees as spatial: ``("Y", "X")`` or ``("Z", "Y", "X")``."""
    return ("Y", "X") if model.spec.spatial_dims == 2 else ("Z", "Y", "X")


def check_pixel_values(image: Image) -> None:
    """Refuse pixels that are no numbers to compute with (complex, strings, objects)."""
    if np.dtype(image.dtype).kind not in "biuf":
        raise InvalidImageError(
            f"image pixels are {np.dtype(image.dtype)}; scopeml computes with integer or float "
            "pixels (a complex image: take its magnitude or phase first)",
            path=image.path,
        )


def check_compatible(image: Image, model: Model, option: ChannelOption = CLI_CHANNELS) -> None:
    """Raise :class:`IncompatibleModelError` naming both sides when a model cannot run (the
    channels' fix in ``option``'s words, see :func:`channel_mismatch`)."""
    spec = model.spec
    check_pixel_values(image)
    if image.sizes["C"] != spec.in_channels:  # the image's channel names and the fix
        raise IncompatibleModelError(channel_mismatch(image, model, option), path=image.path)
    if spec.spatial_dims == 3 and image.sizes["Z"] < 2:
        frames = image.sizes["T"]
        hint = (
            f" and {frames} time points: if they are planes, read it with --axes ZYX "
            "(axes='ZYX' in Python)"
            if frames > 1
            else ""
        )
        raise IncompatibleModelError(
            f"model is 3-D (Z×Y×X) but the image has a single Z plane{hint}", path=image.path
        )


def _per_axis(value: int | Sequence[int], axes: Sequence[str], name: str) -> dict[str, int]:
    values = (value,) * len(axes) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(values) != len(axes):
        raise InvalidRequestError(
            f"{name} has {len(values)} values; the model has {len(axes)} spatial axes "
            f"({''.join(axes)})"
        )
    return dict(zip(axes, values, strict=True))


def build_plan(image: Image, model: Model, options: SegmentOptions) -> TilePlan:
    """The tile plan of a run (pure geometry; see :mod:`scopeml.tiling.plan`)."""
    spec = model.spec
    axes = spatial_axes(model)
    sizes = {axis: image.sizes[axis] for axis in "TZYX"}
    step = dict(zip(axes, spec.tile_step, strict=True))
    halo = dict(zip(axes, spec.halo, strict=True))
    if options.halo is not None:
        wanted = _per_axis(options.halo, axes, "halo")
        if any(wanted[a] < halo[a] for a in axes):
            message = (
                f"halo {tuple(wanted.values())} is below the model's need "
                f"{tuple(halo.values())}: tile borders will differ from a whole-image run"
            )
            # the CLI prints it as one line
            warnings.warn(message, UserWarning, stacklevel=find_stack_level())
        halo = wanted
    fixed = dict(zip(axes, spec.tile_shape, strict=True)) if spec.tile_shape else None
    if fixed and any(sizes[a] < fixed[a] for a in axes):
        warnings.warn(
            f"{'' if image.path is None else image.path + ': '}the image "
            f"({'×'.join(str(sizes[a]) for a in axes)}) is smaller than the model's "
            f"fixed input ({'×'.join(str(fixed[a]) for a in axes)}): it is padded with zeros "
            "at its far end, which changes the predictions of the pixels that see the padding",
            UserWarning,
            stacklevel=find_stack_level(),
        )
    tile = _per_axis(options.tile_size or default_tile(spec), axes, "tile_size")
    tile = {a: min(tile[a], -(-sizes[a] // step[a]) * step[a]) for a in axes}
    if not options.blend:
        return plan_tiles(sizes, tile_shape=tile, halo=halo, step=step, fixed_input=fixed)
    window = fixed or tile
    # windows overlap by the halo, at least a quarter and at most half of the window
    overlap = {a: min(max(halo[a], window[a] // 4), window[a] // 2) for a in axes}
    block = {
        a: min(4 * max(window[a] - overlap[a], step[a]), -(-sizes[a] // step[a]) * step[a])
        for a in axes
    }
    return plan_blend_tiles(
        sizes, window=window, overlap=overlap, block=block, step=step, fixed_input=bool(fixed)
    )


def _read_ratio(plan: TilePlan, tile: Mapping[str, int] | None = None) -> float:
    """Pixels the tiles read per pixel of the image, for cores of ``tile`` (default: the
    plan's): each core and its halo, clipped at the image's edges as the reads are."""
    ratio = 1.0
    for axis, core in (tile or plan.tile_shape).items():
        size, halo = plan.sizes[axis], plan.halo[axis]
        starts = np.arange(0, size, core)
        reads = np.minimum(starts + core + halo, size) - np.maximum(starts - halo, 0)
        ratio *= float(reads.sum()) / size
    return ratio


def _run_plan(image: Image, model: Model, options: SegmentOptions, model_path: Any) -> TilePlan:
    """A run's plan (errors name the model file), an asked-for tile that costs much warned of."""
    plan = _named(build_plan, model_path or image.path)(image, model, options)
    if model.spec.tile_shape and not options.blend:
        _warn_small_core(plan, model.spec.tile_shape, model_path)
    elif options.tile_size is not None and not options.blend:
        _warn_small_tile(plan, default_tile(model.spec), image.path)
    return plan


def _warn_small_core(plan: TilePlan, fixed: Sequence[int], model_path: Any) -> None:
    """Say so when a fixed-input model keeps a small core of each input: a legacy copy of
    the nuclei model (256² input, 112-px halo, 32² cores) ran a 20-frame movie for over 7 min
    where the model ran it in 10 s, without a word at run time. The model runs on its whole
    input at the image's edges too (padded): the work is input over core."""
    ratio = math.prod(fixed) / math.prod(plan.tile_shape.values())
    if ratio > 8:
        core = "×".join(str(n) for n in plan.tile_shape.values())
        warnings.warn(
            f"{'' if model_path is None else str(model_path) + ': '}the model's fixed input "
            f"({'×'.join(map(str, fixed))}) keeps {core} of each tile inside its halo, so each "
            f"pixel costs about {ratio:.0f}× the model's work on it; a copy taking other sizes "
            "runs faster (scopeml model convert MODEL -o COPY.czann --spatial dynamic, where "
            "its graph allows)",
            UserWarning,
            stacklevel=find_stack_level(),
        )


def _warn_small_tile(plan: TilePlan, default: Sequence[int], path: str | None) -> None:
    """Say so when asked-for tiles read over 4× the image's pixels (each its halo again) and
    over three times what tiles of the default size read: a 32-px tile of a model with a
    112-px halo ran 7× slower than the default, without a word."""
    ratio = _read_ratio(plan)
    usual = _read_ratio(plan, dict(zip(plan.tile_shape, default, strict=True)))
    if ratio > 4 and ratio > 3 * usual:
        size = "×".join(str(n) for n in plan.tile_shape.values())
        halo = "×".join(str(n) for n in plan.halo.values())
        warnings.warn(
            f"{'' if path is None else path + ': '}tile size {size} with the model's halo of "
            f"{halo} px: the tiles read {ratio:.0f}× the image's pixels (in "
            f"{'×'.join(map(str, default))} tiles: {usual:.1f}×), about {ratio / usual:.0f}× the "
            "model's work; a larger tile size gives the same result sooner",
            UserWarning,
            stacklevel=find_stack_level(),
        )


def output_layout(image: Image) -> dict[str, str]:
    """Axes of each output array: ``[T][C][Z]YX``, ``C`` for probabilities only."""
    t = "T" if image.sizes["T"] > 1 else ""
    z = "Z" if image.sizes["Z"] > 1 else ""
    return {"with_c": f"{t}C{z}YX", "without_c": f"{t}{z}YX"}


def _scene(image: Image, options: SegmentOptions) -> int:
    n = image.sizes["S"]
    if options.scene is None:
        if n > 1:
            raise InvalidRequestError(
                f"image has {n} scenes (0–{n - 1}); segment one at a time with --scene N "
                "(scene= in Python), or use scopeml analyze, which does every scene",
                path=image.path,
            )
        return 0
    if n == 1:
        return 0  # the reader already selected the scene
    if not 0 <= options.scene < n:
        raise InvalidRequestError(
            f"scene {options.scene} does not exist; the image has {n}", path=image.path
        )
    return options.scene


def _batches(tiles: Iterable[Tile], batch_size: int, blend: bool) -> Iterator[list[Tile]]:
    """Group tiles of equal input shape (runtime batches), streaming: a batch is yielded as soon
    as it is full, the unfilled ones at the end in plan order of their first tile. Memory holds
    one open batch per input shape, whatever the number of tiles (plans are lazy)."""
    if blend:
        yield from ([tile] for tile in tiles)
        return
    groups: dict[tuple[tuple[str, int], ...], list[Tile]] = {}
    for tile in tiles:
        key = tuple(sorted(tile.input_shape.items()))
        group = groups.setdefault(key, [])
        group.append(tile)
        if len(group) == batch_size:
            yield groups.pop(key)
    yield from sorted(groups.values(), key=lambda batch: batch[0].index)


def segment_image(
    image: Image,
    model: Model,
    output: str | os.PathLike[str],
    options: SegmentOptions,
    *,
    model_ref: LoadRef | None = None,
    image_ref: LoadRef | None = None,
    progress: Progress = None,
    record: Mapping[str, Any] | None = None,
    ome_tiff_outputs: Sequence[str] | None = None,
    names: RunNames | None = None,
    log_stop: bool = True,
    hold: PublishedLock | None = None,
    before_publish: Callable[[Path], None] | None = None,
) -> Path:
    """Run ``model`` over ``image`` and write the outputs to an OME-Zarr store at ``output``.

    ``model_ref``/``image_ref`` tell dask workers how to load the model and image themselves
    (from their paths); without them the objects are sent to the workers.

    A caller whose steps after the engine change the store (:func:`scopeml.segment` adds the
    instances and removes the probabilities made only to seed them) passes ``record``: its
    ``outputs`` (those the store ends with) replace the engine's in the run's recorded
    ``options``, and its other keys (each step's options, ``instances``) are recorded beside
    them, so the store says what it holds and how, and a resumed or finished run is checked
    against them too. With ``options.ome_tiff``, ``ome_tiff_outputs`` (default: every output)
    are the outputs to copy to OME-TIFF: existing copies are refused before any work (unless
    ``overwrite``), and those of them that the engine writes are exported once it is done (the
    caller exports the others).

    ``hold``: the published store stays locked in it, for the caller's own steps, until its
    :meth:`~scopeml.tiling.store.PublishedLock.release`: a run replacing it meanwhile is
    refused. ``before_publish``: the caller's steps that change the store (the instances),
    run on the finished partial store (its record written), so that the store is published
    whole; a stop among them publishes nothing, and ``resume=True`` runs them again without
    the model.

    ``names`` (a server's run): the names the store records for the image and the model
    instead of the image's path (see :func:`~scopeml.tiling.identity.run_identity`); a
    resume is checked against the same names and the image's content.

    ``progress`` (see :mod:`scopeml.progress`) hears, with a normalisation, stage
    ``"statistics"`` (blocks read for it; cancelling there leaves nothing), then stage
    ``"segment"`` in unit ``"tile"``: ``total`` is the number of tiles this call runs (a resumed
    run leaves out those already written), ``done`` grows after each batch. A callback that
    raises :class:`~scopeml.errors.Cancelled` stops the run between batches; the partial store
    is kept, resumable with ``resume=True``, and the exception is re-raised, logged with how
    far it got and how to resume unless ``log_stop`` is false (a caller that removes the store
    and says itself how to go on, as an analysis does). ``None`` follows the older
    ``options.quiet`` switch (tqdm bars unless it is set), kept until every caller passes
    ``progress``.

    Examples
    --------
    >>> import tempfile
    >>> from scopeml.model.spec import ModelSpec
    >>> class Threshold:  # any object with a spec and predict() is a model
    ...     spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0))
    ...     def predict(self, batch):
    ...         fg = (batch > 5).astype(np.float32)
    ...         return np.concatenate([1 - fg, fg], axis=1)
    >>> image = Image(np.arange(100, dtype=np.uint8).reshape(1, 1, 1, 1, 10, 10) % 10)
    >>> events = []
    >>> out = segment_image(image, Threshold(), Path(tempfile.mkdtemp()) / "o.ome.zarr",
    ...                     SegmentOptions(tile_size=4, workers=1), progress=events.append)
    >>> [(e.done, e.total) for e in events]
    [(0, 9), (1, 9), (2, 9), (3, 9), (4, 9), (5, 9), (6, 9), (7, 9), (8, 9), (9, 9)]
    """
    output = Path(output)
    inputs = (image.path, model_ref.args[0] if model_ref else None)
    spec = model.spec
    model_path = model_ref.args[0] if model_ref else getattr(model, "path", None)
    kind, confidence = spec.extra.get("model_type"), options.min_confidence
    outputs = _named(model_outputs, model_path)(kind, options.outputs, confidence)
    options = dataclasses.replace(options, outputs=outputs)  # as written (and recorded): image
    tiffs = tuple(options.outputs if ome_tiff_outputs is None else ome_tiff_outputs)
    _check_output(output, options, inputs, tiffs if options.ome_tiff else ())  # before any work
    check_compatible(image, model)
    scene = _scene(image, options)
    extract_index = (
        class_index(spec.classes, options.extract_class) if options.extract_class else None
    )
    normalize = _normalize_choice(model, options)  # a bad value fails before any work
    plan = _run_plan(image, model, options, model_path)
    report = as_progress(not options.quiet if progress is None else progress)
    if isinstance(options.scheduler, str):  # an unreachable one: nothing run, nothing written
        check_scheduler(options.scheduler)
    _check_partial_early(output, image, model, options, model_ref, record, inputs, names)
    normalization, identity = _identity(
        image, model, options, normalize, model_ref, record, progress=report, names=names,
        resumed=output if options.resume and not options.overwrite else None,
    )  # fmt: skip
    store, resumed = OutputStore.open(
        output, identity, resume=options.resume, overwrite=options.overwrite, inputs=inputs
    )
    store.record_tiles(len(plan), resumed=resumed)  # `scopeml info` on an unfinished run
    try:  # the store is locked until it is published or this run fails
        specs, axes_of = _outputs_made(store, spec, outputs, options, image, plan)
        ctx = _tile_context(
            image, model, options, plan, specs, axes_of, scene, normalization, extract_index
        )
        done = store.done() if resumed else set()
        todo = (tile for tile in plan if tile.index not in done)  # lazy, as the plan is
        batches = _batches(todo, options.batch_size, options.blend)
        total = len(plan) - sum(1 for index in done if index < len(plan))
        try:
            _execute(
                batches, total, model, image, store, ctx, options, model_ref, image_ref, report
            )
        except (KeyboardInterrupt, Cancelled) as err:
            if log_stop:
                say_kept(err, f"{len(store.done())} of {len(plan)} tiles are written to "
                         f"{store.partial}: run again with --resume (resume=True) to finish",
                         store.partial)  # fmt: skip
            raise
        _check_unchanged(image, identity, store.invalid_pixels())
        result = _publish(store, output, overwrite=options.overwrite, hold=hold,
                          before=before_publish)  # fmt: skip
    except BaseException:
        store.release()
        raise
    if options.ome_tiff:
        export_ome_tiff(
            result, [s.name for s in specs if s.name in tiffs], overwrite=options.overwrite
        )
    return result


def say_kept(err: BaseException, kept: str, path: str | os.PathLike[str]) -> None:
    """Say what a stopped run ``kept`` (at ``path``) and how to finish it: in the log, and in
    a :class:`Cancelled`'s message (with ``.path``), for a caller that reads no log."""
    log.warning("stopped; %s", kept)
    if isinstance(err, Cancelled):
        err.kept(kept, path=path)


def _outputs_made(
    store: OutputStore, spec: Any, outputs: Any, options: SegmentOptions, image: Image, plan: Any
) -> tuple[list[Any], dict[str, Any]]:
    """The output arrays a run writes, created in its store (a resumed one's kept), and each
    one's axes."""
    specs = output_specs(spec.classes, outputs, options.probability_dtype)
    layout = output_layout(image)
    axes_of = {s.name: layout["with_c" if s.channel_names else "without_c"] for s in specs}
    pixel_sizes = {a: v for a, v in image.pixel_sizes.items() if a in "TZYX"}  # T: s
    _create_outputs(store, specs, axes_of, image, plan, spec.classes, pixel_sizes)
    return specs, axes_of


def _check_partial_early(
    output: Path,
    image: Image,
    model: Model,
    options: SegmentOptions,
    model_ref: LoadRef | None,
    record: Mapping[str, Any] | None,
    inputs: tuple[Any, ...],
    names: RunNames | None,
) -> None:
    """The refusals the partial store alone decides (an unfinished run without ``resume``, a
    resume whose record names another run), before the statistics pass over the image; a
    resumed store already published is refused as another run's, naming what differs, or as
    complete (this run's: nothing to resume)."""
    if options.resume and not options.overwrite and output.exists():  # an own store
        run = {"model_ref": model_ref, "record": record, "names": names}
        check_finished_run(image, model, output, options, **run)
        raise OutputCompleteError("output exists and is complete; nothing to resume", path=output)
    identity = None
    if options.resume and partial_path(output).is_dir():  # compared: all but the statistics
        _check_viewed(recorded_run(output), output)
        identity = _identity(
            image, model, options, None, model_ref, record, statistics=False, names=names
        )[1]
    check_partial(
        output,
        identity,
        resume=options.resume,
        overwrite=options.overwrite,
        inputs=inputs,
        ignore=("normalization",),
    )


def is_finished_run(
    image: Image,
    model: Model,
    output: str | os.PathLike[str],
    options: SegmentOptions,
    *,
    model_ref: LoadRef | None = None,
    record: Mapping[str, Any] | None = None,
    names: RunNames | None = None,
) -> bool:
    """Whether ``output`` is the finished store of this very run: the identity recorded when
    it was published (the one a resumed partial store must match) equals the identity of
    :func:`segment_image` with these arguments (``record`` and ``names`` included).

    For callers whose steps come after the engine (instances, tables): a run stopped after
    the store was published finishes those steps without running the model again. Costs no
    pass over an image file with a model file: the record of both (fingerprint, hash) and of
    the settings decides; an in-memory image or model costs the statistics pass.

    Examples
    --------
    >>> import tempfile
    >>> from scopeml.model.spec import ModelSpec
    >>> class Threshold:
    ...     spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0))
    ...     def predict(self, batch):
    ...         fg = (batch > 5).astype(np.float32)
    ...         return np.concatenate([1 - fg, fg], axis=1)
    >>> image = Image(np.arange(100, dtype=np.uint8).reshape(1, 1, 1, 1, 10, 10) % 10)
    >>> options = SegmentOptions(tile_size=4, workers=1, quiet=True)
    >>> out = segment_image(image, Threshold(), Path(tempfile.mkdtemp()) / "o.ome.zarr", options)
    >>> is_finished_run(image, Threshold(), out, options)
    True
    >>> is_finished_run(image, Threshold(), out, SegmentOptions(tile_size=8))
    False
    """
    output = Path(output)
    if not is_own_store(output) or not (output / "zarr.json").is_file():
        return False
    try:
        check_finished_run(
            image, model, output, options, model_ref=model_ref, record=record, names=names
        )
    except IncompleteOutputError:
        return False
    return True


def check_finished_run(
    image: Image,
    model: Model,
    output: str | os.PathLike[str],
    options: SegmentOptions,
    *,
    model_ref: LoadRef | None = None,
    record: Mapping[str, Any] | None = None,
    names: RunNames | None = None,
) -> None:
    """Refuse to resume the published store ``output`` unless it records this very run (see
    :func:`is_finished_run`), naming what differs as a resumed partial store's refusal does
    (:func:`~scopeml.tiling.store.check_same_run`): a user who resumes with other axes, model
    or settings is told which, not that the store is complete. The record is compared
    without the normalisation statistics first, so another run costs no pass over the image;
    nor does this run, when the image and model are files (``_decided_without_statistics``).
    """
    import zarr

    output = Path(output)
    try:
        recorded = zarr.open_group(str(output), mode="r").attrs.get("scopeml")
    except (OSError, ValueError, LookupError) as err:
        raise IncompleteOutputError(f"cannot read its run record: {err}", path=output) from err
    if not isinstance(recorded, dict):
        raise IncompleteOutputError("the store has no scopeml run record", path=output)
    check_compatible(image, model)
    normalize = _normalize_choice(model, options)
    _, early = _identity(
        image, model, options, None, model_ref, record, statistics=False, names=names
    )
    _check_viewed(recorded, output)
    check_same_run(recorded, early, path=output, ignore=("normalization",))
    if _decided_without_statistics(early):
        return
    _, identity = _identity(image, model, options, normalize, model_ref, record, names=names)
    check_same_run(recorded, identity, path=output)


def _decided_without_statistics(early: Mapping[str, Any]) -> bool:
    """Whether a published store whose record matched ``early`` (all but the statistics) is
    this run's without the pass over the image: the statistics are a function of the image's
    pixels, the normalisation and the scene, and the record already holds the image file's
    fingerprint (size, mtime, sampled hash), the model's content hash (its normalisation
    policy with it), the view of the file (scene, channels) and the settings. An in-memory
    image (an array that merely names a file too), or a model with no file, has no such
    fingerprint: its statistics are still computed and compared."""
    return "content" in early["image"] and "sha256" in early["model"]


def _check_viewed(recorded: Mapping[str, Any] | None, output: Path) -> None:
    """Refuse a store recorded before runs kept their image's view (scene, channels) of its
    file: another view's store would match it in all but the view, so it is not resumed."""
    if isinstance(recorded, Mapping) and "image_view" not in recorded:
        raise IncompleteOutputError(
            "cannot resume: the output was recorded before scopeml kept which scene and channels "
            "of the image a run read; pass --overwrite (overwrite=True) to start again",
            path=output,
        )


def _normalize_choice(model: Model, options: SegmentOptions) -> str | None:
    """The user's normalisation, else the policy the model was trained with (recorded in its
    container); a bad value raises here."""
    normalize = chosen_policy(options.normalize, recorded_normalize(model))
    check_raw_model(model, normalize)
    return normalize


def _identity(
    image: Image,
    model: Model,
    options: SegmentOptions,
    normalize: str | None,
    model_ref: LoadRef | None,
    record: Mapping[str, Any] | None = None,
    *,
    progress: Progress = None,
    statistics: bool = True,
    names: RunNames | None = None,
    resumed: Path | None = None,
) -> tuple[Normalization | None, dict[str, Any]]:
    """The run's normalisation statistics (one pass over the image) and its identity: what a
    resumed partial store and a published one are checked against (one definition for both),
    with what the caller's later steps make of the store (``record``, see
    :func:`segment_image`). ``statistics=False``: without the pass (its ``normalization`` is
    ``None``), for the checks that can be made before it. ``resumed``: the output of a resumed
    run, whose partial store's recorded statistics are taken where all its tiles are done
    (:func:`_done_statistics`)."""
    found = _done_statistics(resumed) if resumed is not None and statistics else None
    normalization = (
        found[0] if found is not None
        else compute_normalization(image, normalize, scene=_scene(image, options),
                                   progress=progress) if statistics
        else None
    )  # fmt: skip
    model_path = model_ref.args[0] if model_ref else None
    image_name, model_name = names if names is not None else (None, None)
    identity = run_identity(
        image,
        model,
        options,
        normalization,
        model_path=model_path,
        image_name=image_name,
        model_name=model_name,
    )
    if record:
        identity.update({key: value for key, value in record.items() if key != "outputs"})
        if "outputs" in record:
            identity["options"] = {**identity["options"], "outputs": list(record["outputs"])}
    return normalization, identity


def _done_statistics(output: Path) -> tuple[Normalization | None] | None:
    """The statistics a partial store of ``output`` recorded, where every tile of it is done
    (a run stopped among its instances): no tile needs them again, and its record is checked
    against this run's, image fingerprint and all, so the pass over the image (a whole read of
    it) is spared; ``None``: compute them."""
    from scopeml.tiling.store import describe_partial

    run = describe_partial(partial_path(output))
    if run is None or run["tiles"] is None or run["tiles_done"] < run["tiles"]:
        return None
    recorded = recorded_run(output) or {}
    if "normalization" not in recorded:
        return None
    values = recorded["normalization"]
    return (None if values is None else Normalization.from_dict(values),)


def _tile_context(
    image: Image,
    model: Model,
    options: SegmentOptions,
    plan: TilePlan,
    specs: Sequence[OutputSpec],
    axes_of: dict[str, str],
    scene: int,
    normalization: Normalization | None,
    extract_index: int | None,
) -> TileContext:
    """What every tile's worker needs to know besides the model, the image and the arrays."""
    spec = model.spec
    return TileContext(
        scene=scene,
        spatial_axes=spatial_axes(model),
        output_axes=axes_of,
        specs=tuple(specs),
        batch_size=options.batch_size,
        normalization=normalization,
        min_confidence=options.min_confidence,
        extract_index=extract_index,
        step=dict(zip(spatial_axes(model), spec.tile_step, strict=True)),
        window=_window_of(plan, model) if options.blend else {},
        fixed_input=spec.tile_shape is not None,
        index_only=hasattr(model, "predict_index")
        and not options.blend
        and not needs_probabilities(specs, options.min_confidence),
        check_finite=np.dtype(image.dtype).kind == "f",
    )


def _named(function: Callable[..., T], path: str | os.PathLike[str] | None) -> Callable[..., T]:
    """``function`` whose errors that name no file name ``path`` (the plan follows the model's
    geometry, so its errors are about the model file)."""

    def call(*args: Any, **kwargs: Any) -> T:
        try:
            return function(*args, **kwargs)
        except ScopeMLError as err:
            if err.path is not None or path is None:
                raise
            try:
                named = type(err)(err.problem, path=path)
            except TypeError:  # a subclass with its own constructor: leave it as it is
                raise err from None
            raise named from err

    return call


def _check_output(
    output: Path,
    options: SegmentOptions,
    inputs: tuple[str | os.PathLike[str] | None, ...],
    tiffs: Sequence[str],
) -> None:
    """Refuse an output that exists (without ``overwrite``) or that scopeml may not replace;
    ``tiffs``: the outputs whose OME-TIFF copies the run will write. A scopeml store resumed
    is left to :func:`_check_partial_early`, which compares its record with this run's."""
    if output.exists() and not options.overwrite and not is_own_store(output):
        resolved = output.resolve()
        for source in (Path(s).resolve() for s in inputs if s is not None):
            if source == resolved or resolved in source.parents:
                raise InvalidRequestError(
                    f"the output holds the input {source}; choose another output", path=output
                )
        raise InvalidRequestError(
            "output exists and is not a scopeml store: no run record"
            + (", so no run of scopeml's to resume" if options.resume else "")
            + "; remove it yourself or choose another output",
            path=output,
        )
    if output.exists() and not options.overwrite:
        if options.resume:  # compared with this run's record once the inputs are checked
            return
        raise InvalidRequestError(
            "output exists; pass --overwrite (overwrite=True) to replace it", path=output
        )
    check_own_store(output, inputs=inputs)
    if options.overwrite:  # a store another call still adds its instances to: refused now
        refuse_held(output)
    partial = partial_path(output)
    if options.overwrite and not options.resume and partial.exists():
        check_own_store(partial, inputs=inputs)
    if not options.overwrite:  # not only after the whole run
        for name in tiffs:
            if ome_tiff_path(output, name).exists():
                raise InvalidRequestError(
                    "output exists; pass --overwrite (overwrite=True) to replace it",
                    path=ome_tiff_path(output, name),
                )


def _create_outputs(
    store: OutputStore,
    specs: Sequence[OutputSpec],
    axes_of: dict[str, str],
    image: Image,
    plan: TilePlan,
    classes: Sequence[str],
    pixel_sizes: dict[str, float],
) -> None:
    """Create the output arrays that do not exist yet (all, unless a run is resumed); the
    class labels marked as an NGFF label image naming the classes."""
    import zarr

    from scopeml.io import create_ome_zarr
    from scopeml.io.omezarr import mark_label_image, set_display_window

    n_classes = len(classes)

    for s in specs:
        axes = axes_of[s.name]
        chunks = [n_classes if a == "C" else plan.chunks[a] for a in axes]
        if is_zarr_store(store.path_of(s.name) / "0"):  # made by the interrupted run
            made = zarr.open_array(str(store.path_of(s.name) / "0"), mode="r").chunks
            if list(made) != chunks:  # same identity, other tiles: another scopeml's plan
                raise other_tiling(store.output, f"chunks {list(made)}; this run: {chunks}")
            continue
        create_ome_zarr(
            store.path_of(s.name),
            shape=[n_classes if a == "C" else image.sizes[a] for a in axes],
            dtype=s.dtype,
            axes=axes,
            chunks=chunks,
            pixel_sizes={a: v for a, v in pixel_sizes.items() if a in axes},
            channel_names=list(s.channel_names) if s.channel_names else [s.name],
            name=s.name,
            overwrite=True,
        )
        if s.name == "labels":  # class k is value k: shown over 0..k, not 0..255
            group = zarr.open_group(str(store.path_of(s.name)), mode="r+")
            mark_label_image(group, classes)
            set_display_window(group, len(classes))


class _TileCounter:
    """Turns finished batches into ``segment`` progress events (called from one thread)."""

    def __init__(self, report: ProgressCallback, total: int) -> None:
        self.report, self.total, self.done = report, total, 0
        report(ProgressEvent("segment", 0, total, "tile"))

    def __call__(self, n_tiles: int) -> None:
        self.done += n_tiles
        self.report(ProgressEvent("segment", self.done, self.total, "tile"))


def _execute(
    batches: Iterable[Sequence[Tile]],
    total: int,
    model: Model,
    image: Image,
    store: OutputStore,
    ctx: TileContext,
    options: SegmentOptions,
    model_ref: LoadRef | None,
    image_ref: LoadRef | None,
    report: ProgressCallback,
) -> None:
    """Run the batches on the chosen executor, reporting each finished batch, then build the
    outputs' lower resolutions."""
    from scopeml.io import open_ome_zarr_array

    array_paths = {s.name: str(store.path_of(s.name)) for s in ctx.specs}
    counter = _TileCounter(report, total)
    if options.scheduler:  # workers run in folders of their own: paths from the root
        run_dask(
            batches,
            scheduler=options.scheduler,
            model=model_ref or model,
            image=image_ref or image,
            array_paths={name: os.path.abspath(path) for name, path in array_paths.items()},
            partial=os.path.abspath(store.partial),
            ctx=ctx,
            on_progress=counter,
        )
    else:
        arrays = {n: open_ome_zarr_array(p, mode="r+") for n, p in array_paths.items()}

        def work(batch: Sequence[Tile]) -> int:
            return process_batch(model, image, arrays, batch, ctx, on_done=_marker(store))

        run_local(batches, work, workers=options.workers, on_progress=counter)
    _add_levels(store, ctx.specs, report)


def _window_of(plan: TilePlan, model: Model) -> dict[str, int]:
    """Nominal window size of a blending plan: the longest window along each axis."""
    axes = spatial_axes(model)
    return {a: max(w[a][1] - w[a][0] for tile in plan for w in tile.windows) for a in axes}


def _add_levels(store: OutputStore, specs: Sequence[OutputSpec], report: ProgressCallback) -> None:
    """Lower resolutions of each output before it is published, so a viewer shows a huge one
    whole: classes by the most frequent value of each block (a mean would invent classes),
    probabilities and images by the mean. Not for an output the store will not keep (the
    probabilities made only to seed instances: the run records the outputs it ends with). A
    stop among them is resumed as a stop among the tiles is: the levels are built again."""
    from scopeml.io.pyramid import add_levels

    kept = store.identity["options"]["outputs"]
    for spec in (spec for spec in specs if spec.name in kept):
        method = "mode" if spec.name in ("labels", "mask") else "mean"
        add_levels(store.path_of(spec.name), method, report)


def _marker(store: OutputStore):
    def on_done(tiles: Sequence[Tile], invalid: Sequence[int]) -> None:
        store.mark_done((tile.index for tile in tiles), invalid)

    return on_done


def _warn_invalid(count: int, image: Image) -> None:
    """One warning for the whole run: how many pixels were NaN or infinite."""
    if count:
        where = f"{image.path}: " if image.path else ""
        warnings.warn(
            f"{where}{count} {'pixel is' if count == 1 else 'pixels are'} NaN or infinite; "
            f"{'it is' if count == 1 else 'they are'} written as unclassified (label 0, "
            "probability and confidence 0) and left out of normalisation statistics",
            UserWarning,
            stacklevel=find_stack_level(),
        )


def _check_unchanged(image: Image, identity: dict[str, Any], invalid: int) -> None:
    """Before a run is published: warn of its ``invalid`` (NaN) pixels, and refuse it where
    its image file changed while its tiles were read (rewritten in place, a file still open
    reads the new bytes: the tiles may mix two versions of it)."""
    _warn_invalid(invalid, image)
    content = identity.get("image", {}).get("content")
    if content is None or not image.path:
        return
    try:
        now = image_content(image)
    except OSError:
        now = None
    if now != content:
        raise InvalidImageError(
            "the file changed while the run read it (its tiles may mix two versions of it): "
            "nothing was published; run again with --overwrite (overwrite=True)",
            path=image.path,
        )


def _publish(
    store: OutputStore,
    output: Path,
    *,
    overwrite: bool,
    hold: PublishedLock | None,
    before: Callable[[Path], None] | None = None,
) -> Path:
    """Publish the finished ``store`` as ``output`` (``hold``: still locked), after the
    caller's steps ``before`` on the partial store (its record written first); a store it
    replaces takes its OME-TIFF copies with it (they would pass for this run's)."""
    if before is not None:
        store.record_identity()
        before(store.partial)
    replaced = []
    if overwrite and output.is_dir():
        replaced = [p.name for p in output.iterdir() if p.is_dir() and not p.name.startswith(".")]
    result = store.finalize(overwrite=overwrite, hold=hold)
    for name in replaced:
        ome_tiff_path(result, name).unlink(missing_ok=True)
    return result


def ome_tiff_path(output: Path, name: str) -> Path:
    """``OUT.ome.zarr`` → ``OUT.<name>.ome.tiff``, next to it."""
    stem = output.name.removesuffix(".zarr").removesuffix(".ome")
    return output.with_name(f"{stem}.{name}.ome.tiff")


def export_ome_tiff(output: Path, names: Sequence[str], *, overwrite: bool) -> list[Path]:
    """Stream each named output array of a finished store into ``OUT.<name>.ome.tiff`` next
    to it, with the array's axes, pixel sizes and channel names (a single-channel output's
    channel is named after it); the copies equal the arrays."""
    from scopeml.io.ometiff import copy_to_ome_tiff

    paths = []
    for name in names:
        target = ome_tiff_path(output, name)
        if target.exists() and not overwrite:
            raise InvalidRequestError(
                "output exists; pass --overwrite (overwrite=True) to replace it", path=target
            )
        copy_to_ome_tiff(output / name, target, name)
        paths.append(target)
    return paths
