"""The metadata of model containers: czann ``model.json`` and the legacy czseg/czmodel XML.

Field names follow Python; the JSON keys of the czann format (``InputShape``, ``MinOverlap`` …)
are aliases, so ``ModelMetadata.from_json_dict(json.load(f))`` and ``to_json_dict()`` speak the
format exactly. Shapes are channels-last and without the batch axis, as in the czann spec:
``[Y, X, C]`` or ``[Z, Y, X, C]``. Validation here is of the metadata alone; whether it fits the
ONNX graph is checked where both are at hand (:func:`scopeml.model.container.check_metadata`).
"""

from __future__ import annotations

import math
import re
import unicodedata
import uuid
from enum import StrEnum
from typing import Any, TypeVar
from xml.etree.ElementTree import Element, SubElement, tostring

import defusedxml.ElementTree as safe_xml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from scopeml.errors import InvalidContainerError, ScopeMLError

CZANN_FORMAT_VERSION = "2.1.0"
NORMALIZE_KEY = "ScopeMLNormalize"
_NORMALIZE = re.compile(r"none|meanstd|percentile:\d+(\.\d+)?,\d+(\.\d+)?")
LEGACY_FORMAT_VERSION = "3.1.0"


class ModelType(StrEnum):
    """The problem a czann model solves (the values of czmodel's ``ModelType``)."""

    SINGLE_CLASS_INSTANCE_SEGMENTATION = "SingleClassInstanceSegmentation"
    MULTI_CLASS_INSTANCE_SEGMENTATION = "MultiClassInstanceSegmentation"
    SINGLE_CLASS_SEMANTIC_SEGMENTATION = "SingleClassSemanticSegmentation"
    MULTI_CLASS_SEMANTIC_SEGMENTATION = "MultiClassSemanticSegmentation"
    SINGLE_CLASS_CLASSIFICATION = "SingleClassClassification"
    MULTI_CLASS_CLASSIFICATION = "MultiClassClassification"
    OBJECT_DETECTION = "ObjectDetection"
    REGRESSION = "Regression"

    @property
    def with_article(self) -> str:
        """``"a Regression"``, ``"an ObjectDetection"``: the type in a sentence."""
        return f"{'an' if self.value[0] in 'AEIOU' else 'a'} {self.value}"

    @property
    def is_pixelwise(self) -> bool:
        """Whether the output is an image (segmentation, regression) the engine can tile."""
        return self not in {
            ModelType.SINGLE_CLASS_CLASSIFICATION,
            ModelType.MULTI_CLASS_CLASSIFICATION,
            ModelType.OBJECT_DETECTION,
        }


def segmentation_type(n_classes: int) -> ModelType:
    """The semantic segmentation type of a model of ``n_classes`` (a legacy container's, or a
    graph converted without a type): single-class for one or two, else multi-class.

    >>> segmentation_type(2).value, segmentation_type(3).value
    ('SingleClassSemanticSegmentation', 'MultiClassSemanticSegmentation')
    """
    if n_classes <= 2:
        return ModelType.SINGLE_CLASS_SEMANTIC_SEGMENTATION
    return ModelType.MULTI_CLASS_SEMANTIC_SEGMENTATION


_M = TypeVar("_M", bound=BaseModel)


#: pydantic's type errors, as the kind of value expected (said once per field: a Scaling of
#: ``["x", "y"]`` gave one error per item and union member, ~400 characters).
_EXPECTED = {
    "float_type": "number", "float_parsing": "number", "int_type": "integer",
    "int_parsing": "integer", "int_from_float": "integer", "string_type": "string",
    "bool_type": "boolean", "bool_parsing": "boolean", "uuid_type": "UUID",
    "uuid_parsing": "UUID", "tuple_type": "list", "list_type": "list",
}  # fmt: skip


def parse_metadata_error(err: ValidationError, fields: Any = None) -> str:
    """Turn a pydantic error into one line: ``InputShape: ...; Classes: ...``; a field of
    the wrong type (or with items of the wrong type) is said once, as what was expected and
    what it is (``fields``: the values validated, where the field's value is read).

    Examples
    --------
    >>> try:
    ...     ModelMetadata.model_validate({"Scaling": ["x", "y"]})
    ... except ValidationError as err:
    ...     print(parse_metadata_error(err, {"Scaling": ["x", "y"]}).split("; ")[-1])
    Scaling: expected a list of numbers, got ['x', 'y']
    """
    parts: dict[str, str] = {}
    typed: set[str] = set()
    for item in err.errors():
        loc = [str(part) for part in item["loc"]]
        field = loc[0] if loc else ""
        expected = _EXPECTED.get(item["type"])
        if expected is not None and field and field not in typed:
            typed.add(field)
            parts[field] = _expected(field, loc, expected, item, fields)
        elif field not in typed:
            where = ".".join(loc)
            parts.setdefault(where, _message(where, item))
    return "; ".join(parts.values())


