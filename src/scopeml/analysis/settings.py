"""Image-analysis settings: a versioned pydantic schema, read from and written to YAML.

A settings file names the input channels, a tree of object classes (each with its own
segmenter, post-processing steps in order, measurements and an optional object classifier;
children are segmented only inside their parent's objects) and the outputs to write. The same
objects are built in Python, saved back to YAML and used unchanged by the command line, the
Python API and the server.

Errors name the file, the line and the key: pydantic's error locations are mapped onto the
YAML node marks of ``yaml.compose``.

Examples
--------
>>> settings = AnalysisSettings(
...     channels=["DAPI"],
...     classes=[ClassSettings(name="nucleus",
...                            segmenter=ThresholdSegmenter(channel="DAPI", method="otsu"))],
... )
>>> parse_settings(dump_settings(settings)) == settings
True
"""

from __future__ import annotations

import fnmatch
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from scopeml import safe_yaml
from scopeml.analysis.rules import Rules, check_name, check_order
from scopeml.errors import InputNotFoundError, InvalidRequestError
from scopeml.io.image import names_tell_nothing
from scopeml.objects.instances import InstanceOptions
from scopeml.pixel_size import parse_pixel_size, pixel_size_value
from scopeml.post.steps import MAX_BALL_RADIUS, MAX_DISTANCE, MAX_SIGMA, size_problem
from scopeml.tiling.size import scale_value

__all__ = [
    "MODEL_SEGMENTERS",
    "AnalysisSettings",
    "ClassSettings",
    "GrowSegmenter",
    "Inputs",
    "InstancesSegmenter",
    "InvalidSettingsError",
    "Measurements",
    "ModelSegmenter",
    "Outputs",
    "PostStep",
    "ThresholdSegmenter",
    "dump_settings",
    "load_settings",
    "parse_settings",
    "save_settings",
]

VERSION = 1
MAX_SETTINGS_BYTES = 1 << 20
#: The most classes one settings file may have. A nucleus, cell and spot tree with a few
#: classifiers needs about ten; each class is a segmentation, a table and a label store per
#: image, so thousands (a 127 KB file of 2000 ``instances`` classes) held a server's submit for
#: 36 s and then failed with a misleading out-of-memory hint. 100 leaves room for any real tree.
MAX_CLASSES = 100


class InvalidSettingsError(InvalidRequestError):
    """A settings file is malformed; the message starts with the line (``line 12: …``)."""


def _within(name: str, limit: float) -> AfterValidator:
    """A size at most ``limit`` pixels, finite (the limits of :mod:`scopeml.post.steps`)."""

    def check(value: Any) -> Any:
        problem = size_problem(name, value, limit)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ThresholdSegmenter(_Strict):
    """Pixels of one channel above a threshold (after optional Gaussian smoothing)."""

    kind: Literal["threshold"] = "threshold"
    channel: str
    method: Literal["fixed", "otsu", "li", "triangle"] = "otsu"
    value: float | None = Field(
        None, allow_inf_nan=False, description="the threshold for method 'fixed'"
    )
    sigma: Annotated[float, _within("sigma", MAX_SIGMA)] = Field(
        0.0, ge=0.0, description="Gaussian smoothing before thresholding"
    )
    dark: bool = Field(False, description="keep pixels below the threshold instead")
    factor: float = Field(
        1.0, gt=0, description="an automatic level is multiplied by this (CellProfiler's "
        "threshold correction factor: above 1 stricter, below 1 more lenient)",
    )  # fmt: skip
    minimum: float | None = Field(
        None, description="an automatic level is at least this (a blank image gets no objects)"
    )
    maximum: float | None = Field(None, description="an automatic level is at most this")
    scope: Literal["pooled", "per_parent"] = Field(
        "pooled", description="a child class's automatic threshold: one from all its parent "
        "objects' pixels together (pooled), or one per parent object from its own pixels",
    )  # fmt: skip

    @model_validator(mode="after")
    def _value_for_fixed(self) -> ThresholdSegmenter:
        if (self.method == "fixed") != (self.value is not None):
            raise ValueError("'value' is required for method 'fixed' and only for it")
        if self.method == "fixed" and self.scope != "pooled":
            raise ValueError(
                f"'scope: {self.scope}' is for automatic thresholds (otsu, li, triangle); "
                "method 'fixed' uses its value everywhere"
            )
        adjusted = self.factor != 1 or self.minimum is not None or self.maximum is not None
        if self.method == "fixed" and adjusted:
            raise ValueError(
                "'factor', 'minimum' and 'maximum' adjust automatic thresholds (otsu, li, "
                "triangle); method 'fixed' uses its value as it is"
            )
        if None not in (self.minimum, self.maximum) and self.minimum > self.maximum:
            raise ValueError(f"'minimum' {self.minimum} is above 'maximum' {self.maximum}")
        return self

    def adjusted(self, level: Any) -> Any:
        """An automatic level (or array of levels per parent) times ``factor``, within
        ``minimum`` and ``maximum``; NaN (no level) stays NaN."""
        import numpy as np

        low = -np.inf if self.minimum is None else self.minimum
        high = np.inf if self.maximum is None else self.maximum
        return np.clip(np.asarray(level, np.float64) * self.factor, low, high)


#: ``segment --scale``: a factor within the scale module's limits, or ``"auto"``.
Scale = Annotated[float | Literal["auto"], BeforeValidator(scale_value)]  # one message

#: Channel names: a list, or one name (``channels: DAPI``, aliases' ``DAPI: Hoechst``) as a
#: list of it, as a user writes one.
Names = Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)]


def _normalize_value(value: str) -> str:
    from scopeml.errors import ScopeMLError
    from scopeml.tiling.normalize import canonical_normalize

    try:
        return canonical_normalize(value)
    except ScopeMLError as err:
        raise ValueError(err.problem) from None


#: ``segment --normalize``: a policy, ``per time point`` (the model's own, each time point's).
Normalize = Annotated[str, AfterValidator(_normalize_value)]
_NORMALIZE_HELP = (
    "the model's input normalisation as segment --normalize: null, the model's own; 'per time "
    "point', the model's own from each time point alone (a bleaching series' counts then do "
    "not fall with its brightness); or a policy, such as percentile:1,99.8 [per time point]"
)


_CLASS_HELP = (
    "class name, or label value (k + 1); default the model's one object class (neither "
    "background nor boundary: nucleus of nuclei)"
)
_CHANNELS_HELP = "the channels the model reads, in its order; default the settings' channels"


class ModelSegmenter(_Strict):
    """Pixels a model assigns to one class (a czann, czseg, or built-in name like ``nuclei``)."""

    kind: Literal["model"] = "model"
    model: str
    class_: str | int | None = Field(None, alias="class", description=_CLASS_HELP)
    channels: Names = Field(min_length=1, description=_CHANNELS_HELP)
    min_confidence: float = Field(0.0, ge=0.0, le=1.0)
    scale: Scale | None = Field(
        None,
        description="magnify the image by this for the model (2: objects half the size it "
        "was trained on), or auto (from the objects' size), as segment --scale",
    )  # fmt: skip
    normalize: Normalize | None = Field(None, description=_NORMALIZE_HELP)


#: ``scopeml segment``'s instance defaults, the one source of the settings' defaults.
_INSTANCES = InstanceOptions()


