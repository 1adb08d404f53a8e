"""Whole-image jobs: segment a server-side image, record progress, survive restarts.

A job is a database record plus an output directory ``jobs/<id>/``. Its run is the facade's
(:func:`scopeml.api.segment`: the engine, then instances and their table where asked for),
written in ``jobs/<id>/stage/`` and moved to ``result.ome.zarr`` (and ``objects.csv``) when
every output is made; a job the server was running when it stopped (even killed) is resumed
from the tiles already written when the server starts again, and ends identical to an
uninterrupted run. Image paths from requests are resolved and must lie below the configured
root (:func:`resolve_image_path`); uploaded images live under ``uploads/`` with a random name.
Each attempt runs in a child process (:mod:`scopeml.server._job_child`): a reader that crashes
on a corrupt file fails the job, not the server. An analysis job (model id ``analysis``) runs a
settings file over images into ``jobs/<id>/results/``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import threading
import warnings
import zipfile
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from scopeml.analysis.results_lock import LOCK
from scopeml.errors import (
    Cancelled,
    IncompatibleModelError,
    InvalidRequestError,
    OutsideRootError,
    ScopeMLError,
)
from scopeml.model.spec import ModelSpec
from scopeml.server._job_child import ChildDied, InternalJobError, TimedOut, run_in_child
from scopeml.server.config import ServerConfig, private_dir, private_tree
from scopeml.server.database import Database
from scopeml.server.fair import FairQueue
from scopeml.server.models import ModelRegistry, server_problem
from scopeml.tiling.size import AUTO, is_auto

log = logging.getLogger(__name__)

RESULT_NAME = "result.ome.zarr"
ZIP_NAME = "result.zip"
ANALYSIS = "analysis"  # the model id of an analysis job (no model of its own)
SETTINGS_NAME = "settings.yaml"
IMAGES_NAME = "images.json"
RESULTS_NAME = "results"
TABLE_STEM = "objects"  # objects.csv or objects.parquet beside the result
STAGE_NAME = "stage"  # where a run writes; its outputs are moved out of it when all are made
INSTANCES = "instances"
OUTPUTS = ("labels", "probabilities", "confidence", "mask", "image", INSTANCES)  # image: Regression
MAX_GROW = 64.0  # pixels; also the instance tiles' halo
INSTANCE_BYTES = 96  # per pixel of an instance tile (see after_engine_memory)
MEASURE_BYTES = 64  # per pixel of a measured tile, besides its channels
FIRST_USE_BYTES = 8 << 20
MEASURE_MARGIN = 128  # measure_image's default margin around its tiles
IMAGE_SUFFIXES = (".czi", ".ome.tiff", ".ome.tif", ".tiff", ".tif", ".png", ".ome.zarr", ".zarr")
UPLOAD_SUFFIXES = tuple(s for s in IMAGE_SUFFIXES if "zarr" not in s)


#: A class by name or by label value (``k + 1`` for class ``k``).
ClassChoice = Annotated[str, Field(max_length=200)] | Annotated[int, Field(ge=1, le=65535)]


#: Old spellings of :class:`InstanceRequest` fields → the new ones (those of the settings YAML
#: and the command line), still taken with a :class:`DeprecationWarning` for one release.
OLD_INSTANCE_FIELDS = {
    "class_": "class",
    "boundary": "boundary_class",
    "threshold": "seed_threshold",
}


class InstanceRequest(BaseModel):
    """How a job's ``instances`` output is made: the fields of
    :class:`~scopeml.objects.instances.InstanceOptions`, bounded, spelt as in the settings YAML
    and on the command line (``class``, ``boundary_class``, ``seed_threshold``, ``grow``,
    ``min_size``, ``connectivity``). A field left out takes that class's default
    (``seed_threshold: null`` is a choice: seeds from the labels, not the probabilities). The
    old ``class_``, ``boundary`` and ``threshold`` are still taken for one release, with a
    warning in the server's log and in the job's ``warnings`` (:attr:`renamed`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    class_: ClassChoice | None = Field(default=None, alias="class")
    boundary_class: ClassChoice | None = None
    grow: float = Field(default=None, ge=0.0, le=MAX_GROW)  # type: ignore[assignment]
    min_size: int = Field(default=None, ge=0, le=10**9)  # type: ignore[assignment]
    connectivity: int = Field(default=None, ge=1, le=3)  # type: ignore[assignment]
    seed_threshold: float | None = Field(default=None, ge=0.0, lt=1.0)
    #: what :meth:`_old_names` said of old field names in the request: the job's first warnings
    _renamed: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _old_names(cls, data: Any, handler: Any) -> InstanceRequest:
        """The old field names, renamed with a :class:`DeprecationWarning` (logged too, and
        kept in :attr:`renamed` for the job's record: the client reads its ``warnings``)."""
        renamed = []
        if isinstance(data, dict) and set(data) & set(OLD_INSTANCE_FIELDS):
            data = dict(data)
            for old, new in OLD_INSTANCE_FIELDS.items():
                if old in data:
                    if new in data:
                        raise ValueError(f"give {new!r} only, not its old name {old!r} too")
                    message = f"instances: {old!r} is renamed {new!r}; the old goes next release"
                    warnings.warn(message, DeprecationWarning, stacklevel=2)
                    log.warning("job request: %s", message)
                    renamed.append(message)
                    data[new] = data.pop(old)
        request = handler(data)
        request._renamed = renamed
        return request

    @property
    def renamed(self) -> list[str]:
        """One line for each old field name the request used."""
        return list(self._renamed)

    def instance_options(self) -> dict[str, Any]:
        """The fields given, as JSON (the names above; a job keeps them so):
        :meth:`~scopeml.objects.instances.InstanceOptions.from_fields` makes the options."""
        return self.model_dump(exclude_unset=True, by_alias=True)


class JobOptions(BaseModel):
    """Options a job may set (the engine's, and how instances are made and measured);
    everything else is the server's choice."""

    model_config = ConfigDict(extra="forbid")

    outputs: list[Literal[OUTPUTS]] | None = Field(default=None, min_length=1, max_length=6)
    instances: InstanceRequest | None = None
    measure: bool | Literal["csv", "parquet"] | None = None  # true: csv
    tile_size: int | None = Field(default=None, ge=16, le=8192)
    halo: int | None = Field(default=None, ge=0, le=1024)
    batch_size: int | None = Field(default=None, ge=1, le=64)
    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    extract_class: str | None = Field(default=None, max_length=200)
    blend: bool | None = None
    normalize: str | None = Field(default=None, max_length=100)
    probability_dtype: Literal["float32", "float16", "uint8"] | None = None
    scene: int | None = Field(default=None, ge=0, le=100_000)
    #: a number, or ``"auto"`` (the factor chosen from the image when the job runs; its
    #: pixels and a batch's memory are bounded then,
    #: :func:`~scopeml.server._job_child.check_job_inputs`)
    scale: float | Literal["auto"] | None = None
    #: a TIFF file's axes, as ``--axes`` and ``axes=`` take them (``"TYX"``: a plain
    #: multi-page TIFF's pages are time points, not the Z planes it is read as otherwise)
    axes: str | None = Field(default=None, max_length=5)
    #: the image's channels fed to the model, by index (from 0) or name, in the model's order
    #: (left out: all of them, as many as the model takes)
    channels: (
        list[Annotated[int, Field(ge=0, strict=True)] | Annotated[str, Field(max_length=200)]]
        | None
    ) = Field(default=None, min_length=1, max_length=64)

    @field_validator("axes")
    @classmethod
    def _axes(cls, value: str | None) -> str | None:
        """``axes``: the letters checked as ``open_image`` checks them, upper case."""
        from scopeml.io.axes import check_axes_text

        if value is None:
            return None
        try:
            return check_axes_text(value)
        except InvalidRequestError as err:
            raise ValueError(err.problem) from err

    @field_validator("scale", mode="before")
    @classmethod
    def _scale(cls, value: Any) -> Any:
        """``scale``: a factor from 0.125 to 8, or ``"auto"`` (any case), one clear message
        for anything else."""
        if value is None or is_auto(value):
            return None if value is None else AUTO
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if number is None or not 0.125 <= number <= 8.0:
            raise ValueError(f"scale must be a number from 0.125 to 8 or 'auto', not {value!r}")
        return float(number)

    def segment_options(self) -> dict[str, Any]:
        """The options as a job keeps them: :class:`~scopeml.tiling.options.SegmentOptions`
        fields (checked), with ``instances`` (the keywords given) and ``measure`` (the table's
        format) where asked for."""
        from scopeml.tiling.options import SegmentOptions

        options = self.model_dump(exclude_none=True, exclude={"instances", "measure"})
        if self.measure:
            options["measure"] = "csv" if self.measure is True else self.measure
        if self.instances is not None:
            if not wants_instances(options):
                raise InvalidRequestError(
                    "instances options given, but neither the instances output nor measure "
                    "is asked for"
                )
            options["instances"] = self.instances.instance_options()
        SegmentOptions(**engine_options(options))  # raises InvalidRequestError on a bad one
        return options


def wants_instances(options: dict[str, Any]) -> bool:
    """Whether a job's options ask for instances (the output, or a table, made from them)."""
    return INSTANCES in (options.get("outputs") or ()) or bool(options.get("measure"))


def engine_options(options: dict[str, Any]) -> dict[str, Any]:
    """A job's options without those of the steps after the engine (for a check; the facade,
    :func:`scopeml.api.segment`, takes them all when the job runs)."""
    engine = {k: v for k, v in options.items() if k not in ("instances", "measure", "axes")}
    if wants_instances(options):
        outputs = [name for name in engine.get("outputs") or () if name != INSTANCES]
        engine["outputs"] = [*outputs, *(() if "labels" in outputs else ("labels",))]
    return engine


def check_instances(options: dict[str, Any], spec: ModelSpec, name: str) -> None:
    """Refuse, at submit, instances that the model ``name`` cannot give: a model that writes no
    class labels, or whose object class is not found (the facade's own choice of classes,
    :meth:`~scopeml.objects.instances.InstanceOptions.resolve`).

    Examples
    --------
    >>> spec = ModelSpec(2, 1, ("c0", "c1", "c2"), (0, 0))
    >>> check_instances({"outputs": ["instances"]}, spec, "unet")
    Traceback (most recent call last):
    scopeml.errors.IncompatibleModelError: model unet gives no instances: which class are the \
objects? classes are c0, c1, c2 (choose with --class / InstanceOptions(class_=...))
    >>> check_instances({"outputs": ["instances"], "instances": {"class": "c1"}}, spec, "unet")
    """
    if not wants_instances(options):
        return
    from scopeml.objects.instances import InstanceOptions
    from scopeml.tiling.outputs import model_outputs

    if model_outputs(spec.extra.get("model_type"), ["labels"]) != ("labels",):
        raise IncompatibleModelError(
            f"model {name} gives no instances: they are made from class labels, and it writes "
            "an image (a Regression model)"
        )
    try:
        InstanceOptions.from_fields(options.get("instances", {})).resolve(spec.classes)
    except InvalidRequestError as err:
        raise IncompatibleModelError(f"model {name} gives no instances: {err.problem}") from err


def resolve_image_path(user_path: str, allowed_root: Path | None) -> Path:
    """Resolve a request's image path and check it stays below ``allowed_root``.

    Relative paths are taken relative to the root; a path with a ``..`` component is refused
    with one message whatever lies there (so no answer tells where the root itself is), and
    symlinks are resolved before the check, so no link leads out.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "a.tif").write_bytes(b"")
    >>> resolve_image_path("a.tif", root) == (root / "a.tif").resolve()
    True
    >>> resolve_image_path("../etc/passwd", root)
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: image path '../etc/passwd': '..' is not allowed; name \
the file from the allowed root
    """
    if allowed_root is None:
        raise InvalidRequestError("this server accepts no image paths (no --allowed-root); upload")
    if not user_path or "\x00" in user_path or len(user_path) > 4096:
        raise InvalidRequestError("image path is empty, too long or contains NUL")
    if ".." in PurePosixPath(user_path).parts:
        raise InvalidRequestError(
            f"image path {user_path!r}: '..' is not allowed; name the file from the allowed root"
        )
    root = allowed_root.resolve()
    candidate = (root / user_path).resolve()
    if not candidate.is_relative_to(root):
        raise InvalidRequestError(f"image path {user_path!r} is outside the allowed root")
    if not candidate.exists():
        raise InvalidRequestError(f"image path {user_path!r} does not exist below the root")
    if not candidate.name.lower().endswith(IMAGE_SUFFIXES):
        raise InvalidRequestError(
            f"image path {user_path!r} has an unknown suffix; known: {', '.join(IMAGE_SUFFIXES)}"
        )
    return candidate


def image_name(image: str | Path, config: ServerConfig) -> tuple[str, str | None]:
    """The name a client knows a server-side image by, and its upload's id: an upload's file
    name (as :func:`upload_name` kept it), or the path below the allowed root; never where
    the server keeps its files.

    Examples
    --------
    >>> config = ServerConfig(Path("/srv/data"), allowed_root=Path("/srv/images"))
    >>> image_name("/srv/images/plate1/a.tif", config)
    ('plate1/a.tif', None)
    >>> image_name("/srv/data/uploads/0123abcd/cells.ome.tif", config)
    ('cells.ome.tif', '0123abcd')
    """
    path = Path(image)
    if path.parent.parent == config.uploads_dir:
        return path.name, path.parent.name
    root = config.allowed_root
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root).as_posix(), None
    return path.name, None  # an older server's upload, or a root that has moved


