"""What a job may cost, refused at submit: a batch's memory, the pixels it declares, the
channels its image gives the model, and an image that does not open in a bounded child."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scopeml.errors import InvalidRequestError, ScopeMLError
from scopeml.model.spec import ModelSpec
from scopeml.server._job_child import ChildDied, TimedOut, run_in_child
from scopeml.server.config import MB, ServerConfig
from scopeml.server.job_options import wants_instances
from scopeml.server.paths import hide_server_paths, image_names, public_error
from scopeml.tiling.size import is_auto

INSTANCE_BYTES = 96  # per pixel of an instance tile (see after_engine_memory)
MEASURE_BYTES = 64  # per pixel of a measured tile, besides its channels
FIRST_USE_BYTES = 8 << 20
MEASURE_MARGIN = 128  # measure_image's default margin around its tiles


def job_memory(
    options: dict[str, Any],
    spec: ModelSpec,
    runtime_per_pixel: float = 0.0,
    shape: Sequence[int] | None = None,
) -> int:
    """Bytes a job holds at its peak, the largest of its steps' (:func:`job_step_memory`).

    Examples
    --------
    >>> spec = ModelSpec(2, 1, ("bg", "fg"), (16, 16))
    >>> job_memory({"tile_size": 96, "batch_size": 2}, spec)  # 2 × 128² × (1 + 2 × 2) × 4
    655360
    """
    return max(job_step_memory(options, spec, runtime_per_pixel, shape).values())


def job_step_memory(
    options: dict[str, Any],
    spec: ModelSpec,
    runtime_per_pixel: float = 0.0,
    shape: Sequence[int] | None = None,
) -> dict[str, int]:
    """Bytes each step of a job holds at its peak: ``segment``, one batch: ``batch_size``
    model inputs of the model's input channels, of twice its float32 output and of the
    runtime's ``runtime_per_pixel`` (as :func:`~scopeml.server.tiles.tile_memory` counts a
    tile); where the job makes instances, ``instances`` and, with ``measure``, ``measure``
    (:func:`after_engine_memory`).

    A model input is the engine's own tile plan (:func:`~scopeml.tiling.engine.build_plan`)
    for the model at the job's scale (:func:`~scopeml.tiling.scale.with_scale`: its halo and
    step in the image's pixels): the core plus the halo on each side, clipped to the image's
    6-D ``shape`` where it is given (a large halo on a small image costs only the image), or
    the model's fixed input size, to which every tile is padded. The model's terms count its
    own pixels, the window resized by the job's scale (more at a scale over 1, fewer below,
    where the window's float32 read and the output resized back to it count too); ``scale:
    auto`` counts 1 at submit (:func:`magnification`), and the job's process counts its batch
    again with the factor auto chose (:func:`~scopeml.server._job_child.check_job_inputs`).

    Examples
    --------
    >>> spec = ModelSpec(2, 1, ("bg", "fg"), (16, 16))
    >>> job_step_memory({"tile_size": 96, "batch_size": 2}, spec, shape=(1, 1, 1, 1, 50, 100))
    {'segment': 200000}
    """
    plan, sizes = _job_plan(options, spec, shape)
    scale = options.get("scale")
    dims, factor = spec.spatial_dims, 1.0 if scale is None or is_auto(scale) else float(scale)
    if spec.tile_shape:
        window = math.prod(spec.tile_shape)
    else:  # the largest read, as the plan bounds it (core + 2 × halo, clipped to the image)
        window = math.prod(
            min(plan.tile_shape[axis] + 2 * plan.halo[axis], _round_up(n, plan.step[axis]))
            for axis, n in plan.sizes.items()
            if axis in plan.tile_shape
        )
    per_pixel = (spec.in_channels + 2 * spec.n_classes) * 4 + runtime_per_pixel
    model_pixels = window * factor**dims  # the model sees the window resized by the scale
    # shrinking: the window read and the output resized back to it, both float32
    read = window * (spec.in_channels + spec.n_classes) * 4 if factor < 1 else 0
    batch = math.ceil((options.get("batch_size") or 1) * (model_pixels * per_pixel + read))
    if not wants_instances(options):
        return {"segment": batch}
    chunk = math.prod(plan.tile_shape.values())  # the engine's output chunks: its tile cores
    stage, table = after_engine_memory(options, spec, sizes, chunk)
    return {"segment": batch, "instances": stage, **({"measure": table} if table else {})}


def _job_plan(
    options: dict[str, Any], spec: ModelSpec, shape: Sequence[int] | None
) -> tuple[Any, tuple[int, ...]]:
    """The engine's tile plan for a job (its model at the job's scale, on the image's 6-D
    ``shape``; unknown: a huge one), and those sizes."""
    import numpy as np

    from scopeml.io.image import Image
    from scopeml.tiling.engine import build_plan
    from scopeml.tiling.options import SegmentOptions
    from scopeml.tiling.scale import with_scale

    scale = options.get("scale")
    dims, factor = spec.spatial_dims, 1.0 if scale is None or is_auto(scale) else float(scale)
    sizes = tuple(shape) if shape is not None else (1, 1, 1, *(2**30,) * 3)
    sizes = (*sizes[:3], sizes[3] if dims == 3 else 1, *sizes[4:])  # a 2-D model: one plane
    with warnings.catch_warnings():  # a factor run as a near fraction: the run says so
        warnings.simplefilter("ignore")
        model = with_scale(_Geometry(spec), factor)  # a fixed input refuses all but 1, as runs
    halo = options.get("halo")
    if halo is not None and halo < max(model.spec.halo):  # the engine warns; count the model's
        halo = None
    plan = build_plan(
        Image(np.broadcast_to(np.zeros((), np.uint8), sizes)),  # geometry only, no pixels
        model,
        SegmentOptions(tile_size=options.get("tile_size"), halo=halo),
    )
    return plan, sizes


def _memory_advice(
    options: dict[str, Any], spec: ModelSpec, runtime_per_pixel: float,
    shape: Sequence[int], limit: int,
) -> str:  # fmt: skip
    """What would bring a job's batch under ``limit``, beside the job's own tile: batch_size
    1, and the largest tile_size that does (found by halving the gap: the memory grows with
    the tile). It said "a smaller tile_size, halo or batch_size", and a user tried 640, then
    batch_size 1, then 448, before 384 passed."""
    tile = max(_job_plan(options, spec, shape)[0].tile_shape.values())
    batch = options.get("batch_size") or 1
    said = f"its tiles are {tile} px" + (f" in batches of {batch}" if batch > 1 else "")

    def fits(**change: int) -> bool:
        return job_memory({**options, **change}, spec, runtime_per_pixel, shape) <= limit

    ways = ["batch_size 1"] if batch > 1 and fits(batch_size=1) else []
    low, high = 16, tile - 1  # the largest tile that fits lies in [low, high], if any
    if not spec.tile_shape and fits(tile_size=low):
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if fits(tile_size=middle) else (low, middle - 1)
        ways.append(f"tile_size {low} or less")
    if not ways:
        return f"{said}, and no tile_size fits: use a smaller scale, or ask the administrator"
    return f"{said}: use {' or '.join(ways)}"


def check_job_memory(
    shape: Sequence[int],
    options: dict[str, Any],
    spec: ModelSpec,
    runtime_per_pixel: float,
    limit: int,
    job_limit: int | None = None,
) -> None:
    """Refuse, at submit, a job whose batch would hold more than ``limit`` bytes
    (``--max-tile-memory``), as :func:`job_memory` counts it on the image's 6-D ``shape``, or
    more than its process may map (``job_limit``, ``--job-memory-mb``: the batch alone; the
    libraries take their share besides, so a batch under it may still run out when it runs).

    ``scale: auto`` counts 1 here: counting the largest factor auto can choose (8 for
    ``nuclei``, whose estimate measures objects down to 2 px) would refuse a default
    ``nuclei`` job on any image over about 180² at the default limit. The job's process
    counts the batch again with the factor auto chose, before any tile runs.

    Examples
    --------
    >>> spec = ModelSpec(2, 1, ("bg", "fg"), (8, 8))
    >>> check_job_memory((1, 1, 1, 1, 64, 64), {}, spec, 0, 2**20)  # 64² × 5 × 4 bytes
    >>> check_job_memory((1, 1, 1, 1, 64, 64), {"scale": 4}, spec, 0, 2**20)
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: a batch of this job needs about 1.2 MB of server \
memory; the limit is 1.0 MB (--max-tile-memory-mb); its tiles are 64 px: use tile_size 47 or less
    >>> check_job_memory((1, 1, 1, 1, 64, 64), {"scale": 4}, spec, 0, 2**30, 2**20)
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: a batch of this job needs about 1.2 MB of memory, more \
than the job memory limit of 1.0 MB (--job-memory-mb); its tiles are 64 px: use tile_size 47 \
or less
    """
    needed = job_memory(options, spec, runtime_per_pixel, shape)
    if job_limit is not None and needed > job_limit and job_limit < limit:  # the lower limit
        advice = _memory_advice(options, spec, runtime_per_pixel, shape, job_limit)
        raise InvalidRequestError(
            f"a batch of this job needs about {megabytes(needed)} MB of memory, more than the "
            f"job memory limit of {megabytes(job_limit)} MB (--job-memory-mb); {advice}"
        )
    if needed > limit:  # windows clipped to the image, as the engine's tiles
        advice = _memory_advice(options, spec, runtime_per_pixel, shape, limit)
        raise InvalidRequestError(
            f"a batch of this job needs about {megabytes(needed)} MB of server memory; the "
            f"limit is {megabytes(limit)} MB (--max-tile-memory-mb); {advice}"
        )


def megabytes(size: int) -> str:
    """``size`` bytes in MB as a message says them: whole ones, a tenth below 10.

    Examples
    --------
    >>> megabytes(1100 * MB), megabytes(1310720), megabytes(900 * MB)
    ('1100', '1.2', '900')
    """
    return f"{size / MB:.0f}" if size >= 10 * MB else f"{size / MB:.1f}"


def after_engine_memory(
    options: dict[str, Any], spec: ModelSpec, shape: Sequence[int], chunk_pixels: int
) -> tuple[int, int]:
    """Bytes the steps after the engine hold at their peaks: the instance stage, and the
    objects table (with ``measure``).

    The instance stage reads tiles of the job's ``tile_size`` (else up to 1024 per axis) plus
    ``grow`` on each side: seeds, ids and the growth's masks, ``INSTANCE_BYTES`` per pixel;
    with a ``threshold`` the probabilities too, which zarr decodes a whole engine output
    chunk (``chunk_pixels``) at a time, up to ``2**ndim`` chunks around a tile, all classes in
    float32, twice (decoded and converted). The table measures tiles of up to 1024 per axis plus
    the measuring margin, labels and working arrays (``MEASURE_BYTES``) and every channel as
    float64. Each adds ``FIRST_USE_BYTES``, what the libraries' first calls in a fresh job
    process keep. ``tests/server/test_job_instances.py`` holds the traced peaks of the
    facade's stages to these.

    Examples
    --------
    >>> spec = ModelSpec(2, 1, ("background", "nucleus", "boundary"), (8, 8))
    >>> after_engine_memory({"measure": "csv", "tile_size": 64}, spec,
    ...                     (1, 1, 1, 1, 2000, 2000), 64 * 64)
    (9279488, 103940096)
    >>> after_engine_memory({"tile_size": 64, "scale": 0.125}, spec,  # grows 32 px, not 4
    ...                     (1, 1, 1, 1, 2000, 2000), 64 * 64)[0]
    10354688
    """
    from scopeml.objects.instances import InstanceOptions
    from scopeml.segment_steps import grow_applied

    instances = InstanceOptions.from_fields(options.get("instances", {}))
    *_, channels, depth, height, width = shape
    spatial = (depth, height, width) if spec.spatial_dims == 3 else (height, width)
    scale = options.get("scale")  # below 1 the seam grows wider (auto: counted once chosen)
    factor = float(scale) if isinstance(scale, (int, float)) else 1.0
    tile, grow = options.get("tile_size"), 2 * math.floor(grow_applied(instances.grow, factor))
    window = math.prod(min((tile or min(n, 1024)) + grow, n) for n in spatial)
    probabilities = 0
    if instances.seed_threshold is not None:
        probabilities = 2 ** len(spatial) * chunk_pixels * spec.n_classes * 4 * 2
    stage = window * INSTANCE_BYTES + probabilities + FIRST_USE_BYTES
    table = 0
    if options.get("measure"):
        margin = math.prod(min(min(n, 1024) + MEASURE_MARGIN, n) for n in spatial)
        table = margin * (MEASURE_BYTES + 8 * channels) + FIRST_USE_BYTES
    return stage, table


class _Geometry:
    """A model's spec without a model: what :func:`build_plan` reads."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def check_job_image(
    image: str | Path,
    scene: int | None,
    roots: list[Path],
    name: str,
    config: ServerConfig,
    *,
    axes: str | None = None,
) -> tuple[int, ...]:
    """Open a job's image as the job will (confined to ``roots``, with the job's ``axes``), in a
    child process with the ``config``'s time and memory limits
    (:func:`~scopeml.io.probe.probe_image`): refuse it before queueing.
    A reader that crashes on a corrupt file takes down only that child. Returns its 6-D shape.

    Raises
    ------
    InvalidRequestError
        The image does not open, names a file outside ``roots``, or crashed its reader.
    """
    found = describe_job_image(image, scene, roots, name, config, axes=axes)
    return tuple(int(n) for n in found["shape"])