class InstancesSegmenter(_Strict):
    """Objects as ``scopeml segment --outputs instances`` makes them, with the same code and
    the same defaults (:class:`~scopeml.objects.instances.InstanceOptions`): seeds where
    ``P(class) > seed_threshold`` (``null``: the model's labels of ``class``) with at least
    ``min_size`` pixels, grown at most ``grow`` pixels over the boundary class; tiled exactly.
    """

    kind: Literal["instances"] = "instances"
    model: str
    class_: str | int | None = Field(None, alias="class", description=_CLASS_HELP)
    boundary_class: str | int | None = Field(
        None, description="the class seeds grow into; default the model's class named "
        "'boundary' (without one: connected components of 'class')",
    )  # fmt: skip
    channels: Names = Field(min_length=1, description=_CHANNELS_HELP)
    min_confidence: float = Field(0.0, ge=0.0, le=1.0)
    scale: Scale | None = Field(
        None,
        description="magnify the image by this for the model (2: objects half the size it "
        "was trained on), or auto (from the objects' size), as segment --scale",
    )  # fmt: skip
    normalize: Normalize | None = Field(None, description=_NORMALIZE_HELP)
    seed_threshold: float | None = Field(
        _INSTANCES.seed_threshold, ge=0.0, lt=1.0,
        description="seeds where P(class) exceeds this (with a boundary class); null: the "
        "model's labels of the class",
    )  # fmt: skip
    grow: Annotated[float, _within("grow", MAX_DISTANCE)] = Field(
        _INSTANCES.grow, ge=0.0, description="pixels a seed grows at most"
    )
    min_size: int = Field(_INSTANCES.min_size, ge=0, description="smaller seeds are dropped")

    def instance_options(self) -> InstanceOptions:
        """These settings as ``segment``'s options.

        Examples
        --------
        >>> seg = InstancesSegmenter(model="nuclei", **{"class": "nucleus"}, channels=["a"])
        >>> seg.instance_options() == InstanceOptions(class_="nucleus")
        True
        """
        return InstanceOptions(
            class_=self.class_, boundary_class=self.boundary_class, grow=self.grow,
            min_size=self.min_size, connectivity=_INSTANCES.connectivity,
            seed_threshold=self.seed_threshold,
        )  # fmt: skip


class GrowSegmenter(_Strict):
    """Each object of another class (``seeds``: nuclei) grown into one object of this class
    with the seed's id (its cell; :func:`~scopeml.objects.grow.grow_objects`): at most
    ``distance`` pixels, within ``within``'s foreground (a threshold of a cell stain) and along
    that stain where given, else to the nearest seed; CellProfiler's secondary objects.
    ``exclude_seeds``: the ring around each seed (its cytoplasm)."""

    kind: Literal["grow"] = "grow"
    seeds: str = Field(min_length=1, description="the class whose objects grow (segmented first)")
    distance: float = Field(
        10.0, gt=0, allow_inf_nan=False, description="X pixels an object grows at most from "
        "its seed (any number: the class runs on its whole plane; a Z step, or a pixel taller "
        "than wide, counts by its size where the pixel sizes are known)",
    )  # fmt: skip
    within: ThresholdSegmenter | None = Field(
        None, description="grow only over this threshold's pixels of a cell stain, cells "
        "meeting at the stain's dim line between them (without: halfway between the seeds)",
    )  # fmt: skip
    exclude_seeds: bool = Field(
        False, description="the ring around each seed (its cytoplasm), not the whole cell"
    )


Segmenter = Annotated[
    ThresholdSegmenter | ModelSegmenter | InstancesSegmenter | GrowSegmenter,
    Field(discriminator="kind"),
]

#: The segmenters that run a model (``segmenter.model`` names it).
MODEL_SEGMENTERS = (ModelSegmenter, InstancesSegmenter)


def threshold_of(seg: Any) -> ThresholdSegmenter | None:
    """A segmenter's threshold: its own, or the one a ``grow`` grows within."""
    return seg if isinstance(seg, ThresholdSegmenter) else getattr(seg, "within", None)


class Crf(_Strict):
    """Dense CRF on the mask, guided by the segmenter's (first) channel."""

    step: Literal["crf"] = "crf"
    iterations: int = Field(5, ge=1, le=50)
    spatial_sigma: float = Field(1.0, gt=0)
    bilateral_sigma: float = Field(8.0, gt=0)
    intensity_sigma: float = Field(
        0.1, gt=0, description="fraction of the plane's 1-99 % intensity range"
    )
    certainty: float = Field(0.8, gt=0.5, lt=1.0, description="probability given to the mask")


class FillHoles(_Strict):
    step: Literal["fill_holes"] = "fill_holes"


class RemoveSmall(_Strict):
    step: Literal["remove_small"] = "remove_small"
    min_size: int = Field(ge=1, description="objects with fewer pixels are removed")


class RemoveLarge(_Strict):
    step: Literal["remove_large"] = "remove_large"
    max_size: int = Field(ge=1, description="objects with more pixels are removed")


class RemoveBorder(_Strict):
    """Objects touching the image's edge in Y or X, which the field of view cuts (their size
    and shape are not theirs), are removed: CellProfiler's and ZEN's border exclusion."""

    step: Literal["remove_border"] = "remove_border"


class Opening(_Strict):
    step: Literal["opening"] = "opening"
    radius: Annotated[int, _within("radius", MAX_BALL_RADIUS)] = Field(1, ge=1)


class Closing(_Strict):
    step: Literal["closing"] = "closing"
    radius: Annotated[int, _within("radius", MAX_BALL_RADIUS)] = Field(1, ge=1)


class WatershedSplit(_Strict):
    """Touching objects split at the necks of the distance to the background, each object on
    its own (:func:`~scopeml.objects.split.split_each`, as ``objects label --split``): one seed
    per local maximum at least ``min_distance`` pixels apart, or, with ``h``, per maximum at
    least ``h`` pixels higher than the neck to its neighbour (fewer, surer splits;
    ``min_distance`` is then unused)."""

    step: Literal["watershed_split"] = "watershed_split"
    min_distance: Annotated[int, _within("min_distance", MAX_DISTANCE)] = Field(5, ge=1)
    h: float | None = Field(None, gt=0, allow_inf_nan=False)


PostStep = Annotated[
    Crf | FillHoles | RemoveSmall | RemoveLarge | RemoveBorder | Opening | Closing | WatershedSplit,
    Field(discriminator="step"),
]


class Measurements(_Strict):
    """What to measure: shape features (perimeter, convex hull, Feret) and intensities."""

    shape: bool = True
    intensity: Names | None = Field(
        None, description="channels whose intensities to measure; default all input channels"
    )


class ClassSettings(_Strict):
    """One class of objects: how to find it, clean it, measure it and classify it."""

    # at most 64 characters: file names are made of it (CLASS_intensity_mean_…_per_image.png)
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    parent: str | None = None
    segmenter: Segmenter
    post: list[PostStep] = Field(default_factory=list)
    measurements: Measurements = Field(default_factory=Measurements)
    classifier: str | None = Field(None, description="object classifier file (scopeml objects)")
    rules: Rules = Field(
        default_factory=dict, description="object classes by bounds on this class's measurements "
        "(mitotic: {area: {max: 150}, intensity_mean_DNA: {min: 500}}): an object's "
        "object_class is the first rule whose every bound it meets; a rule without bounds "
        "({}) takes every object left",
    )  # fmt: skip

    @field_validator("rules")
    @classmethod
    def _rules_in_order(cls, value: Rules) -> Rules:
        check_order(value)
        return value

    @field_validator("name")
    @classmethod
    def _name_not_missing(cls, value: str) -> str:
        return check_name(value)  # the tables' class column holds it

    @model_validator(mode="after")
    def _rules_or_classifier(self) -> ClassSettings:
        if self.rules and self.classifier is not None:
            raise ValueError(
                f"class {self.name!r} has both a classifier and rules: each writes the "
                "object_class column; keep one"
            )
        return self

    @model_validator(mode="after")
    def _grow_keeps_its_seeds_ids(self) -> ClassSettings:
        seg = self.segmenter
        if not isinstance(seg, GrowSegmenter):
            return self
        if any(isinstance(step, WatershedSplit) for step in self.post):
            raise ValueError(
                f"class {self.name!r}: watershed_split would renumber the cells grown from "
                f"{seg.seeds!r} (cell k is the cell of {seg.seeds} k); split the seeds instead"
            )
        if self.parent == seg.seeds:
            raise ValueError(
                f"class {self.name!r} grows from {seg.seeds!r}, which is also its parent: no "
                f"cell could leave its {seg.seeds}; give it {seg.seeds}'s parent, or none"
            )
        return self

    @model_validator(mode="after")
    def _per_parent_needs_a_parent(self) -> ClassSettings:
        threshold = threshold_of(self.segmenter)
        scope = "pooled" if threshold is None else threshold.scope
        if scope == "per_parent" and self.parent is None:
            raise ValueError(
                f"class {self.name!r}: 'scope: per_parent' thresholds each parent object on "
                "its own; a class without 'parent' has none (use pooled, the default)"
            )
        return self