def upload_name(filename: str) -> str:
    """The name an upload is kept under (and that analyses name its results by): the client's
    file name without folders, limited to letters, digits, ``-``, ``_`` and ``.`` (others
    become ``_``), at most 100 characters, ending in its image suffix.

    Examples
    --------
    >>> upload_name("../../etc/cell s#1.OME.TIF")
    'cell_s_1.ome.tif'
    >>> upload_name(".tif")
    'image.tif'
    """
    suffix = upload_suffix(filename)
    base = filename.replace("\\", "/").rsplit("/", 1)[-1][: -len(suffix)]
    base = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in base)
    base = base.strip(".")[:100] or "image"
    return base + suffix


def upload_suffix(filename: str) -> str:
    """The image suffix of an upload's file name, from the known ones (never the name itself).

    Examples
    --------
    >>> upload_suffix("cells.OME.TIFF")
    '.ome.tiff'
    """
    lower = filename.lower()
    for suffix in UPLOAD_SUFFIXES:
        if lower.endswith(suffix):
            return suffix
    raise InvalidRequestError(
        f"upload {filename!r} has an unknown image suffix; known: {', '.join(UPLOAD_SUFFIXES)}"
    )


def public_error(err: ScopeMLError, name: str | None = None, image: Path | None = None) -> str:
    """An error's one-line message for a client: file names only, never where the server keeps
    its files (a read outside the allowed folders names the file it tried, not the folders; a
    file inside ``image``, such as a zarr chunk, by its path within the image; ``image`` itself,
    swapped for a link since it was checked, as pointing outside).

    Examples
    --------
    >>> from scopeml.errors import OutsideRootError
    >>> err = OutsideRootError("resolves to /x", path="/srv/root/a.ome.zarr/0/c/0/0")
    >>> public_error(err, "a.ome.zarr", Path("/srv/root/a.ome.zarr"))
    'a.ome.zarr: refers to 0/c/0/0, which lies outside the folders this image may read'
    >>> err = OutsideRootError("resolves to /x", path="/srv/root/plate/a.tif")
    >>> public_error(err, "plate/a.tif", Path("/srv/root/plate/a.tif"))
    'plate/a.tif: now points outside the allowed root'
    """
    where = name or (Path(err.path).name if err.path else "")
    prefix = f"{where}: " if where else ""
    if isinstance(err, OutsideRootError):
        if err.path and image is not None and Path(err.path) == image:
            return f"{prefix}now points outside the allowed root"
        tried = Path(err.path).name if err.path else "a file"
        if err.path and image is not None and Path(err.path).is_relative_to(image):
            tried = Path(err.path).relative_to(image).as_posix()
        return f"{prefix}refers to {tried}, which lies outside the folders this image may read"
    return prefix + server_problem(err)