def describe_job_image(
    image: str | Path,
    scene: int | None,
    roots: list[Path],
    name: str,
    config: ServerConfig,
    *,
    axes: str | None = None,
) -> dict[str, Any]:
    """:func:`check_job_image`'s probe, whole: the image's description
    (:func:`~scopeml.io.probe.describe_image`: ``shape``, ``channel_names``, …). A file whose
    scenes differ in size, given no ``scene``, is refused now (a job could only fail on it).
    Its errors name files as a job's failure does (:func:`hide_server_paths`): a reader's
    message quoting the file's path (PIL's, zarr's) gave the client the allowed root."""
    from scopeml.io._view import scene_sizes
    from scopeml.io.probe import probe_image

    try:
        found = probe_image(
            image,
            scene=scene,
            allowed_roots=roots,
            timeout=config.image_check_timeout,
            memory_limit=config.job_memory_limit,
            axes=axes,
        )
    except ScopeMLError as err:
        message = hide_server_paths(public_error(err, name, Path(image)), config)
        raise InvalidRequestError(message) from err
    shapes = [scene_info["shape"] for scene_info in found.get("scenes") or []]
    if scene is None and len({tuple(shape) for shape in shapes}) > 1:
        raise InvalidRequestError(
            f"{name}: the image has {len(shapes)} scenes of different sizes "
            f"({scene_sizes(shapes)}); give the job option scene (0–{len(shapes) - 1})"
        )
    if found.get("unreadable"):  # described by a bioio plugin that cannot read its pixels
        raise InvalidRequestError(hide_server_paths(f"{name}: {found['unreadable']}", config))
    return found