class Outputs(_Strict):
    """Which results to write besides the per-class tables."""

    labels: bool = True
    ome_tiff: bool = Field(
        False, description="also write each class's labels as CLASS.ome.tif (for Fiji and "
        "other readers without OME-Zarr 0.5)",
    )  # fmt: skip
    parquet: bool = Field(True, description="also write Parquet tables when pyarrow is there")
    overview: bool = True
    summary: bool = Field(
        True,
        description="the summary's plots (PNG); tables/, summary/*.csv and index.html "
        "are written either way: scopeml info and counts_table() read them",
    )


#: A file-name pattern (``*`` and ``?`` as in the shell; with a ``/``, the path below the folder).
Pattern = Annotated[str, Field(min_length=1)]


class Inputs(_Strict):
    """Which files of the folders and patterns given are analysed (see
    :mod:`scopeml.analysis.inputs`); a file named is always analysed unless ``exclude`` matches.
    These keys choose files, not results: a resumed run may change them."""

    recursive: bool = Field(True, description="a folder's subfolders too")
    include: list[Pattern] = Field(
        default_factory=list, description="only files matching one of these (empty: all)"
    )
    exclude: list[Pattern] = Field(
        default_factory=list, description="files and subfolders matching one are left out"
    )
    skip_labels: bool = Field(
        True, description="leave out label images found in folders: names ending _labels, "
        "_label, _mask, _masks, and the label stores scopeml writes (counted in a warning)",
    )  # fmt: skip
    channel_files: dict[str, Pattern] = Field(
        default_factory=dict, description="fields saved one file per channel: channel name → "
        "the file-name pattern of its files ({DAPI: '*_w1.tif', GFP: '*_w2.tif'}); the files "
        "of one folder whose names agree on what * and ? stand for are one image, with these "
        "channels (empty: each file is an image)",
    )  # fmt: skip

    @field_validator("channel_files")
    @classmethod
    def _channel_patterns(cls, value: dict[str, str]) -> dict[str, str]:
        for channel, pattern in value.items():
            if not channel.strip():
                raise ValueError("a channel name is empty")
            if "/" in pattern or "\\" in pattern:
                raise ValueError(f"{channel}: {pattern!r}: the pattern of a file's name, "
                                 "without folders")  # fmt: skip
        wildcards = {channel: "".join(re.findall(r"[*?]", p)) for channel, p in value.items()}
        if len(set(wildcards.values())) > 1:  # the files of a field could never agree
            said = "; ".join(f"{c}: {w or 'none'}" for c, w in wildcards.items())
            raise ValueError(f"the patterns have other wildcards ({said}): a field's files "
                             "give each pattern's * and ? the same text, so each needs the "
                             "same ones in the same order")  # fmt: skip
        return value


def _names(image: str | os.PathLike[str], pattern: str) -> bool:
    """Whether an ``axes`` file-name ``pattern`` names ``image``: its name, or its path (the
    end of it where the pattern has a folder; ``*movies*`` names ``/data/movies/a.tif``)."""
    path = Path(image).as_posix()
    return fnmatch.fnmatchcase(Path(path).name, pattern) or fnmatch.fnmatchcase(
        path, f"*{pattern}" if "/" in pattern else pattern
    )


def name_regex(pattern: str, fields: bool = False) -> re.Pattern[str]:
    """A file or image name's pattern as a regular expression (case ignored): ``*`` any
    text and ``?`` one character, each a group, and with ``fields`` each ``{field}`` a named
    group of at least one character. Each wildcard takes the shortest text after which the
    pattern up to the next one follows (what a glob finds), in an atomic group, so a name
    that does not match is told in time linear in its length whatever the wildcards.

    >>> name_regex("*_w?_*.TIF").fullmatch("a_b_w1_c.tif").groups()
    ('a_b', '1', 'c')
    """
    parts = re.split(r"(\{[^{}]*\}|[*?])" if fields else r"([*?])", pattern)
    chunks = [""]  # each after the first starts with a wildcard of any length
    for index, part in enumerate(parts):
        if index % 2 == 0:
            chunks[-1] += re.escape(part)
        elif part == "?":
            chunks[-1] += "(.)"
        else:
            chunks.append("(.*?)" if part == "*" else f"(?P<{part[1:-1]}>.+?)")
    atomic = "".join(f"(?>{chunk})" for chunk in chunks[1:-1])
    return re.compile(chunks[0] + atomic + (chunks[-1] if len(chunks) > 1 else ""),
                      re.IGNORECASE | re.DOTALL)  # fmt: skip


def metadata_pattern(text: str) -> re.Pattern[str]:
    """The settings' ``metadata``, an image name's pattern, as a regular expression: each
    ``{field}`` a named group of at least one character, ``*`` any text, ``?`` one character,
    the rest as written (case ignored; :func:`name_regex`).

    >>> metadata_pattern("{well}_s{site}").fullmatch("B02_s3").groupdict()
    {'well': 'B02', 'site': '3'}
    """
    fields = re.findall(r"\{([^{}]*)\}", text)
    if not fields:
        raise ValueError(f"{text!r} has no {{field}}: name the parts of the names to keep")
    for name in fields:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", name):
            raise ValueError(f"{{{name}}}: a field is a name of letters, digits and _")
    if len(set(fields)) < len(fields):
        raise ValueError(f"{text!r} names a field twice")
    return name_regex(text, fields=True)


def check_file_axes(axes: str) -> str:
    """``axes`` for the files they apply to (TIFF files), checked before any image is read:
    :func:`~scopeml.io.axes.check_axes_text`'s checks, and Y just before X, where a TIFF's
    pages put them (each image would fail on its own otherwise).

    Examples
    --------
    >>> check_file_axes("tyx"), check_file_axes("YXC")
    ('TYX', 'YXC')
    >>> check_file_axes("XY")
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidRequestError: axes 'XY': Y comes just before X (a TIFF's pages are \
rows × columns); name the file's other axes around them, e.g. TYX
    """
    from scopeml.io.axes import check_axes_text

    letters = check_axes_text(axes)
    if "YX" not in letters:
        raise InvalidRequestError(
            f"axes {axes!r}: Y comes just before X (a TIFF's pages are rows × columns); name "
            "the file's other axes around them, e.g. TYX"
        )
    return letters


def scene_value(value: Any) -> Any:
    """A scene as the settings take it: a number from 0 (digits, ``"2"``, and ``2.0`` are
    one, as before names were taken), or a name (stripped), which each image resolves to its
    own number.

    Examples
    --------
    >>> scene_value(" A1-Pos3 "), scene_value("2"), scene_value(0)
    ('A1-Pos3', 2, 0)
    >>> scene_value(-1)
    Traceback (most recent call last):
    ValueError: a scene is its number (0 or more) or its name as scopeml info lists it; got -1
    """
    if isinstance(value, str):
        from scopeml.io.registry import scene_given  # the one parse of a scene given

        given = scene_given(value)
        if isinstance(given, int) or (given and not given.lstrip("-").isdigit()):
            return given
    elif value is None or isinstance(value, bool):
        return value  # true: 1, as before names were taken
    elif isinstance(value, int | float) and float(value).is_integer() and value >= 0:
        return int(value)
    raise ValueError(
        f"a scene is its number (0 or more) or its name as scopeml info lists it; got {value!r}"
    )