def hide_server_paths(text: str, config: ServerConfig) -> str:
    """``text`` without where the server keeps files: a path below the allowed root as the path
    there, one below the data folder by its file name (the last resort of every error a client
    reads; the messages themselves name files so already).

    Examples
    --------
    >>> config = ServerConfig(Path("/srv/data"), allowed_root=Path("/srv/images"))
    >>> hide_server_paths("/srv/images/p/a.tif: bad; /srv/data/jobs/1/../x.yaml: gone", config)
    'p/a.tif: bad; x.yaml: gone'
    """
    import re

    places: dict[str, bool] = {}  # folder → whether paths below it keep their path there
    for folder, keep in ((config.data_dir, False), (config.allowed_root, True)):
        if folder is not None:
            for form in (os.fspath(folder), os.path.realpath(folder)):
                if form.rstrip(os.sep):
                    places[form.rstrip(os.sep)] = keep
    for place in sorted(places, key=len, reverse=True):
        below = r"/" if places[place] else r"/(?:[^\s'\"]*/)?"
        text = re.sub(re.escape(place) + below, "", text)
        shown = "the allowed root" if places[place] else "the server's folder"
        text = re.sub(re.escape(place) + r"(?![\w.-])", shown, text)
    return text


def job_memory(
    options: dict[str, Any],
    spec: ModelSpec,
    runtime_per_pixel: float = 0.0,
    shape: Sequence[int] | None = None,
) -> int:
    """Bytes one batch of a job holds at its peak: ``batch_size`` model inputs of the model's
    input channels, of twice its float32 output and of the runtime's ``runtime_per_pixel`` (as
    :func:`~scopeml.server.tiles.tile_memory` counts a tile).

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
    >>> job_memory({"tile_size": 96, "batch_size": 2}, spec)  # 2 × 128² × (1 + 2 × 2) × 4
    655360
    >>> job_memory({"tile_size": 96, "batch_size": 2}, spec, shape=(1, 1, 1, 1, 50, 100))
    200000
    """
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
        return batch
    chunk = math.prod(plan.tile_shape.values())  # the engine's output chunks: its tile cores
    return max(batch, *after_engine_memory(options, spec, sizes, chunk))