def check_job_scene(found: dict[str, Any], scene: int | None, name: str) -> None:
    """Refuse, at submit, a segment job without ``scene`` on an image of several scenes: it runs
    one scene, so it could only fail later, in the command line's words. (Uploads and analysis
    jobs, which do every scene, are not asked.)

    Examples
    --------
    >>> found = {"shape": [2, 1, 1, 1, 64, 80], "scenes": [{}, {}]}
    >>> check_job_scene(found, 1, "plate.ome.tif")
    >>> check_job_scene(found, None, "plate.ome.tif")
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: plate.ome.tif: the image has 2 scenes and a segment job \
runs one: give the job option scene (0–1), or submit an analysis, which does every scene
    """
    n = max(int(found["shape"][0]), len(found.get("scenes") or []))
    if scene is None and n > 1:
        raise InvalidRequestError(
            f"{name}: the image has {n} scenes and a segment job runs one: give the job option "
            f"scene (0–{n - 1}), or submit an analysis, which does every scene"
        )


def check_job_channels(
    shape: Sequence[int],
    options: dict[str, Any],
    spec: ModelSpec,
    model: str,
    name: str,
    channel_names: Sequence[str] | None = None,
) -> None:
    """Refuse, at submit, a job whose image (of 6-D ``shape``, read with the job's ``axes``)
    cannot give the model its channels: the job's ``channels`` are not as many as the model
    takes, name an index the image lacks or, given the image's ``channel_names``, a name it
    lacks or one channel twice (chosen by the helper the job's run chooses them with,
    :meth:`~scopeml.io.image.Image.select_channels`), or, without ``channels``, the image has
    another count. Said in the job's words, not the CLI's.

    Examples
    --------
    >>> spec = ModelSpec(2, 1, ("bg", "fg"), (0, 0))
    >>> check_job_channels((1, 1, 5, 1, 8, 8), {"axes": "CYX"}, spec, "'m'", "hela.tif")
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: hela.tif: has 5 channels (read with axes CYX); model \
'm' takes 1: choose it with the job's channels option (indices from 0 or names)
    >>> check_job_channels((1, 1, 5, 1, 8, 8), {"channels": [4]}, spec, "'m'", "hela.tif")
    >>> check_job_channels((1, 1, 2, 1, 8, 8), {"channels": ["GFP"]}, spec, "'m'", "hela.tif",
    ...                    ["DAPI", "Actin"])
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: channels: hela.tif: no channel 'GFP'; the image has \
DAPI, Actin (or indices 0..1)
    """
    have, want = int(shape[2]), spec.in_channels
    read = f" (read with axes {options['axes']})" if options.get("axes") else ""
    image = f"{name}: has {have} channel{'s' if have != 1 else ''}{read}"
    chosen = options.get("channels")
    if chosen is not None:
        if len(chosen) != want:
            raise InvalidRequestError(
                f"channels gives {len(chosen)} channel{'s' if len(chosen) != 1 else ''}; "
                f"model {model} takes {want}"
            )
        beyond = [c for c in chosen if isinstance(c, int) and c >= have]
        if beyond:
            raise InvalidRequestError(f"channels: {image}, so no index {beyond[0]}")
        if channel_names is not None and len(channel_names) == have:
            _select_channels(shape, channel_names, chosen, name)
        return
    if have == want:
        return
    if have < want:
        raise InvalidRequestError(f"{image}; model {model} takes {want}: give an image with {want}")
    which = "it" if want == 1 else f"{want} of them"
    raise InvalidRequestError(
        f"{image}; model {model} takes {want}: choose {which} with the job's channels option "
        "(indices from 0 or names)"
    )