#: ``scene:``: a number, or a name each image resolves to its own number; ``None``: every scene.
Scene = Annotated[int | str | None, BeforeValidator(scene_value)]

#: ``pixel_size:`` in one form (:func:`~scopeml.pixel_size.pixel_size_value`): equal sizes
#: given as ``0.5``, ``"0.5"`` or ``{Z: 0.5, Y: 0.5, X: 0.5}`` are equal settings.
PixelSizeSetting = Annotated[float | dict[str, float] | None, BeforeValidator(pixel_size_value)]


class AnalysisSettings(_Strict):
    """A whole image analysis (``version: 1``)."""

    version: Literal[1] = VERSION
    channels: Names = Field(min_length=1)
    aliases: dict[str, Names] = Field(
        default_factory=dict, description="other names an input channel has in some files "
        "(DAPI: [Hoechst, H33342]): a file naming none of a channel's names is read by the "
        "first alias it has; results use the channel's name",
    )  # fmt: skip
    classes: list[ClassSettings] = Field(min_length=1)
    outputs: Outputs = Field(default_factory=Outputs)
    inputs: Inputs = Field(default_factory=Inputs)
    tile_size: int = Field(1024, ge=16, description="tile size of the tiled stages")
    axes: str | dict[str, str] | None = Field(
        None, description="the image files' axes, one letter of T,C,Z,Y,X per axis of the "
        "file in its order (TYX: a plain multi-page TIFF is a time-lapse, read as Z "
        "otherwise; TIFF only); or {file-name pattern: axes} for some of the images",
    )  # fmt: skip
    scene: Scene = Field(
        None, description="analyse only this scene of each image: its number (from 0, as in "
        "the file), or its name as scopeml info lists it (A1-Pos3: each file's scene of that "
        "name); without: every scene, also of different sizes, each on its own",
    )  # fmt: skip
    pixel_size: PixelSizeSetting = Field(
        None, description="micrometres per pixel for images whose file records none (plain "
        "TIFFs, PNGs): one number for every axis, or Y,X, or Z,Y,X for Z stacks with another "
        "Z step (also a list, or {X: .., Y: .., Z: ..}); a file's own size is kept (a warning "
        "where it differs), Z is used only in Z stacks",
    )  # fmt: skip
    memory_mb: int = Field(
        512, ge=0, description="a plane whose stages fit this many MB runs in memory; "
        "larger planes run tile by tile (out of core, the same results)",
    )  # fmt: skip
    metadata: str | None = Field(
        None, max_length=500, description="the image's name as a pattern with {fields} "
        "(* for any text, ? for one character): each field a column metadata_FIELD of every table "
        "({well}__*_s{site}: A01__Plate_A01_s2 is well A01, site 2)",
    )  # fmt: skip

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, value: str | None) -> str | None:
        if value is not None:
            metadata_pattern(value)  # a ValueError saying what is wrong
        return value

    def metadata_of(self, name: str) -> dict[str, str] | None:
        """The ``metadata`` columns of the image named ``name`` (``metadata_well`` …), their
        values from its name; ``{}`` without ``metadata``; ``None`` where the name does not
        match it (its columns are then empty).

        Examples
        --------
        >>> blob = {"name": "b", "segmenter": {"kind": "threshold", "channel": "a"}}
        >>> s = parse_settings({"version": 1, "channels": ["a"], "classes": [blob],
        ...                     "metadata": "{well}__*_s{site}"})
        >>> s.metadata_of("A01__Plate_A01_s2"), s.metadata_of("other")
        ({'metadata_well': 'A01', 'metadata_site': '2'}, None)
        """
        if self.metadata is None:
            return {}
        match = metadata_pattern(self.metadata).fullmatch(name)
        if match is None:
            return None
        return {f"metadata_{key}": value for key, value in match.groupdict().items()}

    def metadata_row(self, name: str) -> dict[str, str]:
        """:meth:`metadata_of`, with empty values where the name does not match."""
        found = self.metadata_of(name)
        return found if found is not None else dict.fromkeys(self.metadata_columns(), "")

    def metadata_columns(self) -> list[str]:
        """The ``metadata_FIELD`` columns the settings' ``metadata`` adds, in its order."""
        fields = metadata_pattern(self.metadata).groupindex if self.metadata else {}
        return [f"metadata_{key}" for key in fields]

    @field_validator("axes")
    @classmethod
    def _check_axes(cls, value: str | dict[str, str] | None) -> str | dict[str, str] | None:
        try:
            if isinstance(value, dict):
                return {pattern: check_file_axes(axes) for pattern, axes in value.items()}
            return None if value is None else check_file_axes(value)
        except InvalidRequestError as err:
            raise ValueError(err.problem) from None

    def channels_of(self, names: Sequence[str]) -> list[int | str] | None:
        """The image's channels (of ``names``, as it has them) that are the input channels,
        in the settings' order: by name, or, in a file that names none of its channels (read
        as ``C0``, ``C1``…) and has as many as the settings, by position (so a batch mixing
        files that name their channels with files that do not shares one settings file);
        ``None`` where the image lacks one.

        Examples
        --------
        >>> blob = {"name": "b", "segmenter": {"kind": "threshold", "channel": "DAPI"}}
        >>> s = parse_settings({"version": 1, "channels": ["DAPI"], "classes": [blob]})
        >>> s.channels_of(["GFP", "DAPI"]), s.channels_of(["C0"]), s.channels_of(["C0", "C1"])
        (['DAPI'], [0], None)
        >>> s.model_copy(update={"aliases": {"DAPI": ["Hoechst"]}}).channels_of(["Hoechst"])
        ['Hoechst']
        """
        names = [str(name) for name in names]
        found = [self.name_in(channel, names) for channel in self.channels]
        if None not in found:
            return found
        unnamed = names_tell_nothing(names)
        by_alias = any(f not in (None, c) for f, c in zip(found, self.channels, strict=True))
        in_order = unnamed and len(names) == len(self.channels) and not by_alias
        return list(range(len(names))) if in_order else None

    def name_in(self, channel: str, names: Sequence[str]) -> str | None:
        """The name ``channel`` has among ``names`` (a file's channels): its own, else its
        first alias there; ``None``: neither."""
        return next((n for n in (channel, *self.aliases.get(channel, ())) if n in names), None)

    def missing_channel(self, names: Sequence[str]) -> str | None:
        """The first input channel that ``names`` (a file's channels) lack by name and alias
        and that a read in order does not supply (:meth:`channels_of`); ``None``: none."""
        if self.channels_of(names) is not None:
            return None
        return next(c for c in self.channels if self.name_in(c, [str(n) for n in names]) is None)

    def channel_problem(self, names: Sequence[str], image: str) -> str | None:
        """Why ``image``, with channels ``names``, lacks an input channel, in one line (the
        channel counts where it names none of its channels: read in order only when they
        match); ``None``: it lacks none.

        >>> blob = {"name": "b", "segmenter": {"kind": "threshold", "channel": "DAPI"}}
        >>> s = parse_settings({"version": 1, "channels": ["DAPI", "GFP"], "classes": [blob]})
        >>> s.channel_problem(["C0"], "a.tif")
        'the settings have 2 channels (DAPI, GFP); a.tif has 1 and names none (C0): too few \
(pages that are channels: read it with axes: CYX)'
        >>> s.channel_problem(["C0", "C1", "C2"], "a.tif")
        'the settings have 2 channels (DAPI, GFP); a.tif has 3 and names none (C0, C1, C2): \
unnamed channels are read in order only when the counts match; say which is which with \
aliases, such as {DAPI: [C0], GFP: [C1]}'
        """
        missing = self.missing_channel(names)
        if missing is None:
            return None
        names = [str(name) for name in names]
        if names_tell_nothing(names) and len(names) != len(self.channels):
            plural = "s" * (len(self.channels) != 1)
            counts = (
                f"the settings have {len(self.channels)} channel{plural} "
                f"({', '.join(self.channels)}); {image} has {len(names)} and names none "
                f"({', '.join(names)})"
            )
            if len(names) < len(self.channels):
                pages = " (pages that are channels: read it with axes: CYX)"  # not of a colour one
                return f"{counts}: too few{'' if names == ['R', 'G', 'B'] else pages}"
            mapping = ", ".join(f"{c}: [{n}]" for c, n in zip(self.channels, names, strict=False))
            return (
                f"{counts}: unnamed channels are read in order only when the counts match; say "
                f"which is which with aliases, such as {{{mapping}}}"
            )
        return f"channel {missing!r} is not in {image} (it has {', '.join(names)}); " + alias_hint(
            missing
        )

    def axes_of(self, image: str | os.PathLike[str]) -> str | None:
        """The axes ``axes`` gives for ``image``: one for all (the TIFF files: other formats
        name their own), or that of the pattern that is the image's own name, else of the
        first pattern matching its name or path (``{"*.tif": TYX, "nuclei.tif": ZYX}`` read
        ``nuclei.tif``, a stack, as a movie by the first); ``None``: as the file says (see
        :func:`scopeml.io.open_image`).

        Examples
        --------
        >>> blob = {"name": "b", "segmenter": {"kind": "threshold", "channel": "a"}}
        >>> s = parse_settings({"version": 1, "channels": ["a"], "classes": [blob],
        ...                     "axes": {"*_t.tif": "tyx"}})
        >>> s.axes_of("/data/x_t.tif"), s.axes_of("/data/x.tif")
        ('TYX', None)
        >>> s = s.model_copy(update={"axes": "TYX"})
        >>> s.axes_of("/data/x.tif"), s.axes_of("/data/x.ome.zarr")
        ('TYX', None)
        """
        from scopeml.io.registry import input_files, takes_axes

        image = input_files(image)[0]  # a field of channel files: its files are of one kind
        if not isinstance(self.axes, dict):
            return self.axes if self.axes is not None and takes_axes(image) else None
        given = {p: axes for p, axes in self.axes.items() if _names(image, p)}
        return given.get(Path(image).name, next(iter(given.values()), None))

    def unused_axes(self, images: Sequence[str | os.PathLike[str]]) -> list[str]:
        """The ``axes`` patterns naming none of ``images`` (a typo: its files read as they
        say)."""
        if not isinstance(self.axes, dict):
            return []
        return [p for p in self.axes if not any(_names(image, p) for image in images)]

    def pixel_sizes(self) -> dict[str, float] | None:
        """``pixel_size`` by axis (one number: Z, Y and X), or ``None`` where not given.

        Examples
        --------
        >>> blob = {"name": "b", "segmenter": {"kind": "threshold", "channel": "a"}}
        >>> parse_settings({"version": 1, "channels": ["a"], "classes": [blob],
        ...                 "pixel_size": "0.3,0.2"}).pixel_sizes()
        {'Y': 0.3, 'X': 0.2}
        """
        return None if self.pixel_size is None else parse_pixel_size(self.pixel_size)

    @model_validator(mode="before")
    @classmethod
    def _few_classes(cls, data: Any) -> Any:
        """Refuse more than :data:`MAX_CLASSES` classes before any is validated."""
        classes = data.get("classes") if isinstance(data, dict) else None
        if isinstance(classes, list) and len(classes) > MAX_CLASSES:
            raise _TreeError(f"{len(classes)} classes; one analysis has at most {MAX_CLASSES} "
                             "(each is a segmentation, a table and a label store per image)",
                             ("classes",))  # fmt: skip
        return data

    @model_validator(mode="before")
    @classmethod
    def _model_channels(cls, data: Any) -> Any:
        """A model's ``channels`` default to the settings' (one channel: the one there is)."""
        if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
            return data
        classes = []
        for entry in data["classes"]:
            seg = entry.get("segmenter") if isinstance(entry, dict) else None
            if (
                isinstance(seg, dict)
                and seg.get("kind") in ("model", "instances")
                and "channels" not in seg
                and isinstance(data.get("channels"), list | str)  # str: one name (Names)
            ):
                entry = {**entry, "segmenter": {**seg, "channels": data["channels"]}}
            classes.append(entry)
        return {**data, "classes": classes}

    @model_validator(mode="after")
    def _check_tree(self) -> AnalysisSettings:
        from scopeml.errors import did_you_mean

        names = [c.name for c in self.classes]
        self._check_class_names()
        for index, cls in enumerate(self.classes):
            for key, name in _dependencies(cls):
                if name not in names:
                    loc = key.split(".")
                    raise _TreeError(
                        f"{loc[-1]} {name!r} is not a class (classes: {', '.join(names)})"
                        f"{did_you_mean(name, names)}", ("classes", index, *loc),
                    )  # fmt: skip
        self._check_cycles()
        known = set(self.channels)
        self._check_aliases()
        self._check_channel_files()
        for index, cls in enumerate(self.classes):
            used = _channels_of(cls)
            for key, channel in used:
                if channel not in known:
                    raise _TreeError(
                        f"channel {channel!r} is not an input channel ({', '.join(self.channels)})",
                        ("classes", index, *key),
                    )
        self._check_measured_names()
        self._check_rule_columns()
        return self

    def _check_rule_columns(self) -> None:
        """Refuse a rule naming a column its class's table will not have (a typo, a channel
        the class does not measure): every image's table would fail, one by one."""
        from scopeml.analysis.rules import unknown_column

        for index, cls in enumerate(self.classes):
            if found := unknown_column(self, cls):
                rule, column, why = found
                raise _TreeError(f"rule {rule!r}: {why}", ("classes", index, "rules", rule, column))

    def _check_cycles(self) -> None:
        """Refuse a class that is its own ancestor, or grows from its own objects (through
        its parents' and seeds' classes)."""
        needs = {c.name: depends_on(c) for c in self.classes}
        for index, cls in enumerate(self.classes):
            for key, first in _dependencies(cls):
                path = _path_between(needs, first, cls.name)
                if path == [cls.name] and key == "segmenter.seeds":
                    raise _TreeError(f"class {cls.name!r} cannot grow from its own objects; "
                                     "seeds names the class it grows from (nuclei, for cells)",
                                     ("classes", index, "segmenter", "seeds"))  # fmt: skip
                if path is not None:
                    raise _TreeError(f"the class tree has a cycle: {' → '.join([cls.name, *path])}",
                                     ("classes", index, *key.split(".")))  # fmt: skip

    def _check_aliases(self) -> None:
        """Refuse an alias of no input channel, and a name that would read one file channel
        as two input channels (listed twice in ``channels``, or an alias that is another
        channel's name or alias): said as such, not as a channel measured twice."""
        from scopeml.errors import did_you_mean

        for index, channel in enumerate(self.channels):
            if channel in self.channels[:index]:
                raise _TreeError(f"channel {channel!r} is listed twice", ("channels", index))
        owner = {channel: channel for channel in self.channels}
        for channel, names in self.aliases.items():
            if channel not in self.channels:
                raise _TreeError(
                    f"{channel!r} is not an input channel ({', '.join(self.channels)})"
                    f"{did_you_mean(channel, self.channels)}", ("aliases", channel),
                )  # fmt: skip
            for index, name in enumerate(names):
                if name in self.channels or owner.setdefault(name, channel) != channel:
                    taken = "an input channel" if name in self.channels else (
                        f"an alias of {owner[name]!r}")  # fmt: skip
                    raise _TreeError(f"{name!r} is already {taken}", ("aliases", channel, index))

    def _check_channel_files(self) -> None:
        """Refuse ``channel_files`` that do not name every input channel (by its name or an
        alias), or that name a channel no input is (a field would need its file too)."""
        from scopeml.errors import did_you_mean

        keys = list(self.inputs.channel_files)
        if not keys:
            return
        for key in keys:
            if not any(key in (c, *self.aliases.get(c, ())) for c in self.channels):
                raise _TreeError(
                    f"{key!r} is not an input channel ({', '.join(self.channels)}) nor an "
                    "alias of one (aliases:), and a field would need its file too"
                    f"{did_you_mean(key, self.channels)}",
                    ("inputs", "channel_files", key),
                )
        for index, channel in enumerate(self.channels):
            named = [key for key in keys if key in (channel, *self.aliases.get(channel, ()))]
            if len(named) > 1:
                said = f"channel {channel!r} has {len(named)} channel_files patterns"
                raise _TreeError(f"{said} ({', '.join(named)}); give it one", ("channels", index))
            if self.name_in(channel, keys) is None:
                raise _TreeError(
                    f"channel {channel!r} has no channel_files pattern (it names "
                    f"{', '.join(keys)}){did_you_mean(channel, keys)}", ("channels", index),
                )  # fmt: skip

    def _check_class_names(self) -> None:
        """Refuse class names that would make two results one file, or a file Windows refuses
        (they name ``CLASS.csv``, ``CLASS.ome.zarr``, ``tables/CLASS.csv``, ``summary/CLASS_*``
        and, while an image is analysed, a folder ``CLASS/``)."""
        names = [c.name for c in self.classes]
        for index, name in enumerate(names):
            if is_device_name(name):
                raise _TreeError(
                    f"class name {name!r} is a device name on Windows: its result files "
                    f"({name}.csv, {name}.ome.zarr) cannot be made there; choose another",
                    ("classes", index, "name"),
                )
        clash = same_file_name(names)
        if clash is not None:
            first, second = clash
            a, b = names[first], names[second]
            raise _TreeError(
                f"duplicate class name {b!r}" if a == b
                else f"class names {a!r} (classes[{first}]) and {b!r} {_clash_reason(a, b)}; "
                "rename one",
                ("classes", second, "name"),
            )  # fmt: skip

    def _check_measured_names(self) -> None:
        """Refuse measured channels of a class that would make one summary plot file
        (``summary/CLASS_intensity_mean_CHANNEL.png``) out of two, as class names above."""
        for index, cls in enumerate(self.classes):
            given = cls.measurements.intensity
            measured = self.channels if given is None else given
            clash = same_file_name(measured, part=True)  # plots: CLASS_…_CHANNEL.png
            if clash is None:
                continue
            first, second = clash
            a, b = measured[first], measured[second]
            if given is None:
                loc: tuple[Any, ...] = ("channels", second)
                fix = f"list the channels to measure in classes[{index}].measurements.intensity"
            else:
                loc, fix = ("classes", index, "measurements", "intensity", second), "measure one"
            plot = f"{cls.name}_intensity_mean_{file_name_part(a)}.png"
            if a == b:
                problem = f"channel {b!r} is measured twice in class {cls.name!r}"
            elif file_name_part(a) == file_name_part(b):
                problem = (
                    f"class {cls.name!r} measures channels {a!r} and {b!r}, whose summary plots "
                    f"would be one file ({plot}: a file name has _ for other characters than "
                    f"letters, digits, _ - .); {fix}"
                )
            else:
                problem = (
                    f"class {cls.name!r} measures channels {a!r} and {b!r}, which differ only "
                    f"in case: their summary plots ({plot}, …_{file_name_part(b)}.png) are one "
                    f"file on macOS and Windows; {fix}"
                )
            raise _TreeError(problem, loc)

    def ordered(self) -> list[ClassSettings]:
        """The classes with every parent before its children, and a ``grow`` class's seeds
        before it."""
        done: list[ClassSettings] = []
        names: set[str] = set()
        todo = list(self.classes)
        while todo:
            for cls in todo:
                if set(depends_on(cls)) <= names:
                    done.append(cls)
                    names.add(cls.name)
                    todo.remove(cls)
                    break
        return done

    def children(self, name: str | None) -> list[ClassSettings]:
        """The classes whose parent is ``name`` (``None``: the roots)."""
        return [c for c in self.classes if c.parent == name]