def check_job_memory(
    shape: Sequence[int],
    options: dict[str, Any],
    spec: ModelSpec,
    runtime_per_pixel: float,
    limit: int,
) -> None:
    """Refuse, at submit, a job whose batch would hold more than ``limit`` bytes
    (``--max-tile-memory``), as :func:`job_memory` counts it on the image's 6-D ``shape``.

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
    scopeml.errors.InvalidRequestError: a batch of this job needs about 1310720 bytes of server \
memory; the limit is 1048576 (--max-tile-memory): use a smaller tile_size, halo or batch_size
    """
    needed = job_memory(options, spec, runtime_per_pixel, shape)
    if needed > limit:  # windows clipped to the image, as the engine's tiles
        raise InvalidRequestError(
            f"a batch of this job needs about {needed} bytes of server memory; the limit is "
            f"{limit} (--max-tile-memory): use a smaller tile_size, halo or batch_size"
        )


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
    """
    from scopeml.objects.instances import InstanceOptions

    instances = InstanceOptions.from_fields(options.get("instances", {}))
    *_, channels, depth, height, width = shape
    spatial = (depth, height, width) if spec.spatial_dims == 3 else (height, width)
    tile, grow = options.get("tile_size"), 2 * math.floor(instances.grow)
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
    *,
    timeout: float = 60.0,
    memory_limit: int | None = None,
    axes: str | None = None,
) -> tuple[int, ...]:
    """Open a job's image as the job will (confined to ``roots``, with the job's ``axes``), in a
    child process with a time and a memory limit (:func:`~scopeml.io.probe.probe_image`):
    refuse it before queueing.
    A reader that crashes on a corrupt file takes down only that child. Returns its 6-D shape.

    Raises
    ------
    InvalidRequestError
        The image does not open, names a file outside ``roots``, or crashed its reader.
    """
    found = describe_job_image(
        image, scene, roots, name, timeout=timeout, memory_limit=memory_limit, axes=axes
    )
    return tuple(int(n) for n in found["shape"])


def describe_job_image(
    image: str | Path,
    scene: int | None,
    roots: list[Path],
    name: str,
    *,
    timeout: float = 60.0,
    memory_limit: int | None = None,
    axes: str | None = None,
) -> dict[str, Any]:
    """:func:`check_job_image`'s probe, whole: the image's description
    (:func:`~scopeml.io.probe.describe_image`: ``shape``, ``channel_names``, …)."""
    from scopeml.io.probe import probe_image

    try:
        return probe_image(
            image,
            scene=scene,
            allowed_roots=roots,
            timeout=timeout,
            memory_limit=memory_limit,
            axes=axes,
        )
    except ScopeMLError as err:
        raise InvalidRequestError(public_error(err, name, Path(image))) from err


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


def job_pixels(shape: Sequence[int], scale: float | None = None, spatial_dims: int = 2) -> int:
    """Pixels a job processes on an image of 6-D ``shape`` (S, T, C, Z, Y, X; one scene):
    time points × planes × height × width, times ``scale`` per spatial axis where the job
    magnifies (``scale`` over 1 feeds the model that many more pixels per axis).

    Examples
    --------
    >>> job_pixels((1, 1, 3, 1, 200_000, 200_000))
    40000000000
    >>> job_pixels((1, 2, 1, 5, 100, 100), scale=2.0)
    400000
    """
    _, t, _, z, y, x = (int(n) for n in shape)
    return math.ceil(t * z * y * x * magnification(scale) ** spatial_dims)


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
    ...     print(err.problem[:63])
    huge.ome.zarr: declares 200000 × 200000 pixels (4.0e+10 pixels)
    """
    pixels = job_pixels(shape, options.get("scale"), spec.spatial_dims)
    if pixels <= limit:
        return
    _, t, _, z, y, x = (int(n) for n in shape)
    sizes = " × ".join(str(n) for n in (t, z) if n > 1)
    declared = f"{sizes + ' × ' if sizes else ''}{y} × {x}"
    factor = magnification(options.get("scale"))
    scaled = f", at scale {factor:g}" if factor > 1 else ""
    raise InvalidRequestError(
        f"{name}: declares {declared} pixels ({pixels:.1e} pixels{scaled}); this server "
        f"takes at most {limit:.1e} pixels per job (--max-job-pixels)"
    )