def _select_channels(
    shape: Sequence[int], names: Sequence[str], chosen: Sequence[int | str], image: str
) -> None:
    """Choose ``chosen`` of an image of 6-D ``shape`` and channel ``names`` (geometry only, no
    pixels) as the job's run will, refusing what it would refuse (``channels: IMAGE: …``)."""
    import numpy as np

    from scopeml.io.image import Image

    try:
        Image(
            np.broadcast_to(np.zeros((), np.uint8), tuple(shape)), channel_names=list(names)
        ).select_channels(list(chosen))
    except InvalidRequestError as err:
        raise InvalidRequestError(f"channels: {image}: {err.problem}") from err


#: The fewest pixels a plane counts as: each costs a tile's fixed work at least (a TIFF of
#: 400,000 one-pixel pages counted as 400,000 pixels and kept a job worker 15 minutes).
MIN_PLANE_PIXELS = 64 * 64


def job_pixels(shape: Sequence[int], scale: float | None = None, spatial_dims: int = 2) -> int:
    """Pixels a job processes on an image of 6-D ``shape`` (S, T, C, Z, Y, X; one scene):
    time points × planes × height × width, times ``scale`` per spatial axis where the job
    magnifies (``scale`` over 1 feeds the model that many more pixels per axis); a plane
    counts as :data:`MIN_PLANE_PIXELS` at least.

    Examples
    --------
    >>> job_pixels((1, 1, 3, 1, 200_000, 200_000))
    40000000000
    >>> job_pixels((1, 2, 1, 5, 100, 100), scale=2.0)
    400000
    >>> job_pixels((1, 1, 1, 400_000, 1, 1))
    1638400000
    """
    _, t, _, z, y, x = (int(n) for n in shape)
    plane = max(y * x * magnification(scale) ** spatial_dims, MIN_PLANE_PIXELS)
    return math.ceil(t * z * plane)