def _dependencies(cls: ClassSettings) -> list[tuple[str, str]]:
    """The classes ``cls`` is segmented after, by the key naming them: its ``parent`` and a
    ``grow`` segmenter's ``segmenter.seeds``."""
    found = [] if cls.parent is None else [("parent", cls.parent)]
    if isinstance(cls.segmenter, GrowSegmenter):
        found.append(("segmenter.seeds", cls.segmenter.seeds))
    return found


def _path_between(needs: Mapping[str, list[str]], start: str, goal: str) -> list[str] | None:
    """Classes from ``start`` to ``goal`` (both included), each needing the next; ``None``."""
    paths, seen = [[start]], set()
    while paths:
        path = paths.pop()
        if path[-1] == goal:
            return path
        if path[-1] not in seen:
            seen.add(path[-1])
            paths += [[*path, name] for name in needs[path[-1]]]
    return None


def depends_on(cls: ClassSettings) -> list[str]:
    """The classes segmented before ``cls``: it needs their objects."""
    return [name for _, name in _dependencies(cls)]


def _clash_reason(a: str, b: str) -> str:
    """Why class names ``a`` and ``b`` (not equal, one :func:`file_name_key`) are one name."""
    if file_name_key(a, part=True) == file_name_key(b, part=True):
        return (
            f"differ only in case: their result files ({a}.csv, {b}.csv) are one file on "
            "macOS and Windows"
        )
    return (
        f"are one name on Windows, which ignores case and drops a name's trailing dots: "
        f"the folders they get while an image is analysed ({a}/, {b}/) are one folder there"
    )