def check_analysis_pixels(
    images: Sequence[str],
    roots: Sequence[Path],
    scale: float,
    config: ServerConfig,
    axes: Sequence[str | None] | None = None,
    settings: tuple[Path, str] | None = None,
) -> None:
    """Refuse, at submit, an analysis whose images together declare more pixels than the
    server's limit (``--max-job-pixels``; every scene, × ``scale`` per axis where a class
    magnifies), as a segment job is refused (:func:`check_job_pixels`). Each image is read
    with its ``axes`` (one per image, as the settings give them:
    :meth:`~scopeml.analysis.AnalysisSettings.axes_of`; ``None``: as the file says), so a
    2-page TIFF the settings call ``CYX`` counts one plane, not two. The images are opened
    in one child process (:mod:`~scopeml.server._job_child`) under the job memory limit, each
    within ``image_check_timeout``; one that does not open is left to fail on its own when the
    analysis runs, one that crashes or hangs its reader refuses the analysis, by name.

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

    names = [image_name(image, config)[0] for image in images]
    opening = [-1 if settings is not None else 0]  # -1: the settings' models
    task = {"kind": "sizes", "images": list(images), "roots": [str(root) for root in roots],
            "axes": list(axes or [None] * len(images)), "progress_stage": "sizes",
            "settings": None if settings is None else str(settings[0]),
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
        (shape[0] * job_pixels(shape, scale), name, shape)
        for shape, name in zip(shapes, names, strict=True)
        if shape is not None
    ]
    pixels = sum(count for count, _, _ in counted)
    if pixels <= config.max_job_pixels:
        return
    _, largest, shape = max(counted)
    s, t, _, z, y, x = shape
    declared = " × ".join(str(n) for n in (*(n for n in (s, t, z) if n > 1), y, x))
    scaled = f", at scale {scale:g}" if scale > 1 else ""
    raise InvalidRequestError(
        f"the analysis's {len(counted)} images declare {pixels:.1e} pixels in all{scaled} "
        f"(the largest, {largest}: {declared}); this server takes at most "
        f"{config.max_job_pixels:.1e} pixels per job (--max-job-pixels)"
    )


def analysis_scale(settings: Any) -> float:
    """The largest ``scale`` the classes of analysis ``settings`` run a model at (1 where none
    magnifies, see :func:`magnification`): an analysis's pixel count is its images' times its
    square."""
    return max(magnification(getattr(c.segmenter, "scale", None)) for c in settings.classes)


class JobRunner:
    """Runs jobs on ``config.job_workers`` threads; resumes unfinished ones on start; cancels on
    request.

    Queued jobs are shared fairly between users (:class:`~scopeml.server.fair.FairQueue`, as
    the predict workers are): a free worker takes the next job of the user served longest ago,
    and no user runs more than ``config.user_job_workers`` jobs at once, so one user's long
    queue never holds back another's job behind all of it.

    A job that was running when the server stopped counts one attempt; after
    ``config.max_job_attempts`` it is marked failed instead of being resumed again, so a job that
    crashes or hangs the server is not retried for ever.
    """

    def __init__(self, config: ServerConfig, db: Database, registry: ModelRegistry) -> None:
        self.config = config
        self.db = db
        self.registry = registry
        self._stop = threading.Event()
        self._cancel: dict[str, threading.Event] = {}
        self._futures: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # a job queued, a worker freed, a stop
        self._queue: FairQueue[str] = FairQueue(
            config.job_workers, config.user_job_workers or config.job_workers
        )
        self._owners: dict[str, str] = {}  # of the jobs queued or running here
        private_dir(config.jobs_dir)
        self._workers = [
            threading.Thread(target=self._work, name=f"scopeml-job-{i}", daemon=True)
            for i in range(config.job_workers)
        ]
        for worker in self._workers:
            worker.start()

    def output_dir(self, job_id: str) -> Path:
        return self.config.jobs_dir / job_id

    def result_path(self, job_id: str) -> Path:
        return self.output_dir(job_id) / RESULT_NAME

    def table_path(self, job_id: str) -> Path | None:
        """The objects table of a job that asked for one (``measure``), else ``None``."""
        job = self.db.get_job(job_id)
        kind = None if job is None else job["options"].get("measure")
        return self.output_dir(job_id) / f"{TABLE_STEM}.{kind}" if kind else None

    def resume_unfinished(self) -> list[str]:
        """Queue every job a previous server process left queued or running."""
        jobs = self.db.unfinished_jobs()
        for job in jobs:
            if job["status"] == "running":  # said where the server's operator sees it
                log.warning(
                    "resuming job %s of %s: it was running when the server stopped; it "
                    "continues from its partial output (%d/%d done, start %d)",
                    job["id"], job["owner"], job["done"], job["total"], job["attempts"] + 1,
                )  # fmt: skip
            else:
                log.info("job %s of %s was queued when the server stopped; queued again",
                         job["id"], job["owner"])  # fmt: skip
            self.submit(job["id"])
        return [job["id"] for job in jobs]

    def submit(self, job_id: str) -> None:
        """Queue a job (behind its owner's earlier ones; see :class:`JobRunner`)."""
        job = self.db.get_job(job_id)
        owner = "" if job is None else job["owner"]
        with self._wake:
            self._cancel[job_id] = threading.Event()
            self._futures[job_id] = Future()
            self._owners[job_id] = owner
            self._queue.put(owner, job_id)
            self._wake.notify()

    def counts(self) -> dict[str, int]:
        """Jobs of this process waiting for a worker (``queued``) and running (``running``)."""
        with self._lock:
            return {"queued": self._queue.waiting, "running": self._queue.busy}

    def _work(self) -> None:
        """A job worker: runs the queue's next job (:class:`FairQueue`'s turn) until the stop."""
        while True:
            with self._wake:
                while not self._stop.is_set() and (taken := self._queue.take()) is None:
                    self._wake.wait()
                if self._stop.is_set():
                    return
                owner, job_id = taken
                future = self._futures.get(job_id)
            try:
                if future is None or future.set_running_or_notify_cancel():
                    self._run(job_id)
            except Exception as err:
                log.exception("job %s: its worker failed", job_id)
                if future is not None:
                    future.set_exception(err)
            else:
                if future is not None and not future.cancelled():
                    future.set_result(None)
            finally:
                with self._wake:
                    self._queue.release(owner)
                    self._wake.notify_all()

    def cancel(self, job_id: str) -> Future[None] | None:
        """Ask a queued or running job to stop at its next batch; its future, if it has one.
        The job's record is marked ``cancelled`` (by its run when it stops, or by the caller)
        and its output folder kept: :meth:`resume` continues from the tiles it wrote."""
        with self._lock:
            event, future = self._cancel.get(job_id), self._futures.get(job_id)
            owner = self._owners.get(job_id, "")
            unqueued = self._queue.remove(owner, job_id)  # waiting: it never starts
            if unqueued:
                self._forget(job_id)
        if event is not None:
            event.set()
        if unqueued and future is not None:
            future.set_result(None)
        return future

    def running(self, job_id: str) -> bool:
        """Whether a run of the job is still queued or under way in this process."""
        with self._lock:
            future = self._futures.get(job_id)
        return future is not None and not future.done()

    def resume(self, job_id: str) -> bool:
        """Queue a cancelled job again; it resumes from its partial output (the engine's
        tiles, an analysis's finished images). Whether it was cancelled."""
        if self.running(job_id) or not self.db.requeue_job(job_id):
            return False
        self.submit(job_id)
        return True

    def close(self) -> None:
        """Stop running jobs at their next batch (they resume at the next start)."""
        with self._wake:
            self._stop.set()
            self._wake.notify_all()
            waiting = list(self._queue.items())
            for owner, job_id in waiting:
                self._queue.remove(owner, job_id)
                future = self._futures.get(job_id)
                if future is not None:
                    future.cancel()
                self._forget(job_id)
        for worker in self._workers:
            worker.join()

    def image_roots(self, image: str | Path) -> list[Path]:
        """The folders a job's image may read from: its upload's folder, or the allowed root."""
        path = Path(image)
        if path.parent.parent == self.config.uploads_dir:
            return [path.parent]
        if path.parent == self.config.uploads_dir:  # a single-file upload of an older server
            return [path]
        return [] if self.config.allowed_root is None else [self.config.allowed_root]

    def _run(self, job_id: str) -> None:
        try:
            job = self.db.get_job(job_id)
            if job is None or self._stop.is_set() or self._cancelled(job_id):
                return
            if job["status"] not in ("queued", "running"):  # cancelled while queued
                return
            if self.result_path(job_id).exists():  # finished writing before the server stopped
                self.db.update_job(job_id, status="done", done=job["total"])
                return
            unclean = self.db.start_job_attempt(job_id)  # this one, and those a crash ended
            if unclean > self.config.max_job_attempts:
                self.db.update_job(job_id, status="failed", error=_gave_up(unclean - 1))
                log.warning("job %s: %s (--max-job-attempts)", job_id, _gave_up(unclean - 1))
                return
            self._attempt(job)
        finally:
            with self._lock:
                self._forget(job_id)
            if self.db.get_job(job_id) is None:  # deleted while queued or running
                shutil.rmtree(self.output_dir(job_id), ignore_errors=True)

    def _attempt(self, job: dict[str, Any]) -> None:
        """Run one attempt of a job in a child process (see :mod:`scopeml.server._job_child`);
        the warnings its run gives are added to the job's ``warnings``, server paths hidden."""
        job_id = job["id"]
        outcome: dict[str, Any] = {"status": "done"}
        try:
            task, already = self._task(job)
            progress = _JobProgress(self.db, job_id, already, _tile_total(job, already))
            progress.step(task.get("progress_stage", "segment"))
            private_dir(self.output_dir(job_id))
            note = run_in_child(
                task,
                progress,
                self._stops(job_id),
                self.config.job_memory_limit,
                progress.step,
                time_limit=self.config.max_job_seconds or None,
                on_warning=lambda line: self.db.add_job_warning(
                    job_id, hide_server_paths(line, self.config)
                ),
            )
            outcome["done"] = progress.total
            if note:
                outcome["error"] = hide_server_paths(note, self.config)
        except TimedOut:  # stopped as a cancel stops it: kept, resumable
            outcome = {}
            self.db.stopped_cleanly(job_id)  # not the job's crash: no attempt off the limit
            if not self._cancelled(job_id) and self.db.time_out_job(
                job_id, self.config.max_job_seconds
            ):
                log.warning("job %s ran past --max-job-seconds; stopped, resumable", job_id)
            else:  # cancelled meanwhile
                self.db.cancel_job(job_id)
        except Cancelled:  # cancelled (kept, resumable) or the server stops (it resumes)
            outcome = {}
            self.db.stopped_cleanly(job_id)  # a run (attempts), but not the job's fault
            if self._cancelled(job_id):
                self.db.cancel_job(job_id)
                log.info("job %s cancelled; its partial output is kept for a resume", job_id)
            else:
                log.info("job %s stopped; it resumes when the server starts again", job_id)
        except ChildDied as err:  # counts as an attempt: a crashing job is not resumed for ever
            log.warning("job %s: %s", job_id, err.problem)
            outcome = {"status": "failed", "error": err.problem}
        except ScopeMLError as err:  # name the file, not where the server keeps it
            outcome = {"status": "failed", "error": self._reason(err, job)}
            log.info("job %s failed: %s", job_id, outcome["error"])
        except InternalJobError as err:  # the child wrote its traceback to the server's log
            log.error("job %s failed in its process: %s (traceback above)", job_id, err)
            outcome = {"status": "failed", "error": str(err)}
        except Exception as err:
            log.exception("job %s failed", job_id)
            outcome = {"status": "failed", "error": f"internal error ({type(err).__name__})"}
        if self.output_dir(job_id).exists():  # the engine's writer makes files 0644
            private_tree(self.output_dir(job_id))
        if outcome:
            self.db.update_job(job_id, **outcome)

    def _task(self, job: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """What the child runs for ``job``, and how much an earlier attempt already did."""
        job_id, options = job["id"], job["options"]
        if job["model_id"] == ANALYSIS:
            images = json.loads((self.output_dir(job_id) / IMAGES_NAME).read_text())
            roots = self.analysis_roots(images)
            task = {
                "kind": "analyze",
                "settings": str(self.output_dir(job_id) / SETTINGS_NAME),
                "images": images,
                "output": str(self.output_dir(job_id) / RESULTS_NAME),
                "roots": [str(root) for root in roots],
                "base": None if self.config.allowed_root is None else str(self.config.allowed_root),
                "progress_stage": "analyze",
                "names": {image: image_name(image, self.config)[0] for image in images},
                "max_job_pixels": self.config.max_job_pixels,  # checked again once auto chooses
            }
            return task, 0
        result, table = self.result_path(job_id), self.table_path(job_id)
        model = self.db.get_model(job["model_id"])  # None: a built-in one
        task = {
            "kind": "segment",
            "model": str(self.registry.path(job["model_id"])),
            # what the store records instead of the server's paths (the names the user knows)
            "name": image_name(job["image"], self.config)[0],
            "model_name": None if model is None else model["spec"].get("name"),
            "time_budget": self.config.model_time_budget,
            "image": job["image"],
            "options": options,
            "output": str(result),
            "table": None if table is None else str(table),
            "stage": str(self.output_dir(job_id) / STAGE_NAME),
            "roots": [str(root) for root in self.image_roots(job["image"])],
            # checked again once auto chooses its factor (at submit it counted ×1)
            "max_job_pixels": self.config.max_job_pixels,
            "max_tile_memory": self.config.max_tile_memory,
            "runtime_per_pixel": self._runtime_per_pixel(job["model_id"], model),
        }
        staged = self.output_dir(job_id) / STAGE_NAME / RESULT_NAME
        _adopt_partial(result, staged)
        return task, _tiles_written(staged)

    def _runtime_per_pixel(self, model_id: str, record: dict[str, Any] | None) -> float:
        """The runtime's bytes per input pixel that submit counted in a batch's memory
        (:func:`job_memory`): from the model's record, a built-in model's as served."""
        from scopeml.model.registry import BUILTIN_MODELS
        from scopeml.server.models import RUNTIME_KEY

        if record is None and model_id in BUILTIN_MODELS:
            record = self.registry.builtin(model_id)
        return float((record or {}).get("spec", {}).get(RUNTIME_KEY, 0) or 0)

    def save_analysis_images(self, job_id: str, images: list[str]) -> None:
        """Keep an analysis job's image paths with its settings (its record shows only the
        names the user gave)."""
        target = private_dir(self.output_dir(job_id)) / IMAGES_NAME
        target.write_text(json.dumps(images))
        os.chmod(target, 0o600)

    def analysis_roots(self, images: list[str]) -> list[Path]:
        """The folders an analysis job may read: the allowed root and its uploads' folders."""
        roots = [] if self.config.allowed_root is None else [self.config.allowed_root]
        for image in images:
            for root in self.image_roots(image):
                if root not in roots:
                    roots.append(root)
        return roots

    def _reason(self, err: ScopeMLError, job: dict[str, Any]) -> str:
        """The failure as the user knows the files (a model by its display name), with no
        server path (:func:`hide_server_paths`)."""
        return hide_server_paths(self._named(err, job), self.config)

    def _named(self, err: ScopeMLError, job: dict[str, Any]) -> str:
        if err.path and Path(err.path).parent == self.config.models_dir:
            record = self.db.get_model(job["model_id"])
            return public_error(err, f"model {record['name']}" if record else "model")
        if job["model_id"] == ANALYSIS:  # the settings by the user's file name, an image by its
            settings = self.output_dir(job["id"]) / SETTINGS_NAME  # public name
            if err.path and Path(err.path) == settings:
                return public_error(err, job["options"].get("settings") or SETTINGS_NAME)
            if err.path:  # an image (each is checked before any is read)
                return public_error(err, image_name(err.path, self.config)[0], Path(err.path))
            return public_error(err)
        image = Path(job["image"])
        return public_error(err, image_name(image, self.config)[0], image)

    def _forget(self, job_id: str) -> None:
        """Drop a job's run state (the caller holds the lock)."""
        self._cancel.pop(job_id, None)
        self._futures.pop(job_id, None)
        self._owners.pop(job_id, None)

    def _cancelled(self, job_id: str) -> bool:
        with self._lock:
            event = self._cancel.get(job_id)
        return event is not None and event.is_set()

    def _stops(self, job_id: str) -> tuple[threading.Event, ...]:
        with self._lock:
            event = self._cancel.get(job_id)
        return (self._stop,) if event is None else (self._stop, event)

    def remove(self, job_id: str) -> None:
        """Delete a job's record and output folder (a running job removes it when it stops)."""
        self.db.delete_job(job_id)
        shutil.rmtree(self.output_dir(job_id), ignore_errors=True)

    def result_zip(self, job_id: str) -> Path:
        """A zip of the job's output (made once, atomically): ``result.ome.zarr/…`` of a
        segmentation job (and its objects table beside it, ``objects.csv``), ``results/…`` of
        an analysis job."""
        target = self.output_dir(job_id) / ZIP_NAME
        if target.exists():
            return target
        source = self.output_dir(job_id) / RESULTS_NAME
        table = None
        if not source.is_dir():
            source, table = self.result_path(job_id), self.table_path(job_id)
        partial = target.with_name(f".{ZIP_NAME}.{os.getpid()}.{threading.get_ident()}")
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:
            for path in sorted(source.rglob("*")):
                inside = path.relative_to(source).parts
                if any(part.endswith(".partial") for part in inside):  # a stopped run's scratch
                    continue
                if inside == (LOCK,):  # a killed run's lock on the folder, not a result
                    continue
                if path.is_file() and not path.is_symlink():
                    archive.write(path, Path(source.name) / path.relative_to(source))
            if table is not None and table.is_file():
                archive.write(table, table.name)
        os.replace(partial, target)
        return target


def _gave_up(attempts: int) -> str:
    return (
        f"stopped {attempts} times while running (the server crashed, was killed or restarted "
        "during each attempt); not resumed again"
    )


def _tile_total(job: dict[str, Any], already: int) -> int:
    """The job's tile count as its record last showed it, while a resumed attempt has not
    counted its tiles yet: its ``total`` where that counted the engine's tiles (not the blocks
    of step ``statistics``) and at least the ``already`` written; in the steps after the
    engine (whose ``total`` counts their own passes) the ``already`` written, which are all;
    0 (not counted yet) otherwise, so that a resume never reads as finished (``done`` =
    ``total``) before its work restarts.

    Examples
    --------
    >>> _tile_total({"step": "segment", "total": 64}, 5)
    64
    >>> _tile_total({"step": "statistics", "total": 16}, 5), _tile_total({"total": 0}, 0)
    (0, 0)
    >>> _tile_total({"step": "instances", "total": 192}, 64)
    64
    """
    total, step = int(job.get("total") or 0), job.get("step")
    if already and step in OWN_COUNT_STEPS and step != "statistics":
        return already
    if already and step != "statistics" and total >= already:
        return total
    return 0


#: Steps whose ``done``/``total`` count their own units, not the engine's tiles: the blocks of
#: the normalisation's pass; the tiles of the instances' and the table's passes
#: (:class:`~scopeml.server._job_child.PassCounter`).
OWN_COUNT_STEPS = ("statistics", INSTANCES, "measure")


class _JobProgress:
    """Records the child's progress and step on the job (``already``: tiles of an earlier
    attempt; ``expected``: all its tiles, as an earlier attempt counted them, 0 if unknown).
    In the ``statistics`` step ``done``/``total`` count the blocks its pass reads; in
    ``segment``, the engine's tiles (with those of earlier attempts); in ``instances`` and
    ``measure``, the tiles of their passes over the labels (:data:`OWN_COUNT_STEPS`)."""

    def __init__(self, db: Database, job_id: str, already: int, expected: int = 0) -> None:
        self.db, self.job_id, self.already = db, job_id, already
        self.expected = expected
        self.total = already
        self.current: str | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.current in OWN_COUNT_STEPS:
            if self.current != "statistics":  # the job's last count, when it is done
                self.total = total
            self.db.update_job(self.job_id, done=done, total=total)
            return
        self.total = self.already + total
        self.db.update_job(self.job_id, done=self.already + done, total=self.total)

    def step(self, name: str) -> None:
        """The step the job is in (``statistics``, ``segment``, then ``instances``,
        ``measure``; ``analyze`` for an analysis)."""
        self.current = name
        if name == "segment":  # the tiles an earlier attempt wrote, until the engine counts
            total = self.total if self.total > self.already else self.expected
            self.db.update_job(self.job_id, step=name, done=self.already, total=total)
        else:
            self.db.update_job(self.job_id, step=name)


def _adopt_partial(result: Path, staged: Path) -> None:
    """Move the partial store that a server from before the stage folder left beside the
    result into the stage, so that its tiles resume instead of being run again."""
    from scopeml.tiling.store import partial_path

    old, new = partial_path(result), partial_path(staged)
    if old.is_dir() and not new.exists():
        private_dir(staged.parent)
        os.replace(old, new)


def _tiles_written(output: Path) -> int:
    """Tiles an earlier attempt already wrote to ``output`` (0 when it has not started)."""
    from scopeml.tiling.store import OutputStore

    try:
        return len(OutputStore(output, {}).done())
    except FileNotFoundError:  # nothing written yet
        return 0