def magnification(scale: float | str | None) -> float:
    """How many times more pixels per axis a job's ``scale`` feeds the model: the factor where
    it magnifies, else 1. ``"auto"`` counts as 1 in a job's pixels: its factor is chosen from
    the image when the job runs, so the bound checked at submit counts what the image declares
    (the job's process checks the factor it chose,
    :func:`~scopeml.server._job_child.check_job_inputs`).

    Examples
    --------
    >>> magnification(2.0), magnification(0.5), magnification(None), magnification("auto")
    (2.0, 1.0, 1.0, 1.0)
    """
    return max(1.0, float(scale)) if isinstance(scale, (int, float)) else 1.0


def check_job_pixels(
    shape: Sequence[int], options: dict[str, Any], spec: ModelSpec, limit: int, name: str
) -> None:
    """Refuse, at submit, a job over the server's pixel limit (``--max-job-pixels``), from the
    size its image declares: a tiny file that declares a huge image never reaches a worker.

    Examples
    --------
    >>> spec = ModelSpec(2, 1, ("bg", "fg"), (0, 0))
    >>> try:
    ...     check_job_pixels((1, 1, 1, 1, 200_000, 200_000), {}, spec, 2**34, "huge.ome.zarr")
    ... except InvalidRequestError as err:
    ...     print(err.problem[:70])
    huge.ome.zarr: declares 200000 × 200000 pixels (40,000,000,000 pixels)
    >>> try:
    ...     check_job_pixels((1, 1, 1, 400_000, 1, 1), {}, spec, 10**9, "pages.tif")
    ... except InvalidRequestError as err:
    ...     print(err.problem.split("; ")[0])  # doctest: +NORMALIZE_WHITESPACE
    pages.tif: declares 400000 × 1 × 1 pixels (1,638,400,000 pixels, each plane counted
    as 4,096 at least)
    """
    pixels = job_pixels(shape, options.get("scale"), spec.spatial_dims)
    if pixels <= limit:
        return
    _, t, _, z, y, x = (int(n) for n in shape)
    sizes = " × ".join(str(n) for n in (t, z) if n > 1)
    declared = f"{sizes + ' × ' if sizes else ''}{y} × {x}"
    factor = magnification(options.get("scale"))
    scaled = f", at scale {factor:g}" if factor > 1 else ""
    if y * x * factor**spec.spatial_dims < MIN_PLANE_PIXELS:
        scaled += f", each plane counted as {MIN_PLANE_PIXELS:,} at least"
    raise InvalidRequestError(
        f"{name}: declares {declared} pixels ({round(pixels):,} pixels{scaled}); this server "
        f"takes at most {limit:,} pixels per job (--max-job-pixels)"
    )