def _message(where: str, item: Any) -> str:
    """One error's text; a value outside a fixed set (an enum, a literal) is quoted with the
    choices: ``Type 'X' is not one of A, B or C`` (pydantic's "Input should be …" did not say
    what the input was)."""
    expected = (item.get("ctx") or {}).get("expected")
    if item["type"] in {"enum", "literal_error"} and isinstance(expected, str):
        choices = expected.replace("'", "")
        return f"{where or 'value'} {_shown(item.get('input'))} is not one of {choices}"
    message = item["msg"].removeprefix("Value error, ")  # our own checks say it all
    return f"{where}: {message}" if where else message


def _expected(field: str, loc: list[str], expected: str, item: Any, fields: Any) -> str:
    """``Field: expected a list of numbers, got […]`` (an item's type wrong: the whole value)."""
    if len(loc) == 1:
        value, wanted = item.get("input"), f"a{'n' * (expected[0] in 'aeiou')} {expected}"
    else:
        value = fields.get(field) if isinstance(fields, dict) else None
        wanted = f"a list of {expected}s"
    return f"{field}: expected {wanted}" + (f", got {_shown(value)}" if value is not None else "")


def _shown(value: Any) -> str:
    """``repr(value)``, cut to 60 characters."""
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def validate_metadata(
    kind: type[_M],
    fields: Any,
    *,
    path: Any = None,
    context: str = "",
    error: type[ScopeMLError] = InvalidContainerError,
) -> _M:
    """``kind.model_validate(fields)``; a pydantic error becomes one line (``context``, then
    :func:`parse_metadata_error`) as ``error`` naming ``path``: the one place metadata is checked.

    Examples
    --------
    >>> validate_metadata(ModelMetadata, {"InputShape": [8, 8, 1]}, context="invalid model.json: ")
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidContainerError: invalid model.json: ...
    """
    try:
        return kind.model_validate(fields)
    except ValidationError as err:
        raise error(f"{context}{parse_metadata_error(err, fields)}", path=path) from err


#: scopeml's own ``model.json`` keys of the object size ``scale="auto"`` works from
#: (:mod:`scopeml.tiling.size`): the diameter (pixels) a model works best at, the range of
#: diameters it takes as they are, and ``"auto"`` as the scale it runs at by default.
DIAMETER_KEY = "ScopeMLObjectDiameter"
RANGE_KEY = "ScopeMLObjectDiameterRange"
DEFAULT_KEY = "ScopeMLDefaultScale"


#: Object diameters (pixels) a model's size keys may give: below half a pixel or above the
#: largest tile no object is seen (``1e-300`` made every auto scale fall back to 1, unsaid).
DIAMETER_RANGE = (0.5, 10_000.0)
#: Longest class name: it heads table columns and names layers.
MAX_CLASS_NAME = 256


def class_name_problem(name: Any) -> str | None:
    """What is wrong with a class name (``None``: nothing): text of 1 to
    :data:`MAX_CLASS_NAME` characters, none a control or format character (a NUL, a line
    break or a right-to-left override cut or reversed it in tables, files and the status
    line); spaces of any kind are kept (``Zell\xa0kern``).

    >>> class_name_problem("nucleus")
    >>> print(class_name_problem("a" + chr(0)))
    'a\\x00' has a character that is not printable
    """
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_CLASS_NAME:
        return f"{name!r:.60} is not text of 1 to {MAX_CLASS_NAME} characters"
    if any(unicodedata.category(c) in _UNPRINTABLE for c in name):
        return f"{name!r:.60} has a character that is not printable"
    return None