def _channels_of(cls: ClassSettings) -> list[tuple[tuple[Any, ...], str]]:
    seg = cls.segmenter
    found: list[tuple[tuple[Any, ...], str]] = []
    if isinstance(seg, ThresholdSegmenter):
        found.append((("segmenter", "channel"), seg.channel))
    elif isinstance(seg, GrowSegmenter):
        if seg.within is not None:
            found.append((("segmenter", "within", "channel"), seg.within.channel))
    else:
        found += [(("segmenter", "channels", i), c) for i, c in enumerate(seg.channels)]
    for i, c in enumerate(cls.measurements.intensity or ()):
        found.append((("measurements", "intensity", i), c))
    return found


#: Names Windows keeps for devices, with any extension (``NUL.csv`` is the device too); the
#: ports also with the superscript digits Windows 11 lists (``COM¹``), and the console's own.
_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
     *(f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3")]
)  # fmt: skip


def windows_name(name: str) -> str:
    """``name`` as Windows makes it a file's or folder's name: without the trailing dots and
    spaces it drops (``a.`` and ``a `` are ``a`` there, one file with ``a``).

    Examples
    --------
    >>> windows_name("a. ."), windows_name("a.b"), windows_name(" a")
    ('a', 'a.b', ' a')
    """
    return name.rstrip(". ")


def is_device_name(name: str) -> bool:
    """Whether Windows keeps ``name`` for a device, with any extension: no file or folder
    there can have it (a class's result files, an image's result folder). As Windows, it
    drops trailing dots and spaces first, and spaces before the extension (``CON .tif``).

    Examples
    --------
    >>> is_device_name("CON"), is_device_name("nul.csv"), is_device_name("console")
    (True, True, False)
    >>> is_device_name("CON .tif"), is_device_name("con."), is_device_name("com\u00b9")
    (True, True, True)
    """
    return windows_name(name).split(".")[0].rstrip(" ").upper() in _WINDOWS_DEVICES