def check_analysis_pixels(
    images: Sequence[Any],
    roots: Sequence[Path],
    scale: float,
    config: ServerConfig,
    axes: Sequence[str | None] | None = None,
    settings: tuple[Path, str] | None = None,
    scene: int | str | None = None,
) -> None:
    """Refuse, at submit, an analysis whose images together declare more pixels than the
    server's limit (``--max-job-pixels``; every scene, × ``scale`` per axis where a class
    magnifies), as a segment job is refused (:func:`check_job_pixels`). Each image is read
    with its ``axes`` (one per image, as the settings give them:
    :meth:`~scopeml.analysis.AnalysisSettings.axes_of`; ``None``: as the file says), so a
    2-page TIFF the settings call ``CYX`` counts one plane, not two; and every scene (also
    scenes of different sizes), or only the settings' ``scene`` where they name one (a name:
    each image's scene of that name). The images are opened in one child process
    (:mod:`~scopeml.server._job_child`) under the job memory limit, each within
    ``image_check_timeout``; one that does not open (or lacks the scene named) is left to fail
    on its own when the analysis runs, one that crashes or hangs its reader refuses the
    analysis, by name.

    Given ``settings`` (the saved file and the name its client sent), that child first opens
    the models and classifiers it names as the job will
    (:func:`~scopeml.analysis.check.open_resources`: a class a model lacks, channels it does
    not take, each naming the settings line), reading no image and running no tile.

    Raises
    ------
    InvalidRequestError
        Too many pixels, an image that crashed or hung its reader (its public name), or the
        settings' models refused (the settings' name and line).
    """
    import json

    from scopeml.io.registry import FIELD_SEPARATOR, ChannelFiles, input_files

    named = image_names([str(f) for image in images for f in input_files(image)], config)
    names = [FIELD_SEPARATOR.join(named[str(f)] for f in input_files(image)) for image in images]
    opening = [-1 if settings is not None else 0]  # -1: the settings' models
    sent = [image.to_json() if isinstance(image, ChannelFiles) else image for image in images]
    task = {"kind": "sizes", "images": sent, "roots": [str(root) for root in roots],
            "axes": list(axes or [None] * len(images)), "scene": scene, "progress_stage": "sizes",
            "settings": None if settings is None else str(settings[0]), "names": names,
            "base": None if config.allowed_root is None else str(config.allowed_root)}  # fmt: skip
    opened = f"{settings[1]}'s models" if settings is not None else ""
    try:
        shapes = json.loads(
            run_in_child(
                task,
                lambda done, _: opening.__setitem__(0, done),
                (),
                config.job_memory_limit,
                time_limit=config.image_check_timeout,
                per_unit=True,
            )
            or "[]"
        )
    except TimedOut as err:
        what = names[opening[0]] if opening[0] >= 0 else opened
        raise InvalidRequestError(
            f"{what}: opening it took longer than {config.image_check_timeout:g} s; stopped"
        ) from err
    except ChildDied as err:
        what = names[opening[0]] if opening[0] >= 0 else opened
        raise InvalidRequestError(f"{what}: opening it, {err.problem}") from err
    except ScopeMLError as err:  # the settings' models, as the job's run would refuse them
        name = settings[1] if settings is not None else None
        raise InvalidRequestError(hide_server_paths(public_error(err, name), config)) from err
    counted = [
        (sum(job_pixels(shape, scale) for shape in scenes), name, scenes)
        for scenes, name in zip(shapes, names, strict=True)
        if scenes is not None
    ]
    pixels = sum(count for count, _, _ in counted)
    if pixels <= config.max_job_pixels:
        return
    _, largest, scenes = max(counted)
    declared = " + ".join(
        f"{n} × {_declared(shape)}" if n > 1 else _declared(shape)
        for shape, n in Counter(tuple(shape) for shape in scenes).items()
    )
    scaled = f", at scale {scale:g}" if scale > 1 else ""
    raise InvalidRequestError(
        f"the analysis's {len(counted)} images declare {round(pixels):,} pixels in all{scaled} "
        f"(the largest, {largest}: {declared}); this server takes at most "
        f"{round(config.max_job_pixels):,} pixels per job (--max-job-pixels)"
    )


def _declared(shape: Sequence[int]) -> str:
    """One scene's 6-D ``shape`` as a job's message says it: ``T × Z × Y × X``, the axes of 1
    left out.

    >>> _declared((1, 2, 3, 1, 64, 80))
    '2 × 64 × 80'
    """
    _, t, _, z, y, x = shape
    return " × ".join(str(n) for n in (*(n for n in (t, z) if n > 1), y, x))


def analysis_scale(settings: Any) -> float:
    """The largest ``scale`` the classes of analysis ``settings`` run a model at (1 where none
    magnifies, see :func:`magnification`): an analysis's pixel count is its images' times its
    square."""
    return max(magnification(getattr(c.segmenter, "scale", None)) for c in settings.classes)
