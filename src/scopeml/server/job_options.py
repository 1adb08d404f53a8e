"""What a job request may ask (its options, the instances it wants), checked before it is
queued: one schema for the REST routes and the job's record."""

from __future__ import annotations

import logging
import warnings
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    field_validator,
    model_validator,
)

from scopeml.errors import IncompatibleModelError, InvalidRequestError
from scopeml.model.spec import ModelSpec
from scopeml.tiling.size import scale_value

log = logging.getLogger(__name__)

INSTANCES = "instances"
OUTPUTS = ("labels", "probabilities", "confidence", "mask", "image", INSTANCES)  # image: Regression
MAX_GROW = 64.0  # pixels; also the instance tiles' halo


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
    measure: StrictBool | Literal["csv", "parquet"] | None = None  # true: csv
    #: whether the ``measure`` table has perimeter, hull and Feret columns (default: yes)
    shape_features: StrictBool | None = None
    tile_size: int | None = Field(default=None, ge=16, le=8192)
    halo: int | None = Field(default=None, ge=0, le=1024)
    batch_size: int | None = Field(default=None, ge=1, le=64)
    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    extract_class: str | None = Field(default=None, max_length=200)
    blend: StrictBool | None = None
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
        return scale_value(value)

    def segment_options(self) -> dict[str, Any]:
        """The options as a job keeps them: :class:`~scopeml.tiling.options.SegmentOptions`
        fields (checked), with ``instances`` (the keywords given) and ``measure`` (the table's
        format) where asked for."""
        from scopeml.tiling.options import SegmentOptions

        options = self.model_dump(exclude_none=True, exclude={"instances", "measure"})
        if self.measure:
            options["measure"] = "csv" if self.measure is True else self.measure
        elif self.shape_features is not None:
            raise InvalidRequestError("shape_features given, but no measure table is asked for")
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
    after = ("instances", "measure", "shape_features", "axes")
    engine = {k: v for k, v in options.items() if k not in after}
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