#: Unicode categories no class name holds: controls, format characters (bidi overrides),
#: surrogates, private use, unassigned, line and paragraph separators.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def size_key_problem(key: str, value: Any) -> str | None:
    """What is wrong with ``value`` for one of the object-size keys (``None``: nothing), said
    as what is expected.

    Examples
    --------
    >>> size_key_problem(DIAMETER_KEY, float("nan"))
    'expected a number of pixels from 0.5 to 10000'
    >>> size_key_problem(RANGE_KEY, [10, 40]) is None
    True
    """

    low, high = DIAMETER_RANGE

    def positive(v: Any) -> bool:
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        return number and math.isfinite(v) and low <= v <= high

    if key == DIAMETER_KEY and not positive(value):
        return f"expected a number of pixels from {low:g} to {high:g}"
    if key == RANGE_KEY and not (
        isinstance(value, list) and len(value) == 2 and all(map(positive, value))
        and value[0] <= value[1]
    ):  # fmt: skip
        return f"expected [low, high], pixels from {low:g} to {high:g}, low <= high"
    if key == DEFAULT_KEY and not (isinstance(value, str) and value.strip().lower() == "auto"):
        return "expected auto (or leave it out: scale 1)"
    return None


class ModelMetadata(BaseModel):
    """The ``model.json`` of a czann container, validated.

    Examples
    --------
    >>> meta = ModelMetadata(
    ...     model_type=ModelType.MULTI_CLASS_SEMANTIC_SEGMENTATION,
    ...     input_shape=(256, 256, 1), output_shape=(256, 256, 2),
    ...     classes=("background", "nucleus"), min_overlap=(16, 16),
    ...     model_id="b511d295-91ff-46ca-bb60-b2e26c393809",
    ... )
    >>> meta.to_json_dict()["MinOverlap"]
    [16, 16]
    >>> ModelMetadata.from_json_dict(meta.to_json_dict()) == meta
    True
    """

    model_config = ConfigDict(
        frozen=True, populate_by_name=True, extra="allow", use_enum_values=False
    )

    format_version: StrictStr = Field(CZANN_FORMAT_VERSION, alias="FormatVersion")
    model_id: uuid.UUID = Field(default_factory=uuid.uuid4, alias="Id")
    model_type: ModelType = Field(alias="Type")
    input_shape: tuple[StrictInt, ...] = Field(alias="InputShape", min_length=3, max_length=4)
    output_shape: tuple[StrictInt, ...] = Field(alias="OutputShape", min_length=1, max_length=4)
    min_overlap: tuple[StrictInt, ...] | None = Field(None, alias="MinOverlap")
    classes: tuple[StrictStr, ...] | None = Field(None, alias="Classes")
    model_name: StrictStr | None = Field(None, alias="ModelName")
    scaling: tuple[StrictFloat | StrictInt, ...] | None = Field(
        None, alias="Scaling", min_length=2, max_length=3
    )
    # scopeml's own key (czmodel ignores keys it does not know): the input normalisation
    # policy, e.g. "percentile:1,99.8", that the engine applies from its global statistics pass
    # when the user gives none. The graph then holds no training statistics.
    normalize: StrictStr | None = Field(None, alias=NORMALIZE_KEY)

    @field_validator("input_shape", "output_shape")
    @classmethod
    def _positive(cls, shape: tuple[int, ...]) -> tuple[int, ...]:
        if any(size < 1 for size in shape):
            raise ValueError(f"sizes must be >= 1, got {list(shape)}")
        return shape

    @field_validator("normalize")
    @classmethod
    def _normalize_policy(cls, policy: str | None) -> str | None:
        if policy is not None and not _NORMALIZE.fullmatch(policy):
            raise ValueError(
                f"unknown normalisation policy {policy[:40]!r}; expected none, meanstd or "
                "percentile:LOW,HIGH"
            )
        from scopeml.tiling.normalize import parse_normalize

        try:  # the rule segment applies, at load: percentile:99,1 is no policy either
            parse_normalize(policy)
        except ScopeMLError as err:
            raise ValueError(err.problem) from None
        return policy

    @field_validator("classes")
    @classmethod
    def _printable(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        problem = next(filter(None, map(class_name_problem, names or ())), None)
        if problem is not None:
            raise ValueError(f"class name {problem}")
        return names

    @field_validator("min_overlap")
    @classmethod
    def _non_negative(cls, overlap: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if overlap is not None and any(size < 0 for size in overlap):
            raise ValueError(f"overlaps must be >= 0, got {list(overlap)}")
        return overlap

    @field_validator("scaling")
    @classmethod
    def _positive_scaling(cls, scaling: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if scaling is not None and not all(0 < size < float("inf") for size in scaling):
            raise ValueError(f"pixel extents must be positive and finite, got {list(scaling)}")
        return scaling

    @model_validator(mode="after")
    def _consistent(self) -> ModelMetadata:
        for key in (DIAMETER_KEY, RANGE_KEY, DEFAULT_KEY):  # scopeml's own: checked, not dropped
            value = (self.model_extra or {}).get(key)
            problem = None if value is None else size_key_problem(key, value)
            if problem is not None:
                raise ValueError(f"{key} is {value!r}; {problem}")
        spatial = self.spatial_dims
        if self.model_type.is_pixelwise and len(self.output_shape) != len(self.input_shape):
            raise ValueError(
                f"OutputShape {list(self.output_shape)} must have the rank of InputShape "
                f"{list(self.input_shape)} for {self.model_type.with_article} model"
            )
        if self.min_overlap is not None and len(self.min_overlap) != spatial:
            raise ValueError(
                f"MinOverlap has {len(self.min_overlap)} entries; the model has {spatial} "
                "spatial dims"
            )
        if self.classes is not None and len(self.classes) != self.output_shape[-1]:
            raise ValueError(
                f"Classes has {len(self.classes)} names; the output has "
                f"{self.output_shape[-1]} channels"
            )
        return self

    @property
    def spatial_dims(self) -> int:
        """2 for ``[Y, X, C]`` inputs, 3 for ``[Z, Y, X, C]``."""
        return len(self.input_shape) - 1

    @property
    def in_channels(self) -> int:
        return self.input_shape[-1]

    @property
    def out_channels(self) -> int:
        return self.output_shape[-1]

    def to_json_dict(self) -> dict[str, Any]:
        """The ``model.json`` content, keys as in the czann spec, unset options left out."""
        data = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        return data

    @classmethod
    def from_json_dict(cls, data: Any, *, path: Any = None) -> ModelMetadata:
        """Validate a parsed ``model.json``; any problem is an :class:`InvalidContainerError`."""
        if not isinstance(data, dict):
            raise InvalidContainerError(
                f"model.json must hold a JSON object, got {type(data).__name__}", path=path
            )
        return validate_metadata(cls, data, path=path, context="invalid model.json: ")


#: Output name of a Regression model without class names (``intensity_k`` for several).
REGRESSION_OUTPUT = "intensity"


def default_classes(count: int, model_type: Any = None) -> tuple[str, ...]:
    """Names of ``count`` unnamed outputs, one rule everywhere (a converted graph, a model
    or package without names, a pixel classifier): ``class k`` for the class written as label
    value ``k``; a Regression model's images ``intensity`` (``intensity_k`` for several).

    >>> default_classes(2), default_classes(2, "Regression")
    (('class 1', 'class 2'), ('intensity_0', 'intensity_1'))
    """
    if model_type is not None and str(model_type) == ModelType.REGRESSION.value:
        if count == 1:
            return (REGRESSION_OUTPUT,)
        return tuple(f"{REGRESSION_OUTPUT}_{index}" for index in range(count))
    return tuple(f"class {k}" for k in range(1, int(count) + 1))


def repeated_classes(meta: Any) -> list[str]:
    """Class names a model repeats. They name its outputs (``--extract-class``, a package's
    channels), so a file written with them is ambiguous: writing refuses them (a container,
    a package), reading tolerates them (a ZEN model still runs; ``model validate`` warns).

    >>> repeated_classes(ModelMetadata(model_type="MultiClassSemanticSegmentation",
    ...     input_shape=(8, 8, 1), output_shape=(8, 8, 3), classes=("a", "a", "b")))
    ['a']
    """
    names = [getattr(c, "name", c) for c in (meta.classes or ())]
    return sorted({name for name in names if names.count(name) > 1})


def _check_label_values(items: list[Any], path: Any) -> None:
    """Warn where the classes' ``LabelValue`` s are not 1, 2, … in document order (czmodel
    writes them so, and reads the classes in document order, as scopeml does): a file that
    orders them otherwise may mean its classes in another order than its output channels."""
    values = [item.get("LabelValue") for item in items]
    if all(value is None or _int(value, 0) == i + 1 for i, value in enumerate(values)):
        return
    import warnings

    from scopeml.errors import find_stack_level

    where = f"{path}: " if path else ""
    listed = ", ".join(f"{item.get('Name', '')} {item.get('LabelValue')}" for item in items)
    warnings.warn(
        f"{where}the classes' LabelValues are not 1, 2, … in order ({listed}); the output "
        "channels are taken as the classes in the file's order, as czmodel reads them: "
        + ", ".join(item.get("Name", "") for item in items),
        UserWarning,
        stacklevel=find_stack_level(),
    )


class LegacyModelMetadata(BaseModel):
    """The XML metadata of a legacy ``.czseg``/``.czmodel`` segmentation container.

    Legacy models are 2-D segmentation models with fixed spatial input size; ``border_size``
    plays the part of ``MinOverlap`` on both axes. Class colours are kept for round trips.

    Examples
    --------
    >>> meta = LegacyModelMetadata(name="nuclei", classes=("bg", "fg"), border_size=8)
    >>> LegacyModelMetadata.from_xml(meta.to_xml()).classes
    ('bg', 'fg')
    """

    model_config = ConfigDict(frozen=True)

    model_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    name: str = "DNN model"
    color_handling: str = "ConvertToMonochrome"
    pixel_types: tuple[str, ...] = ("Gray32Float",)
    classes: tuple[str, ...] = Field(min_length=1)
    colors: tuple[tuple[int, int, int], ...] | None = None
    border_size: int = Field(0, ge=0)
    post_processing: str | None = None
    version: str = LEGACY_FORMAT_VERSION

    @model_validator(mode="after")
    def _colors(self) -> LegacyModelMetadata:
        if self.colors is not None and len(self.colors) != len(self.classes):
            raise ValueError(f"{len(self.colors)} colours given for {len(self.classes)} classes")
        if not self.pixel_types:
            raise ValueError("at least one channel pixel type is needed")
        return self

    def class_colors(self) -> tuple[tuple[int, int, int], ...]:
        """The colours, or a fixed, distinguishable palette when none were given."""
        if self.colors is not None:
            return self.colors
        return tuple(_palette(index) for index in range(len(self.classes)))

    def to_xml(self) -> bytes:
        """The XML document (UTF-8, with declaration) czmodel writes as ``<id>.xml``."""
        root = Element("Model", Version=self.version)
        SubElement(root, "Id").text = str(self.model_id)
        SubElement(root, "ModelName").text = self.name
        SubElement(root, "Status").text = "Trained"
        SubElement(root, "FeatureExtractor").text = "DeepNeuralNetwork"
        post = SubElement(root, "Postprocessing")
        if self.post_processing is not None:
            post.text = self.post_processing
        SubElement(root, "ColorHandling").text = self.color_handling
        channels = SubElement(root, "Channels")
        for pixel_type in self.pixel_types:
            SubElement(channels, "Item", PixelType=pixel_type)
        training = SubElement(root, "TrainingClasses")
        for label, (name, (red, green, blue)) in enumerate(
            zip(self.classes, self.class_colors(), strict=True), start=1
        ):
            item = SubElement(training, "Item")
            item.set("colB", str(blue))
            item.set("colG", str(green))
            item.set("colR", str(red))
            item.set("LabelValue", str(label))
            item.set("Name", name)
        SubElement(root, "BorderSize").text = str(self.border_size)
        return tostring(root, encoding="utf-8", xml_declaration=True)

    @classmethod
    def from_xml(cls, data: bytes, *, path: Any = None) -> LegacyModelMetadata:
        """Parse legacy XML safely (no entities, no DTDs); problems are InvalidContainerError."""
        try:
            root = safe_xml.fromstring(data)
        except Exception as err:  # ParseError, defusedxml's DTD/entity refusals
            raise InvalidContainerError(f"invalid model XML ({err})", path=path) from err
        if root.tag != "Model":
            raise InvalidContainerError(
                f"model XML root is <{root.tag}>; expected <Model>", path=path
            )

        def text(tag: str, default: str | None = None) -> str | None:
            node = root.find(tag)
            return default if node is None or node.text is None else node.text.strip()

        items = root.findall("TrainingClasses/Item")  # output channels in document order
        _check_label_values(items, path)
        fields: dict[str, Any] = {
            "name": text("ModelName", "DNN model"),
            "color_handling": text("ColorHandling", "ConvertToMonochrome"),
            "pixel_types": tuple(
                item.get("PixelType", "") for item in root.findall("Channels/Item")
            ),
            "classes": tuple(item.get("Name", "") for item in items),
            "colors": tuple(
                (_int(it.get("colR"), 0), _int(it.get("colG"), 0), _int(it.get("colB"), 0))
                for it in items
            ),
            "border_size": text("BorderSize", "0"),
            "post_processing": text("Postprocessing"),
            "version": root.get("Version", LEGACY_FORMAT_VERSION),
        }
        model_id = text("Id")
        if model_id is not None:
            fields["model_id"] = model_id
        return validate_metadata(cls, fields, path=path, context="invalid model XML: ")


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _palette(index: int) -> tuple[int, int, int]:
    """Distinct colours by golden-ratio hue steps (deterministic, no dependency)."""
    import colorsys

    hue = (index * 0.618033988749895) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.65, 0.95)
    return round(red * 255), round(green * 255), round(blue * 255)