def file_name_part(name: str) -> str:
    """``name`` (a channel's, from an image's metadata: untrusted) as it goes into a result
    file's name: in Unicode's composed form (NFC), every character other than a letter, a
    digit, ``_``, ``-`` or ``.`` made ``_``, so no name reaches another folder (``/``, ``\\``)
    or holds a character Windows refuses.

    Examples
    --------
    >>> file_name_part("GFP/RFP"), file_name_part("../../x"), file_name_part("Alexa 488")
    ('GFP_RFP', '.._.._x', 'Alexa_488')
    """
    return "".join(
        c if c.isalnum() or c in "_-." else "_" for c in unicodedata.normalize("NFC", name)
    )


def file_name_key(name: str, *, part: bool = False) -> str:
    """What ``name`` is as a file name where case is ignored (macOS, Windows): two names with
    one key make one file (:func:`file_name_part`, case folded, in composed form). A whole
    name (a folder's, ``CLASS`` of ``CLASS/``) is taken as Windows takes it
    (:func:`windows_name`); a ``part`` followed by more of the name (a channel in a plot's
    ``CLASS_intensity_mean_CHANNEL.png``) keeps its trailing dots.

    Examples
    --------
    >>> file_name_key("Nuclei") == file_name_key("nuclei") == file_name_key("NUCLEI")
    True
    >>> file_name_key("x.") == file_name_key("x"), file_name_key("x.", part=True)
    (True, 'x.')
    """
    whole = name if part else windows_name(name)
    return unicodedata.normalize("NFC", file_name_part(whole).casefold())


def same_file_name(names: Sequence[str], *, part: bool = False) -> tuple[int, int] | None:
    """The indices of the first two of ``names`` that would name one file (as
    :func:`file_name_key`, ``part`` as there) on a file system that ignores case (macOS and
    Windows by default; macOS also Unicode normalisation; Windows also trailing dots and
    spaces), or ``None``. Equal names count as such a pair too.

    Examples
    --------
    >>> same_file_name(["Nuclei", "cells", "nuclei"]), same_file_name(["a", "b"])
    ((0, 2), None)
    >>> same_file_name(["caf\u00e9", "CAFE\u0301"])  # é precomposed, e + combining acute
    (0, 1)
    >>> same_file_name(["x", "x."]), same_file_name(["x", "x."], part=True)
    ((0, 1), None)
    """
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        key = file_name_key(name, part=part)
        if key in seen:
            return seen[key], index
        seen[key] = index
    return None


def alias_hint(channel: str) -> str:
    """What a file that calls an input channel otherwise needs, in a missing channel's error."""
    return f"if the file calls it otherwise, add aliases: {{{channel}: [ITS NAME]}} to the settings"


class _TreeError(ValueError):
    """A whole-settings check that knows the key at fault."""

    def __init__(self, message: str, loc: tuple[Any, ...]) -> None:
        super().__init__(message)
        self.loc = loc


# ---------------------------------------------------------------- reading and writing YAML


def load_settings(path: str | os.PathLike[str]) -> AnalysisSettings:
    """Read and validate a settings file.

    Raises
    ------
    InvalidSettingsError
        With the file, the line and the key at fault (``line 7: classes[0].post[1].radius: …``).
    """
    path = Path(path)
    if path.is_dir():  # the settings and the images given the other way round, say
        raise InvalidSettingsError(
            "is a folder, not a settings file (the settings file comes first: analyze "
            "SETTINGS IMAGES…)",
            path=path,
        )
    if not path.is_file():
        raise InputNotFoundError("no such file", path=path)
    if _is_image_file(path):  # "not valid YAML: unacceptable character #x0000" said less
        raise InvalidSettingsError(
            "is an image, not a settings file (the settings file comes first: analyze "
            "SETTINGS IMAGES…)",
            path=path,
        )
    if path.stat().st_size > MAX_SETTINGS_BYTES:
        raise InvalidSettingsError(f"larger than {MAX_SETTINGS_BYTES} bytes", path=path)
    return parse_settings(path.read_text(encoding="utf-8", errors="replace"), path=path)


def _is_image_file(path: Path) -> bool:
    """Whether ``path`` is named as an image scopeml or a bioio plugin reads."""
    from scopeml.io.bioio import plugin_for
    from scopeml.io.registry import IMAGE_SUFFIXES

    return path.name.lower().endswith(IMAGE_SUFFIXES) or plugin_for(path) is not None


def _listed(data: Any) -> str:
    """What to do with a file that holds a list of classes (a snippet of ``classes:``)."""
    if isinstance(data, list) and data and all(isinstance(d, dict) and "name" in d for d in data):
        return (
            f"; this is a list of {len(data)} class{'es' if len(data) > 1 else ''}: put it under "
            "classes:, after version: 1 and channels: [...] (scopeml analyze init FILE writes "
            "a whole example)"
        )
    return ""


def parse_settings(
    text: str | Mapping[str, Any], *, path: str | os.PathLike[str] | None = None
) -> AnalysisSettings:
    """Validate settings given as YAML text (``path`` names it in errors), or as the mapping
    such a file holds (a ``dict``: errors then name the key, ``classes[0].segmenter.model``).

    Examples
    --------
    >>> blob = {"name": "blob", "segmenter": {"kind": "threshold", "channel": "a"}}
    >>> parse_settings({"version": 1, "channels": ["a"], "classes": [blob]}).channels
    ['a']
    >>> blob["segmenter"]["chanel"] = "a"
    >>> parse_settings({"version": 1, "channels": ["a"], "classes": [blob]})
    Traceback (most recent call last):
    ...
    scopeml.analysis.settings.InvalidSettingsError: <settings>: classes[0].segmenter.chanel: \
unknown key 'chanel' (did you mean 'channel'?)
    >>> parse_settings("version: 1\\nchannels: [a]\\nclasses: []\\nouputs: {}\\n", path="s.yaml")
    Traceback (most recent call last):
    ...
    scopeml.analysis.settings.InvalidSettingsError: s.yaml: line 4: ouputs: unknown key 'ouputs' ...
    """
    name = str(path) if path is not None else "<settings>"
    if isinstance(text, Mapping):
        return _parse_mapping(text, name)
    if not isinstance(text, str):
        raise InvalidSettingsError(
            f"settings are YAML text, a mapping (dict) or AnalysisSettings; got "
            f"{type(text).__name__}",
            path=name,
        )
    if len(text) > MAX_SETTINGS_BYTES:
        raise InvalidSettingsError(f"larger than {MAX_SETTINGS_BYTES} bytes", path=name)
    try:  # no aliases (a few can expand exponentially), no nesting past Python's recursion
        root, data = safe_yaml.compose(text), safe_yaml.load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = (getattr(err, "problem", None) or str(err)).splitlines()[0]  # not its "in …"
        invalid = "" if isinstance(err, safe_yaml.Refused) else "not valid YAML: "
        raise InvalidSettingsError(f"{line}{invalid}{problem}", path=name) from err
    if not isinstance(data, dict):
        raise InvalidSettingsError(f"line 1: expected a mapping of settings{_listed(data)}",
                                   path=name)  # fmt: skip
    version = data.get("version")
    if "version" not in data:
        wrapped = "settings" in data  # {"settings": "..."}: JSON around the file, not the file
        raise InvalidSettingsError(
            f"line 1: no version: key (a settings file starts with version: {VERSION})"
            + ("; send the settings file itself, not JSON around it" if wrapped else ""),
            path=name,
        )
    if version != VERSION:
        line = _line(root, ("version",))
        hint = f"; write the number, unquoted: version: {VERSION}"  # "1": the number, quoted
        raise InvalidSettingsError(
            f"line {line}: version: {version!r} is not a settings version this scopeml reads "
            f"(it reads {VERSION}){hint if version == str(VERSION) else ''}",
            path=name,
        )
    try:
        return AnalysisSettings.model_validate(data)
    except ValidationError as err:
        errors = err.errors()
        # an unknown key first: a misspelt key also makes the key meant "missing"
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc, message = _said(first)
        line, shown = _locate(root, loc)
        raise InvalidSettingsError(
            f"line {line}: {_dotted(shown) or '(top)'}: {message}", path=name
        ) from None


