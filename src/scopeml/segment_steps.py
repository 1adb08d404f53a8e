"""The steps of :func:`scopeml.api.segment` after the engine's tiles: the instances (made in
the partial store before it is published, :func:`scopeml.api._staged_instances`), the OME-TIFF
copies, the table's checks; which of them a store lacks (one a stopped call of an older scopeml
published without its instances, or without its table), so that a stopped call is refused or
resumed naming them."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from scopeml.segmentation import INSTANCES, Segmentation, has_instances
from scopeml.tiling.options import SegmentOptions

if TYPE_CHECKING:
    from scopeml.objects.instances import InstanceOptions
    from scopeml.progress import Progress


@dataclasses.dataclass(frozen=True)
class StepsAfter:
    """What a :func:`~scopeml.api.segment` call does after the engine publishes ``output``:
    the instances (made from the engine's outputs, the ``extra`` ones removed after), the
    ``measure`` table and the OME-TIFF copies of ``tiffs``."""

    output: Path
    settings: SegmentOptions
    want_instances: bool
    extra: tuple[str, ...]
    measure: str | os.PathLike[str] | None
    tiffs: Sequence[str] | None
    shape_features: bool = True  # measured into the table

    def missing(self) -> list[str]:
        """Those of the steps that the published ``output`` lacks."""
        missing = []
        if self.want_instances and not has_instances(self.output):
            missing.append(INSTANCES)
        elif self.want_instances and any((self.output / n).exists() for n in self.extra):
            missing.append(f"removal of the {', '.join(self.extra)}")
        if self.measure is not None and not Path(self.measure).exists():
            missing.append("table")
        if self.settings.ome_tiff and missing_ome_tiffs(self.output, self.tiffs):
            missing.append("OME-TIFF copies")
        return missing


def missing_text(missing: Sequence[str]) -> str:
    """``["instances", "table"]`` → ``"the instances and table are missing"``; a step alone
    is singular only when it is the table or a removal (the instances, the OME-TIFF copies)."""
    if not missing:
        return ""
    names = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
    one = len(missing) == 1 and missing[0].startswith(("table", "removal"))
    return f"the {names} {'is' if one else 'are'} missing"


def refuse_unfinished(steps: StepsAfter) -> None:
    """Without ``resume`` or ``overwrite``, a store that a stopped call published (the
    engine's outputs in place, a later step not done) is refused with a pointer to
    ``resume``, rather than only to ``overwrite``, which throws the model's work away."""
    from scopeml.errors import InvalidRequestError
    from scopeml.tiling.store import is_own_store

    settings, output = steps.settings, steps.output
    if settings.resume or settings.overwrite or not is_own_store(output):
        return  # a folder scopeml did not make: the engine's output check says so
    engine = [name for name in settings.outputs if name not in steps.extra]
    if not engine or not all((output / name).is_dir() for name in engine):
        return  # not a store this call's engine run would have published
    missing = steps.missing()
    if missing:
        raise InvalidRequestError(
            f"output exists but is unfinished ({missing_text(missing)}); pass --resume "
            "(resume=True) to finish it without running the model again, or --overwrite "
            "(overwrite=True) to replace it",
            path=output,
        )


def ome_tiff_outputs(
    settings: SegmentOptions, wanted: Sequence[str], want_instances: bool
) -> tuple[str, ...] | None:
    """The outputs that get OME-TIFF copies: those asked for (``wanted``; the mask comes with
    ``extract_class``), not those made only for the instances; ``None`` without instances: the
    engine's outputs as it names them (a Regression model's default labels are an image)."""
    if not want_instances:
        return None
    return tuple(n for n in (*settings.outputs, INSTANCES) if n in (*wanted, "mask"))


def missing_ome_tiffs(
    store: Path, names: Sequence[str] | None, remade: Sequence[str] = ()
) -> list[str]:
    """Those of ``names`` (``None``: every output in the store) without an OME-TIFF copy, or
    ``remade`` (made again by this call, so a copy of them is stale)."""
    from scopeml.tiling.engine import ome_tiff_path

    names = Segmentation(store).outputs if names is None else names
    return [n for n in names if n in remade or not ome_tiff_path(store, n).exists()]


def export_ome_tiffs(store: Path, names: Sequence[str] | None, *, remade: Sequence[str]) -> None:
    """The OME-TIFF copies that :func:`missing_ome_tiffs` finds: the engine exports its own
    outputs as it publishes the store, and an existing copy was refused before the run or
    written by the stopped call being resumed (a copy appears only when complete)."""
    from scopeml.tiling.engine import export_ome_tiff

    export_ome_tiff(store, missing_ome_tiffs(store, names, remade), overwrite=True)


def make_instances(
    result: Segmentation,
    instances: InstanceOptions,
    settings: SegmentOptions,
    extra: tuple[str, ...],
    finished: bool,
    progress: Progress,
) -> bool:
    """Write the instances, unless a resumed call (``finished``) finds them complete, then
    remove the ``extra`` outputs made only for them; whether they were written."""
    import shutil

    made = not (finished and has_instances(result.path))
    if made and finished and not all((result.path / name).is_dir() for name in extra):
        from scopeml.errors import IncompleteOutputError

        raise IncompleteOutputError(
            f"the instances are missing and the {', '.join(extra)} they are made from were "
            "removed; pass --overwrite (overwrite=True) to run again",
            path=result.path,
        )
    if made:
        write_instances(result, instances, settings.tile_size, progress)
    for name in extra:  # not asked for: removed once the instances are made
        if (result.path / name).exists():
            shutil.rmtree(result.path / name)
    return made


def check_measure_table(measure: Path, output: Path, settings: SegmentOptions) -> None:
    """Refuse an existing ``measure`` table unless ``overwrite``, or unless a resumed call finds
    the store's instances complete: the table is written after them (moved into place when
    complete), and a run that started without ``overwrite`` was refused an existing table, so
    one there now is that run's finished table (not written again)."""
    from scopeml.objects.table import check_table_output

    resumed = settings.resume and not settings.overwrite and has_instances(output)
    check_table_output(measure, overwrite=bool(settings.overwrite) or resumed)


def resumes_published(steps: StepsAfter) -> bool:
    """Whether a resumed call finds ``output`` published (by a scopeml run): then the model
    does not run again; the store must record this run
    (:func:`~scopeml.tiling.engine.check_finished_run`) and only the steps after the engine
    that it lacks are done (instances, removing the outputs made only for them, the OME-TIFF
    copies of ``tiffs``, the table) — none, when it is complete."""
    from scopeml.tiling.store import is_own_store

    settings = steps.settings
    if not settings.resume or settings.overwrite or not steps.output.is_dir():
        return False
    return is_own_store(steps.output)  # else the engine's output check says what it is


def instance_options(instances: InstanceOptions | str | int | None) -> InstanceOptions:
    """:func:`~scopeml.api.segment`'s ``instances=``: options, or only the class to label, by
    name or label value, as ``label_objects(class_=...)`` takes it (``InstanceOptions(class_=
    that)``); ``None``: the defaults.

    Examples
    --------
    >>> instance_options("nucleus").class_, instance_options(2).class_
    ('nucleus', 2)
    >>> instance_options(None) == instance_options(instance_options(None))
    True
    """
    from scopeml.objects.instances import InstanceOptions

    if instances is None:
        return InstanceOptions()
    if isinstance(instances, InstanceOptions):
        return instances
    if isinstance(instances, (str, int)) and not isinstance(instances, bool):
        return InstanceOptions(class_=instances)
    from scopeml.errors import InvalidRequestError

    raise InvalidRequestError(
        "instances= takes an InstanceOptions, or the class to label by name or label value "
        f"(instances='nucleus'); got {instances!r}"
    )


def grow_applied(grow: float, scale: float) -> float:
    """The ``grow`` distance in the output's pixels: counted at the model's scale where the
    run shrank the image (scale < 1), since the seam the model draws between objects widens
    as its output is magnified back (at most :data:`~scopeml.post.steps.MAX_DISTANCE`).

    Examples
    --------
    >>> grow_applied(4.0, 0.125), grow_applied(4.0, 2.0), grow_applied(20.0, 0.125)
    (32.0, 4.0, 100.0)
    """
    from scopeml.post.steps import MAX_DISTANCE

    return grow if scale >= 1 else min(max(grow, grow / scale), float(MAX_DISTANCE))


def write_instances(
    result: Segmentation,
    options: InstanceOptions,
    tile_size: int | Sequence[int] | None,
    progress: Progress,
    output: Path | None = None,
) -> None:
    """The ``instances`` output of a finished segmentation, from its labels, in its store
    (replacing a half-written one, and the scratch a killed attempt left beside it), or in
    ``output`` (napari's instances of a store's labels, made without running the model)."""
    import shutil

    from scopeml.objects.instances import instance_image, seed_classes

    for scratch in result.path.glob(f".{INSTANCES}.*.partial.zarr*"):  # write_label_image's
        shutil.rmtree(scratch, ignore_errors=True)

    class_id, grow_id = options.resolve(result.classes)
    labels = result.labels
    if grow_id is not None and options.seed_threshold is not None:
        labels = seed_classes(result.probabilities, class_id, grow_id, options.seed_threshold)
        class_id, grow_id = 2, 3
    spatial = 3 if labels.sizes["Z"] > 1 else 2
    tile = tile_size  # the engine's, or up to 1024 per axis
    if tile is not None and not isinstance(tile, int) and len(tile) != spatial:
        tile = None
    instance_image(
        labels,
        result.path / INSTANCES if output is None else output,
        class_id=class_id,
        grow_id=grow_id,
        grow=grow_applied(options.grow, result.scale),
        min_size=options.min_size,
        connectivity=options.connectivity,
        tile_size=tile,
        overwrite=True,
        progress=progress,
    )