def _said(error: Mapping[str, Any]) -> tuple[tuple[Any, ...], str]:
    """Where a pydantic ``error`` lies and what it says in a user's words."""
    loc = tuple(error["loc"])
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _TreeError):
        return cause.loc, str(cause)
    if error["type"] == "extra_forbidden":
        return loc, _unknown_key(loc)
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
        return loc, _tag_problem(error["ctx"])
    if error["type"] == "string_pattern_mismatch":  # a class name: no raw regex
        return loc, (f"{error['input']!r}: a name is ASCII letters (A-Z, a-z), "
                     "digits, _, . and - (first a letter, digit or _), as it names files and "
                     "table columns")  # fmt: skip
    return loc, error["msg"].removeprefix("Value error, ")


class _PlainDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` writing each use of a shared value in full (no ``&anchor``)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _parse_mapping(data: Mapping[str, Any], name: str) -> AnalysisSettings:
    """Settings given as a mapping, checked as the same settings in a file are, with errors
    naming the key (there are no lines); the mapping is the file's content, as YAML."""
    try:  # a dict used twice is written twice: an alias would be refused as a file's is
        text = yaml.dump(dict(data), Dumper=_PlainDumper, sort_keys=False, allow_unicode=True)
    except (yaml.YAMLError, RecursionError) as err:
        said = "a dict or list that holds itself" if isinstance(err, RecursionError) else err
        raise InvalidSettingsError(
            f"settings hold a value that is not plain data (numbers, text, lists, dicts): {said}",
            path=name,
        ) from None
    try:
        return parse_settings(text, path=name)
    except InvalidSettingsError as err:  # a line of the text made here means nothing
        problem = err.problem.split(": ", 1)[1] if err.problem.startswith("line ") else err.problem
        raise InvalidSettingsError(problem, path=name) from None


def dump_settings(settings: AnalysisSettings) -> str:
    """The settings as YAML text (what :func:`load_settings` reads back as equal settings)."""
    data = settings.model_dump(mode="json", by_alias=True, exclude_defaults=False)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def save_settings(settings: AnalysisSettings, path: str | os.PathLike[str]) -> Path:
    """Write the settings as YAML, atomically."""
    from scopeml.io.replace import write_atomically

    return write_atomically(path, dump_settings(settings))


def _tag_problem(ctx: Mapping[str, Any]) -> str:
    """A tagged union's missing or unknown tag, said with the tags there are (pydantic says
    "Unable to extract tag using discriminator 'kind'").

    Examples
    --------
    >>> _tag_problem({"discriminator": "'kind'"})
    'no kind: key; give one of threshold, model, instances, grow'
    >>> _tag_problem({"discriminator": "'kind'", "tag": "modle"})
    "kind: 'modle' is not one of threshold, model, instances, grow (did you mean 'model'?)"
    """
    from scopeml.errors import did_you_mean

    key = str(ctx.get("discriminator", "")).strip("'")
    tags = _TAGGED.get(key, ())
    if "tag" not in ctx:
        return f"no {key}: key; give one of {', '.join(tags)}"
    tag = str(ctx["tag"])
    return f"{key}: {tag!r} is not one of {', '.join(tags)}{did_you_mean(tag, tags, n=1)}"


def _unknown_key(loc: Sequence[Any]) -> str:
    """``unknown key 'minsize' (did you mean 'min_size'?)`` for the key at the end of ``loc``.

    Examples
    --------
    >>> _unknown_key(("classes", 0, "post", 1, "remove_small", "minsize"))
    "unknown key 'minsize' (did you mean 'min_size'?)"
    >>> _unknown_key(("classes", 0, "post", 0, "watershed_split", "foo"))
    "unknown key 'foo' (the keys here: h, min_distance, step)"
    """
    from scopeml.errors import did_you_mean

    keys = _keys_at(loc[:-1])
    hint = did_you_mean(str(loc[-1]), keys, n=1)
    if not hint and 0 < len(keys) <= 12:  # no near miss: what may be written here
        hint = f" (the keys here: {', '.join(keys)})"
    return f"unknown key {loc[-1]!r}{hint}"


def _keys_at(loc: Sequence[Any]) -> list[str]:
    """The keys the settings schema takes at ``loc`` (a pydantic error location: list indices
    and a tagged union's tag, such as ``remove_small``, are steps too)."""
    models: list[type[BaseModel]] = [AnalysisSettings]
    for part in loc:
        if isinstance(part, int):
            continue
        tagged = [m for m in models if part in (_tag(m),)]
        if tagged:
            models = tagged
            continue
        fields = [_field(m, str(part)) for m in models]
        models = [m for f in fields if f is not None for m in _models_in(f.annotation)]
    return sorted({f.alias or name for m in models for name, f in m.model_fields.items()})


def _tag(model: type[BaseModel]) -> str | None:
    for key in ("kind", "step"):
        if key in model.model_fields:
            return model.model_fields[key].default
    return None


def _field(model: type[BaseModel], key: str) -> Any:
    return next((f for name, f in model.model_fields.items() if key in (name, f.alias)), None)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside a type (through lists, unions and ``Annotated``)."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _dotted(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line(root: yaml.Node | None, loc: Sequence[Any]) -> int:
    """The 1-based line of the deepest YAML node on ``loc`` (a pydantic error location).

    Parts that are not in the document (a union's tag such as ``threshold``) are skipped.
    """
    return _locate(root, loc)[0]


def _is_tag(node: yaml.MappingNode, part: Any, after: Sequence[Any]) -> bool:
    """Whether ``part`` of an error's location is the union member pydantic names (the
    ``kind`` of a segmenter, the ``step`` of a post step written in ``node``), not a key: a
    ``kind: model`` segmenter has a ``model:`` key too, which is meant when nothing follows
    or what follows is no key of the node."""
    keys = {getattr(key, "value", None): getattr(value, "value", None) for key, value in node.value}
    if part not in _TAGS or part not in (keys.get("kind"), keys.get("step")):
        return False
    return part not in keys or (bool(after) and str(after[0]) in keys)


def _locate(root: yaml.Node | None, loc: Sequence[Any]) -> tuple[int, tuple[Any, ...]]:
    """The line of the deepest node on ``loc`` and the location without the parts skipped."""
    node = root
    line = 1 if root is None else root.start_mark.line + 1
    kept: list[Any] = []
    for i, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode) and _is_tag(node, part, loc[i + 1 : i + 2]):
            continue  # the union member pydantic names, not a key (kind: model has a model:)
        if isinstance(node, yaml.MappingNode):
            match = next(
                ((k, v) for k, v in node.value if getattr(k, "value", None) == str(part)), None
            )
            if match is None:
                if i == len(loc) - 1 and part not in _TAGS:  # a missing key: name it
                    kept.append(part)
                continue
            key, node = match
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            kept += loc[i:]
            break
        kept.append(part)
    return line, tuple(kept)


#: The members of each tagged union, by their tag's key: a segmenter's kind, a post step.
_TAGGED = {
    key: tuple(_tag(member) for member in get_args(get_args(union)[0]))
    for key, union in (("kind", Segmenter), ("step", PostStep))
}
#: The names pydantic puts into error locations for the member of a tagged union.
_TAGS = {tag for tags in _TAGGED.values() for tag in tags}
