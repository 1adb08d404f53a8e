"""The flat facade behind ``import scopeml as sm``: the whole flow, each step taking what the
previous one returned.

open_image → train_pixel_classifier → segment (a :class:`Segmentation`) → label_objects (an
``Image``) → measure_objects (a table) → train_object_classifier → classify_objects.

Every step that takes a label image accepts an :class:`~scopeml.io.image.Image`, a numpy array
(``Y×X``, ``Z×Y×X`` or ``S×T×C×Z×Y×X``), a file, or a :class:`Segmentation`. A class is chosen
by one rule everywhere: by its name (``"nucleus"``) or by its label value (``2``; class ``k`` of
a model is written as ``k + 1``, 0 is background).

>>> from scopeml.api import segment   # segment("cells.czi", "nuclei", "out.ome.zarr")
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, overload

from scopeml.errors import Cancelled, InvalidRequestError
from scopeml.inputs import (
    check_output_name,
    image_of_array,
    names_of,
    open_training_pair,
    refuse_axes_of_open,
    scheduler_address,
)
from scopeml.io import open_image
from scopeml.io.image import Image
from scopeml.model.spec import Model
from scopeml.objects.label import label_value
from scopeml.pixel_size import PixelSize
from scopeml.progress import Progress
from scopeml.segment_steps import (
    StepsAfter,
    check_measure_table,
    export_ome_tiffs,
    instance_options,
    make_instances,
    missing_text,
    ome_tiff_outputs,
    refuse_unfinished,
    resumes_published,
)
from scopeml.segmentation import INSTANCES, RunRead, Segmentation, run_read, run_read_near
from scopeml.tiling.options import SegmentOptions
from scopeml.tiling.size import AUTO_RECORD, AutoScale
from scopeml.tiling.store import AXES_RECORD, PublishedLock

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from scopeml.objects.classifier import ObjectClassifier
    from scopeml.objects.instances import InstanceOptions
    from scopeml.pixel import FeatureCache, PixelClassifier

__all__ = [
    "Segmentation",
    "classify_objects",
    "filter_objects",
    "label_objects",
    "measure_objects",
    "open_image",
    "open_model",
    "paint_objects",
    "predict_region",
    "segment",
    "train_object_classifier",
    "train_pixel_classifier",
]

_log = logging.getLogger(__name__)
PathLike: TypeAlias = "str | os.PathLike[str]"
#: What a label step accepts: a lazy image, an array, a file, or a segmentation's result.
LabelSource: TypeAlias = "Image | np.ndarray | str | os.PathLike[str] | Segmentation"


def open_model(
    source: PathLike, *, workers: int | None = None, threads: int | None = None
) -> Model:
    """Open any model: czann, legacy czseg/czmodel, pixel or object classifier, or a built-in
    name (``"nuclei"``; ``scopeml model list`` shows them). The kind is read from the content.

    ``workers`` caps the model's own threads (1 when several engine workers share it);
    ``threads`` is its older name. Dask workers call this through its path, so it stays a
    module-level function.

    Returns a :class:`~scopeml.model.spec.Model` (``.spec``, ``.predict``), as typed; an
    object-classifier file gives an :class:`~scopeml.objects.ObjectClassifier` instead, which
    is no pixel model (``scopeml.objects.load_object_classifier`` is typed for it). A missing
    file or unknown name raises :class:`~scopeml.errors.ModelNotFoundError` (also a
    ``FileNotFoundError``), with the built-in name it is close to.

    Examples
    --------
    >>> open_model("nuclei").spec.classes
    ('background', 'nucleus', 'boundary')
    """
    from scopeml.model.registry import open_model as open_registered

    model: Model = open_registered(source, workers=workers if workers is not None else threads)
    return model


def segment(
    image: PathLike | Image | np.ndarray,
    model: PathLike | Model,
    output: PathLike,
    options: SegmentOptions | None = None,
    *,
    outputs: Sequence[str] | None = None,
    tile_size: int | Sequence[int] | None = None,
    halo: int | Sequence[int] | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    scheduler: str | Any | None = None,
    min_confidence: float | None = None,
    extract_class: str | None = None,
    blend: bool | None = None,
    normalize: str | None = None,
    probability_dtype: str | None = None,
    scene: int | str | None = None,
    axes: str | None = None,
    channels: Sequence[int | str] | int | str | None = None,
    scale: float | str | AutoScale | None = None,
    resume: bool | None = None,
    overwrite: bool | None = None,
    ome_tiff: bool | None = None,
    progress: Progress = None,
    instances: InstanceOptions | str | int | None = None,
    measure: PathLike | None = None,
    shape_features: bool = True,
    public_name: str | None = None,
    public_model: str | None = None,
    log_stop: bool = True,
    pixel_size: PixelSize | None = None,
) -> Segmentation:
    """Segment an image of any size with a model; return the finished store's outputs.

    Parameters
    ----------
    image
        An image file (CZI, OME-TIFF, OME-Zarr, TIFF/PNG), an :class:`Image`, or an array:
        ``Y×X`` (one channel), ``C×Y×X``, ``C×Z×Y×X`` or ``S×T×C×Z×Y×X``.
    model
        A model file, a built-in name (``"nuclei"``) or any object with the
        :class:`~scopeml.model.spec.Model` protocol (a trained ``PixelClassifier`` …).
    output
        The ``.ome.zarr`` store to create (for arrays in memory instead, see
        :func:`predict_region`).
    options
        A :class:`~scopeml.tiling.options.SegmentOptions` (as the CLI and the server use);
        keywords given here replace its fields. Their meaning is documented there.
    scheduler
        Run the tiles on a dask.distributed cluster: its address (``"tcp://host:8786"``), a
        ``distributed.Client`` or a cluster object (``LocalCluster``); the run connects its
        own client to that scheduler.
    axes
        The image file's axes, one letter of ``T C Z Y X`` per axis in its order (``"TYX"``:
        a plain multi-page TIFF's pages as time points, which are otherwise read as Z), as
        :func:`~scopeml.io.open_image` takes them (and ``--axes``), or an array's (``"TYX"``:
        a movie's frames, which an array's default C×Y×X reads as channels); not for an
        opened ``Image``. The store records a file's: a resume must read the file with the
        same axes, and dask workers reopen the file with them.
    progress
        See :mod:`scopeml.progress` (``True``: bars; a callback may cancel; default silent).
    instances
        How the ``instances`` output is made (``outputs=("labels", "instances")``): a
        :class:`~scopeml.objects.instances.InstanceOptions`, or only the class to label, by
        name or label value (``instances="nucleus"``: ``InstanceOptions(class_="nucleus")``);
        by default the objects are the one class that is neither background nor boundary,
        split at a ``boundary`` class if the model has one (the shipped ``nuclei`` does).
        A class given so asks for the ``instances`` output too (as ``measure`` does). Tiled
        exactly, like every output.
    measure
        Also measure the instances against the image (every channel) into this ``.csv`` or
        ``.parquet`` (one row per object per time point); implies ``instances``. A file
        already there is refused before the engine runs unless ``overwrite`` (a resumed call
        whose instances are complete takes it as the stopped call's finished table).
    shape_features
        Whether the ``measure`` table has the shape features (perimeter, convex hull,
        Feret diameters); without them measuring is a little faster, most so in 3-D.
    scale
        Magnify the image by this factor for the model (see
        :class:`~scopeml.tiling.options.SegmentOptions`), or ``"auto"``: estimate the image's
        object diameter and run at the model's recorded diameter over it
        (:mod:`scopeml.tiling.size`); the store records the factor chosen, and a resumed
        run reuses it. ``None``: the model's default (``"auto"`` for the shipped ``nuclei``,
        else 1). An :class:`~scopeml.tiling.size.AutoScale` is ``"auto"`` whose estimate was
        already made for this image (a server job's, checked against its limits first): it
        is recorded as auto's choice, not estimated again.
    public_name, public_model
        What the store records for the image instead of its path, and for the model instead
        of its own name (a server: the names its client knows them by, never where the
        server keeps them); a resume is checked against the same names and the image's
        content. ``None`` (the default, and the CLI): the image's path, the model's name.
    pixel_size
        Micrometres per pixel for an image whose file records none (a plain TIFF, an array):
        one number for every axis, ``"Y,X"``, ``"Z,Y,X"`` (or those numbers, or a mapping by
        axis; :mod:`scopeml.pixel_size`). A file's own size is kept (a warning where it
        differs). The outputs record the size used, so the ``measure`` table's µm columns
        and a later :func:`measure_objects` of the store agree; the run records the sizes
        taken from it, so a resume with another is refused.
    log_stop
        On a stop (Ctrl-C, a ``progress`` callback's cancel), log what is written and that
        ``resume=True`` finishes it; ``False`` for a caller that removes the store and says
        itself how to go on (an analysis's scratch segmentations; the napari plugin, whose
        status line offers Resume). Not recorded with the run.

    With ``resume=True``, a store that a stopped call had already published (the engine
    done, the instances, the removal of outputs made only for them or the table not) is
    finished without running the model again, if it records this same run (model, image and
    engine settings, as a resumed partial store must); one complete already is returned as it
    is (``already_complete``), so a script that always resumes can be rerun. A store of another
    run is refused naming what differs (``pass --axes TYX``), as a partial store is.

    Returns
    -------
    Segmentation
        The store, its classes and its outputs as lazy ``Image`` views (``.instances``).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from scopeml import Image, segment
    >>> from scopeml.model.spec import ModelSpec
    >>> class Threshold:  # any object with a spec and predict() is a model
    ...     spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0))
    ...     def predict(self, batch):
    ...         fg = (batch > 5).astype(np.float32)
    ...         return np.concatenate([1 - fg, fg], axis=1)
    >>> pixels = np.arange(100, dtype=np.uint8).reshape(1, 1, 1, 1, 10, 10) % 10
    >>> seg = segment(Image(pixels), Threshold(), Path(tempfile.mkdtemp()) / "out.ome.zarr",
    ...               tile_size=4)
    >>> seg.label_values, seg.labels.read()[0, 0, 0, 0, 0].tolist()
    ({'bg': 1, 'fg': 2}, [1, 1, 1, 1, 1, 1, 2, 2, 2, 2])
    >>> plane = pixels[0, 0, 0, 0]  # a Y×X array: one channel
    >>> seg = segment(plane, Threshold(), Path(tempfile.mkdtemp()) / "out.ome.zarr")
    >>> plane.shape, seg.labels.read()[0, 0, 0, 0, 0].tolist()
    ((10, 10), [1, 1, 1, 1, 1, 1, 2, 2, 2, 2])
    """
    from scopeml.tiling.engine import check_finished_run, segment_image
    from scopeml.tiling.identity import RunNames

    given = {
        "outputs": outputs, "tile_size": tile_size, "halo": halo, "batch_size": batch_size,
        "workers": workers, "scheduler": scheduler, "min_confidence": min_confidence,
        "extract_class": extract_class, "blend": blend, "normalize": normalize,
        "probability_dtype": probability_dtype, "channels": channels, "scale": scale,
        "scene": (scene := _scene_of(image, scene, axes)),  # a name: its number, once
        "resume": resume, "overwrite": overwrite, "ome_tiff": ome_tiff,
    }  # fmt: skip
    progress = False if progress is None else progress  # silent by default, as documented
    chosen, given["scale"] = _given_choice(scale)
    check_output_name(output)  # before the image: None says to use predict_region
    if not isinstance(image, (str, os.PathLike, Image)):  # named by axes= where given
        image, axes = _array_scene(image_of_array(image, axes), scene), None  # dask: lazy
    if isinstance(instances, (str, int)):  # "nucleus": its instances asked for, as measure=
        outputs_given = names_of(given["outputs"]) or (options or SegmentOptions()).outputs
        given["outputs"] = tuple(dict.fromkeys((*outputs_given, INSTANCES)))
    settings, wanted, want_instances = _checked_settings(options, given, Path(output), measure)
    opened_image, image_ref, taken = _calibrated_input(image, settings, axes, pixel_size)
    tiffs = ome_tiff_outputs(settings, wanted, want_instances)
    held = PublishedLock(output)  # the store, once published, until this call's steps end
    try:
        opened_model, model_ref = _pixel_model(model, settings)
        if want_instances:  # before any work: a Regression model has no classes to label
            _check_classes(opened_model, model_ref, measure)
        opened_image, image_ref, opened_model, model_ref, settings, auto = _fitted(
            image, opened_image, image_ref, opened_model, model_ref, settings, axes,
            Path(output), chosen,
        )  # fmt: skip
        extra: tuple[str, ...] = ()  # outputs written only to make the instances from
        record = None  # what the store ends with and how its instances are made
        if want_instances:  # a bad choice of classes fails before the engine runs
            instances, extra, record = _instance_inputs(instances, opened_model, settings)
            settings = dataclasses.replace(settings, outputs=settings.outputs + extra)
        if auto is not None:  # recorded with the run: info shows it, a resume reuses it
            record = {**(record or {}), AUTO_RECORD: auto.to_dict()}
        record = _read_as(record, image_ref, taken, opened_image)  # a resume reads it so
        steps = StepsAfter(Path(output), settings, want_instances, extra, measure, tiffs,
                           shape_features)  # fmt: skip
        refuse_unfinished(steps)
        run: dict[str, Any] = {"model_ref": model_ref, "record": record}  # the store records
        run["names"] = RunNames(public_name, public_model)
        finished = resumes_published(steps)  # the engine's tiles are all in place
        if finished:  # this run's store, else refused naming what differs
            held.take()  # its steps are this call's until it ends
            check_finished_run(opened_image, opened_model, output, settings, **run)
        else:  # the instances are made before the store is published
            path = segment_image(opened_image, opened_model, output, settings,
                                 image_ref=image_ref, progress=progress, ome_tiff_outputs=tiffs,
                                 log_stop=log_stop, hold=held, before_publish=_staged_instances(
                                     instances, opened_model, settings, steps, progress, log_stop
                                 ), **run)  # fmt: skip
        result = Segmentation(output if finished else path, classes=opened_model.spec.classes)
        _after_engine(result, image_ref or image, instances, finished, progress, steps, log_stop)
    finally:
        held.release()  # this call's own: none where it took none
        if not isinstance(image, Image):  # opened here; a caller's Image (or view) stays open
            opened_image.close()
    return result


def _fitted(
    given_image: Any,
    image: Image,
    image_ref: Any,
    model: Model,
    model_ref: Any,
    settings: SegmentOptions,
    axes: str | None,
    output: Path | None,
    chosen: Any = None,
) -> tuple[Image, Any, Model, Any, SegmentOptions, Any]:
    """The image, model and settings of a run as :func:`segment` makes them (and
    :func:`predict_region`, and a reuse check, the same): the channels the model was trained
    on, by name (:func:`~scopeml.tiling.model_inputs.fit_model_inputs`), checked against what
    ``given_image`` held, then the scale ``"auto"`` chooses (:func:`_auto_scaled_model`;
    ``chosen``: an earlier choice), with the choice last (``None``: none made)."""
    from scopeml.tiling.model_inputs import fit_model_inputs

    image, image_ref, settings = fit_model_inputs(image, image_ref, model, settings)
    _check_chosen_channels(given_image, image, model, settings, axes)
    model, model_ref, settings, auto = _auto_scaled_model(
        image, model, model_ref, settings, output, chosen
    )
    if auto is None:  # auto measures the objects themselves
        _warn_other_pixel_size(image, model, settings.scale)
    return image, image_ref, model, model_ref, settings, auto


#: How far the pixels a model sees may be from those it was trained at before a warning.
PIXEL_SIZE_TOLERANCE = 1.5


def _warn_other_pixel_size(image: Image, model: Model, scale: float | str | None) -> None:
    """Warn where the pixels the model sees (the image's, at ``scale``) are more than
    :data:`PIXEL_SIZE_TOLERANCE` times larger or smaller than those it was trained at (a ZEN
    model records them: its ``Scaling``), naming the scale that matches them."""
    import warnings

    from scopeml.errors import find_stack_level
    from scopeml.tiling.scale import ScaledModel

    while isinstance(model, ScaledModel):
        model = model.model
    trained, sizes = model.spec.pixel_size, image.pixel_sizes  # metres; µm
    if not trained or not trained[-1] or not sizes.get("X"):
        return
    factor, native = float(scale or 1), trained[-1] * 1e6  # the model's pixel size, in µm
    seen = sizes["X"] / factor / native  # > 1: the model sees larger pixels than its own
    if 1 / PIXEL_SIZE_TOLERANCE <= seen <= PIXEL_SIZE_TOLERANCE:
        return
    warnings.warn(
        f"{image.path or 'the image'}: its pixels are {sizes['X']:.3g} µm, the model was "
        f"trained at {native:.3g} µm: at scale {factor:g} it sees pixels {seen:.2g}× its own; "
        f"--scale {sizes['X'] / native:.3g} (scale=) matches them",
        UserWarning,
        stacklevel=find_stack_level(),
    )


def _checked_settings(
    options: SegmentOptions | None, given: dict[str, Any], output: Path, measure: PathLike | None
) -> tuple[SegmentOptions, tuple[str, ...], bool]:
    """:func:`segment`'s settings, the outputs asked for and whether instances are, after the
    refusals that need only them and the output: a bad or existing table, an unfinished store
    without ``resume`` — before any pass over the image, which can take minutes."""
    if measure is not None:  # a bad table name fails before the engine runs, not after
        from scopeml.errors import InvalidRequestError
        from scopeml.objects.table import table_format

        if not isinstance(measure, (str, os.PathLike)):  # measure=True, say: where to?
            raise InvalidRequestError(
                f"measure= takes the table's path (.csv/.parquet), not {measure!r}"
            )

        table_format(Path(measure))
    given["outputs"], given["channels"] = names_of(given["outputs"]), names_of(given["channels"])
    wanted = given["outputs"] or (options or SegmentOptions()).outputs
    want_instances = INSTANCES in wanted or measure is not None
    settings = _settings(options, given, want_instances)
    if measure is not None:  # a file of the user's is refused before the engine runs too
        check_measure_table(Path(measure), output, settings)
    _check_partial_first(output, settings)
    return settings, wanted, want_instances


def _after_engine(
    result: Segmentation,
    image: Any,
    instances: InstanceOptions | str | int | None,
    finished: bool,
    progress: Progress,
    steps: StepsAfter,
    log_stop: bool,
) -> None:
    """The steps of :func:`segment` after the engine published the store; a stop among them
    says (with ``log_stop``) how far it got and that ``resume=True`` finishes it, as a stop
    among the tiles does. A resumed store (``finished``) that lacks none is ``already_complete``."""
    result.already_complete = finished and not steps.missing()
    settings, extra, measure, tiffs = steps.settings, steps.extra, steps.measure, steps.tiffs
    want_instances = steps.want_instances
    try:  # a new store's instances were made before it was published (_staged_instances)
        made = want_instances and (not finished or make_instances(
            result, instances, settings, extra, finished, progress
        ))  # fmt: skip
        if settings.ome_tiff:  # those the engine did not write: the instances, any a stop left
            export_ome_tiffs(result.path, tiffs, remade=(INSTANCES,) if made else ())
        if measure is not None and (made or not Path(measure).exists()):
            overwrite = bool(settings.overwrite)
            _measure_table(result, image, settings.scene, measure, progress, overwrite,
                           settings.workers, steps.shape_features)  # fmt: skip
    except (KeyboardInterrupt, Cancelled) as err:
        if log_stop:
            missing = missing_text(steps.missing()) or "a step after them may not be done"
            _say_stopped_after_tiles(err, result.path, missing)
        raise


def _staged_instances(
    instances: Any,
    model: Model,
    settings: SegmentOptions,
    steps: StepsAfter,
    progress: Progress,
    log_stop: bool,
) -> Callable[[Path], None] | None:
    """The instances step the engine runs on the finished partial store before publishing it
    (and the removal of the outputs made only for them), so that the store appears whole; a
    stop among them leaves the partial store, said as a stop among the tiles is. A stopped
    run had published the store without its instances, which pipelines took as done."""
    if not steps.want_instances:
        return None

    def staged(partial: Path) -> None:
        store = Segmentation(partial, classes=model.spec.classes)
        try:
            make_instances(store, instances, settings, steps.extra, False, progress)
        except (KeyboardInterrupt, Cancelled) as err:
            if log_stop:
                missing = missing_text(steps.missing()) or "the instances are missing"
                _say_stopped_after_tiles(err, partial, missing)
            raise

    return staged


def _say_stopped_after_tiles(err: BaseException, store: Path, missing: str) -> None:
    """Say that a stop after the model's tiles kept them in ``store``, as the engine says a
    stop among them (:func:`~scopeml.tiling.engine.say_kept`)."""
    from scopeml.tiling.engine import say_kept

    kept = (f"the model's tiles are all written to {store}, but {missing}: run again with "
            "--resume (resume=True) to finish without running the model again")  # fmt: skip
    say_kept(err, kept, store)


def _check_partial_first(output: Path, settings: SegmentOptions) -> None:
    """An interrupted run's partial store, without ``resume`` or ``overwrite`` (or one in the
    way, or being written now), is refused before the image and model are opened; the engine
    compares a resumed one's record before its statistics pass."""
    from scopeml.tiling.store import check_partial

    if not output.exists():  # else the engine's output checks come first
        check_partial(output, resume=bool(settings.resume), overwrite=bool(settings.overwrite))


def _measure_table(
    result: Segmentation,
    image: Any,
    scene: int | None,
    measure: PathLike,
    progress: Progress,
    overwrite: bool,
    workers: int,
    shape_features: bool,
) -> None:
    """The objects table of the instances, against the pixels segmented: ``image`` is the
    caller's :class:`Image` or how the file was opened (a ``LoadRef``: its axes, every channel
    measured), of the chosen ``scene``; an existing file at ``measure`` is replaced only with
    ``overwrite``."""
    if isinstance(image, Image):
        intensities = image
    else:
        path, _, axes, _ = image.args
        intensities = _open_scene(path, scene, axes)
    if intensities.sizes["S"] > 1 and scene is not None:
        intensities = intensities.select_scene(scene)
    try:
        measure_objects(
            result,
            intensities,
            output=measure,
            overwrite=overwrite,
            progress=progress,
            workers=workers,
            shape_features=shape_features,
        )
    finally:
        if not isinstance(image, Image):
            intensities.close()


def _settings(
    options: SegmentOptions | None, given: dict[str, Any], want_instances: bool
) -> SegmentOptions:
    """``options`` with the keywords given; with instances wanted, the engine writes labels
    instead (the instances are made from them after its run)."""

    if given["outputs"] is not None:
        _check_outputs(given["outputs"])
    changes = {key: value for key, value in given.items() if value is not None}
    scheduler = changes.get("scheduler", (options or SegmentOptions()).scheduler)
    changes["scheduler"] = scheduler_address(scheduler)  # a Client or cluster: its address
    for key in ("tile_size", "halo"):
        if isinstance(changes.get(key), list):
            changes[key] = tuple(changes[key])
    wanted = tuple(changes.get("outputs", (options or SegmentOptions()).outputs))
    if want_instances:
        engine_outputs = tuple(name for name in wanted if name != INSTANCES)
        changes["outputs"] = engine_outputs + (() if "labels" in engine_outputs else ("labels",))
    return dataclasses.replace(options or SegmentOptions(), **changes)


def _check_outputs(outputs: Sequence[str], what: str = "outputs") -> None:
    """Refuse no outputs or an unknown one, naming all that ``segment`` and ``predict_region``
    make (the engine's and the instances made here after its run)."""
    from scopeml.tiling.options import OUTPUT_NAMES

    known = (*OUTPUT_NAMES, INSTANCES)
    unknown = [name for name in outputs if name not in known]
    if unknown or not outputs:
        from scopeml.errors import InvalidRequestError, close_matches, summarize

        classes = ", ".join(name for name in known if name != "image")
        said = f"unknown {what} {summarize(map(repr, unknown))}" if unknown else f"no {what}"
        meant = [m for name in unknown[:3] for m in close_matches(str(name), known, n=1)]
        near = f" (did you mean {', '.join(map(repr, meant))}?)" if meant else ""
        raise InvalidRequestError(
            f"{said}{near}; choose from {classes} (a Regression model's: image)"
        )


def _scene_of(image: Any, scene: int | str | None, axes: str | None) -> int | None:
    """A scene given by name (``"B2"``, as ``scopeml info`` lists a file's scenes) as its
    number in the file, once, so every later step reads that scene."""
    from scopeml.io.registry import named_scene, scene_given

    scene = scene_given(scene)
    if not isinstance(scene, str):
        return scene
    if isinstance(image, (str, os.PathLike)):
        from scopeml.io.registry import scene_numbered

        return scene_numbered(image, scene, axes=axes)
    names = getattr(image, "scene_names", ())  # an Image read from a file names its scenes
    if not names:
        raise InvalidRequestError(f"scene {scene!r}: this image names no scenes; give a number")
    number = named_scene([str(n) for n in names], scene, getattr(image, "path", None) or "image")
    opened = image.view()["scene"] if image.sizes["S"] == 1 else None  # one scene of its file
    if opened is not None and opened != number:  # the engine would run on the one it holds
        raise InvalidRequestError(
            f"scene {scene!r} is scene {number} of the file; this image is its scene {opened} "
            f"({names[opened]}): open that scene, or give the file",
            path=image.path,
        )
    return number


def _array_scene(image: Image, scene: int | None) -> Image:
    """An array's ``scene`` checked as a file's is (``scene=3`` of one scene was ignored)."""
    if scene is None or image.sizes["S"] > 1:
        return image  # several: the engine reads the one chosen
    return image.select_scene(scene)


def _input_image(
    image: PathLike | Image, settings: SegmentOptions, axes: str | None = None
) -> tuple[Image, Any]:
    """The image to segment (its scene and channels chosen) and, for a file, how engine
    workers reopen it: with the ``axes`` it was read with (checked letters, upper case)."""
    from scopeml.tiling.execute import LoadRef

    if isinstance(image, Image):
        refuse_axes_of_open(image, axes)
        if settings.channels is None:
            return image, None
        return image.select_channels(settings.channels), None
    if axes is not None:
        from scopeml.io.axes import check_axes_text

        axes = check_axes_text(axes)  # the letters as open_image takes them, before any work
    if not os.path.exists(image):  # named as given, before resolving takes a link's target
        from scopeml.errors import ImageNotFoundError, not_found

        raise ImageNotFoundError(not_found(image), path=image)
    path = str(Path(image).resolve())
    ref = LoadRef(_open_scene, (path, settings.scene, axes, settings.channels))
    return _open_scene(*ref.args), ref


#: The run-record key of the pixel sizes ``segment(pixel_size=...)`` gave axes the image's
#: file records none of (absent where it gave none): a resume must give the same.
PIXEL_SIZE_RECORD = "pixel_size"


def _calibrated_input(
    image: PathLike | Image, settings: SegmentOptions, axes: str | None, pixel_size: Any
) -> tuple[Image, Any, dict[str, float]]:
    """:func:`_input_image`, with ``pixel_size`` for the axes the file records no size of (a
    view: a caller's image keeps its own), and the sizes so taken from it. A bad size is
    refused before the image is opened."""
    given = None if pixel_size is None else _pixel_size_given(pixel_size)
    opened, ref = _input_image(image, settings, axes)
    if given is None:
        return opened, ref, {}
    sizes, sources = _taken_pixel_sizes(opened, opened.pixel_sizes, given)
    calibrated = copy.copy(opened)  # shares the reader (closed once) and the view
    calibrated.pixel_sizes = sizes
    return calibrated, ref, {a: sizes[a] for a, came in sources.items() if came == "pixel_size"}


def _taken_pixel_sizes(
    image: Image, found: dict[str, float], given: dict[str, float]
) -> tuple[dict[str, float], dict[str, str]]:
    """``image``'s pixel sizes: those ``found`` in its file, ``pixel_size=`` (``given``) for
    the axes it records none of, warning where they differ
    (:func:`~scopeml.pixel_size.resolve_pixel_sizes`); and where each came from."""
    import warnings

    from scopeml.errors import find_stack_level
    from scopeml.pixel_size import resolve_pixel_sizes

    sizes, sources, notes = resolve_pixel_sizes(
        found, given, name=image.path or "the image", stack=image.sizes["Z"] > 1,
        source="pixel_size", series=image.sizes["T"] > 1,
    )  # fmt: skip
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=find_stack_level())
    return sizes, sources


def _pixel_size_given(pixel_size: Any) -> dict[str, float]:
    """``pixel_size=`` by axis (:func:`~scopeml.pixel_size.parse_pixel_size`), a bad one
    refused as the argument's."""
    from scopeml.errors import InvalidRequestError
    from scopeml.pixel_size import parse_pixel_size

    try:
        return parse_pixel_size(pixel_size)
    except ValueError as err:
        raise InvalidRequestError(f"pixel_size {err}") from None


def _read_as(
    record: dict[str, Any] | None, image_ref: Any, taken: dict[str, float], image: Image
) -> Any:
    """The run record with how the image was read, where it matters to a resume and to
    measuring its objects: the axes a file was read with (``--axes``; an opened image's
    :attr:`~scopeml.io.image.Image.file_axes`) and the pixel sizes taken from ``pixel_size``."""
    axes = image.file_axes if image_ref is None else image_ref.args[2]
    if axes is not None:
        record = {**(record or {}), AXES_RECORD: axes}
    if taken:
        record = {**(record or {}), PIXEL_SIZE_RECORD: taken}
    return record


def _check_chosen_channels(
    source: PathLike | Image, opened: Image, model: Model, settings: SegmentOptions, axes: Any
) -> None:
    """Refuse channels the caller chose (``settings.channels``) that the model cannot take as
    many of, naming the choice and every channel of ``source``: the engine's check sees only
    the choice, and would point to ``--channels`` as if none had been chosen."""
    if settings.channels is None or opened.sizes["C"] == model.spec.in_channels:
        return
    from scopeml.errors import IncompatibleModelError
    from scopeml.tiling.model_inputs import chosen_channels_mismatch

    if isinstance(source, Image):
        names = source.channel_names
    else:  # reopened for its channel names only: the run stops here
        with contextlib.closing(open_image(source, scene=settings.scene, axes=axes)) as whole:
            names = whole.channel_names
    message = chosen_channels_mismatch(opened, model, settings.channels, names)
    raise IncompatibleModelError(message, path=opened.path)


def _pixel_model(model: PathLike | Model, settings: SegmentOptions) -> tuple[Model, Any]:
    """The pixel model to run (at the options' scale) and, for a file or name, how engine
    workers reopen it."""
    model_ref = None
    if isinstance(model, (str, os.PathLike)):
        from scopeml.model.registry import check_kind, resolve_model
        from scopeml.tiling.execute import LoadRef

        # Engine workers run tiles side by side: one runtime thread each uses the cores best.
        threads = 1 if settings.workers > 1 and settings.scheduler is None else None
        model_ref = LoadRef(open_model, (str(resolve_model(model).resolve()),))
        model = open_model(model_ref.args[0], workers=threads)
    if not isinstance(model, Model):
        from scopeml.errors import IncompatibleModelError

        if model_ref is not None:  # an object classifier's file: said by what it is
            check_kind(model_ref.args[0], ["object-classifier"], "a pixel model")

        raise IncompatibleModelError(
            f"{type(model).__name__} is no pixel model (no spec and predict); "
            "segment runs czann, legacy and pixel-classifier models",
            path=model_ref.args[0] if model_ref else None,
        )
    from scopeml.tiling.size import is_auto

    scale = None if is_auto(settings.scale) else settings.scale  # auto: chosen with the image
    return _scaled_model(model, model_ref, scale)


def _given_choice(scale: Any) -> tuple[Any, Any]:
    """``segment``'s ``scale`` as the choice an earlier estimate made (an ``AutoScale``, or
    ``None``) and the scale to run at (``"auto"`` for such a choice)."""
    from scopeml.tiling.size import AUTO

    return (scale, AUTO) if isinstance(scale, AutoScale) else (None, scale)


def _auto_scaled_model(
    image: Image,
    model: Model,
    model_ref: Any,
    settings: SegmentOptions,
    output: Path | None,
    given: Any = None,
) -> tuple[Model, Any, SegmentOptions, Any]:
    """With ``scale="auto"`` (or no scale and a model whose default it is, as the shipped
    ``nuclei``), the model at the factor chosen for ``image``
    (:func:`~scopeml.tiling.size.auto_scale`; a resumed run's recorded one, else the ``given``
    ``AutoScale`` of an estimate already made; no ``output``: no run to resume), how workers
    reopen it, the options with that factor, and the choice (an ``AutoScale``); else all
    unchanged and ``None``."""
    from scopeml.tiling.size import AutoScale, auto_scale, default_scale, is_auto
    from scopeml.tiling.store import recorded_run

    wanted = settings.scale if settings.scale is not None else default_scale(model)
    if not is_auto(wanted):
        return model, model_ref, settings, None
    record = recorded_run(output) if settings.resume and output is not None else None
    if settings.scale is None and record is not None and AUTO_RECORD not in record:
        return model, model_ref, settings, None  # a run from before auto was the default
    chosen = AutoScale.from_dict(record[AUTO_RECORD]) if record and AUTO_RECORD in record else None
    chosen = chosen or given
    if chosen is None:
        from scopeml.tiling.engine import check_compatible

        check_compatible(image, model)  # before the estimate: its warnings would come first
        scene = 0 if image.sizes["S"] == 1 else settings.scene or 0
        name = Path(model_ref.args[0]).name if model_ref is not None else None
        chosen = auto_scale(image, model, scene=scene, name=name, normalize=settings.normalize)
    settings = dataclasses.replace(settings, scale=chosen.scale)
    return (*_scaled_model(model, model_ref, chosen.scale), settings, chosen)


def _scaled_model(model: Model, model_ref: Any, scale: float | None) -> tuple[Model, Any]:
    """The model run at ``scale`` (see :mod:`scopeml.tiling.scale`), and how workers reopen it."""
    from scopeml.tiling.execute import LoadRef
    from scopeml.tiling.scale import open_scaled_model, with_scale

    scaled = with_scale(model, scale)
    if scaled is model or model_ref is None:
        return scaled, model_ref
    return scaled, LoadRef(open_scaled_model, (model_ref.args[0], float(scale)))


def _check_classes(model: Model, model_ref: Any, measure: PathLike | None) -> None:
    """Refuse instances (and a table of them) from a ``Regression`` model: its output is an
    image, with no classes to make objects of."""
    from scopeml.tiling.outputs import REGRESSION

    if model.spec.extra.get("model_type") == REGRESSION:
        from scopeml.errors import IncompatibleModelError

        asked = "measure table" if measure is not None else "instances"
        raise IncompatibleModelError(
            f"a Regression model writes an image, not classes to make objects of: it makes no "
            f"{asked}; segment its image with a model of classes (e.g. nuclei) for objects",
            path=model_ref.args[0] if model_ref else getattr(model, "path", None),
        )


def _instance_inputs(
    instances: InstanceOptions | str | int | None, model: Model, settings: SegmentOptions
) -> tuple[InstanceOptions, tuple[str, ...], dict[str, Any]]:
    """The instance options (checked against the model's classes), the outputs the engine
    must add for them (probabilities, to seed from, when a threshold is set) and what the
    store's run record says of them: the outputs the store ends with (the engine's, asked
    for, and the instances) and the instance options applied."""
    instances = instance_options(instances)  # "nucleus": the class to label
    _, grow_id = instances.resolve(model.spec.classes)
    record = {
        "outputs": [*settings.outputs, INSTANCES],
        INSTANCES: instances.record(model.spec.classes),
    }
    if grow_id is not None and instances.seed_threshold is not None:
        seeds = () if "probabilities" in settings.outputs else ("probabilities",)
        return instances, seeds, record
    return instances, (), record


def predict_region(
    image: PathLike | Image | np.ndarray,
    model: PathLike | Model,
    region: dict[str, tuple[int, int]] | None = None,
    *,
    outputs: str | Sequence[str] = "labels",
    options: SegmentOptions | None = None,
    normalization: Any = None,
    instances: InstanceOptions | str | int | None = None,
    output: str | None = None,
    axes: str | None = None,
    channels: Sequence[int | str] | int | str | None = None,
    scene: int | None = None,
    scale: float | str | AutoScale | None = None,
    extract_class: str | None = None,
    min_confidence: float | None = None,
    normalize: str | None = None,
    tile_size: int | Sequence[int] | None = None,
    progress: Progress = None,
) -> np.ndarray:
    """One output of :func:`segment` over ``region`` (or the whole image) as a numpy array,
    equal to what :func:`segment` writes there: the in-memory call, as ``cellpose``'s ``eval``.

    For previews, spot checks and images that fit in memory: the region is predicted with its
    halo and the whole image's normalisation, so no tile edge shows. ``region`` is
    ``{axis: (start, stop)}`` over ``Y``, ``X`` (and ``T``, ``Z``; any case; axes left out,
    or ``region=None``, are whole); an unknown axis or a span outside the image is refused.
    ``outputs`` is the one output kind, named as in :func:`segment`'s ``outputs=``:
    ``"labels"``, ``"probabilities"``, ``"confidence"``, ``"mask"`` or ``"instances"``;
    a Regression model's ``"image"`` (its default). The old ``output=`` still works, with a
    :class:`DeprecationWarning`, for one release (it is a path everywhere else). ``options``
    are the segment options to reproduce; ``channels``, ``scene``, ``scale``,
    ``extract_class``, ``min_confidence``, ``normalize`` and ``tile_size`` are
    :func:`segment`'s keywords, each in place of its option. ``scale`` defaults to the model's,
    as in :func:`segment`: ``"auto"`` (the shipped ``nuclei``) is chosen from the whole image
    at each call. Repeated calls on one image pass the choice once made (``segment``'s
    ``auto_scale``, or its number) and ``normalization`` from
    :func:`scopeml.predict.region_normalization` (of the channels the model reads).
    ``progress`` is :func:`segment`'s (a callable may cancel). Details:
    :func:`scopeml.predict.predict_region`.

    ``"instances"`` (one id per object, made as ``segment(..., outputs="instances")`` makes
    them, with ``instances`` as there) are of the whole image only: an object's id depends on
    every object before it, so a region's ids would differ from the store's. They are made in
    a temporary store, deleted on return. ``axes`` names a file's axes as :func:`segment`'s
    ``axes=`` does (``"TYX"``: a plain TIFF's pages as time points).

    Returns
    -------
    numpy.ndarray
        ``[T×][C×][Z×]Y×X`` over the region (axes of length one in the image dropped; ``C``
        for probabilities and a Regression model's image only): a ``Y×X`` label image for a
        plane.

    Examples
    --------
    >>> import numpy as np
    >>> from scopeml.model.spec import ModelSpec
    >>> class Threshold:
    ...     spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0))
    ...     def predict(self, batch):
    ...         fg = (batch > 5).astype(np.float32)
    ...         return np.concatenate([1 - fg, fg], axis=1)
    >>> image = Image(np.arange(100, dtype=np.uint8).reshape(1, 1, 1, 1, 10, 10) % 10)
    >>> predict_region(image, Threshold(), {"Y": (2, 3), "X": (4, 8)}).tolist()
    [[1, 1, 2, 2]]
    >>> plane = np.kron([[0, 9, 0, 9]], np.ones((3, 3), np.uint8))  # a Y×X array
    >>> predict_region(plane, Threshold(), outputs="instances")[0].tolist()  # objects of 9 px
    [0, 0, 0, 1, 1, 1, 0, 0, 0, 2, 2, 2]
    """
    from scopeml.predict import one_output
    from scopeml.predict import predict_region as predict

    kind = one_output(outputs, output)
    _check_outputs([kind], "output")
    chosen, scale = _given_choice(scale)  # an AutoScale: auto's factor chosen before
    given = {
        "channels": names_of(channels),
        "scene": scene,
        "scale": scale,
        "extract_class": extract_class,
        "min_confidence": min_confidence,
        "normalize": normalize,
        "tile_size": tile_size,
    }
    if any(value is not None for value in given.values()):  # segment's keywords
        options = _settings(options or SegmentOptions(workers=1), {"outputs": None, **given},
                            want_instances=False)  # fmt: skip
    if not isinstance(image, (str, os.PathLike, Image)):
        image, axes = _array_scene(image_of_array(image, axes), scene), None  # as segment
    if kind == INSTANCES:
        return _predict_instances(image, model, region, options, instances, axes, progress)
    if instances is not None:  # segment's instances= asks for them too; here one array comes
        raise InvalidRequestError(
            f"instances= says how instances are made; this call returns {kind}: ask "
            "outputs='instances' for them"
        )
    options = options or SegmentOptions(workers=1)
    source, _ = _input_image(image, options, axes)
    try:
        opened_model, ref = _pixel_model(model, dataclasses.replace(options, workers=1))
        opened_image, _, opened_model, _, options, _ = _fitted(
            image, source, None, opened_model, ref, options, axes, None, chosen
        )  # as segment: the channels trained on, the scale auto chooses
        return predict(
            opened_image,
            opened_model,
            region or {},
            outputs=kind,
            options=options,
            normalization=normalization,
            progress=progress,
        )
    finally:
        if not isinstance(image, Image):  # opened here; a caller's Image (or view) stays open
            source.close()


def _predict_instances(
    image: PathLike | Image,
    model: PathLike | Model,
    region: dict[str, tuple[int, int]] | None,
    options: SegmentOptions | None,
    instances: InstanceOptions | str | int | None,
    axes: str | None = None,
    progress: Progress = None,
) -> np.ndarray:
    """The ``instances`` of :func:`segment` over the whole image, through a temporary store
    (so they are the store's, exactly), as the ``[T×][Z×]Y×X`` array of the other outputs."""
    import tempfile

    from scopeml.errors import InvalidRequestError

    if region:
        raise InvalidRequestError(
            f"instances are made over the whole image only (an object's id depends on all "
            f"objects before it, so a region's ids would not be the store's); got region "
            f"{region}: call predict_region(image, model, outputs='instances') and slice it"
        )
    with tempfile.TemporaryDirectory(prefix="scopeml-instances-") as folder:
        store = Path(folder) / "instances.ome.zarr"
        seg = segment(image, model, store, options, outputs=(INSTANCES,), ome_tiff=False,
                      resume=False, overwrite=False, instances=instances, axes=axes,
                      progress=progress)  # fmt: skip
        found = seg.instances  # S = 1: segment runs one scene
        try:
            array = found.read()[0]  # T C Z Y X, C = 1
        finally:
            found.close()
    keep = [i for i, axis in enumerate("TCZYX") if axis in "YX" or array.shape[i] > 1]
    return array.reshape([array.shape[i] for i in keep])


def _open_scene(
    path: str,
    scene: int | None,
    axes: str | None = None,
    channels: tuple[int | str, ...] | None = None,
) -> Image:
    """A file as :func:`segment` reads it (a ``LoadRef``'s loader: the channels last, as
    :func:`~scopeml.tiling.model_inputs.fit_model_inputs` replaces them)."""
    image = open_image(path, scene=scene, axes=axes)
    return image if channels is None else image.select_channels(channels)


def train_pixel_classifier(
    image: PathLike | Image | np.ndarray | Sequence[PathLike | Image | np.ndarray],
    labels: PathLike | Image | np.ndarray | Sequence[PathLike | Image | np.ndarray],
    *,
    classes: Sequence[str] | None = None,
    colors: Sequence[str] | None = None,
    features: str = "basic25",
    n_estimators: int = 100,
    max_depth: int | None = None,
    min_samples_leaf: int = 1,
    seed: int = 0,
    workers: int | None = None,
    name: str = "pixel classifier",
    progress: Progress = None,
    axes: str | None = None,
    cache: FeatureCache | None = None,
    channels: Sequence[int | str] | int | str | None = None,
    scene: int | None = None,
) -> PixelClassifier:
    """Train a random-forest pixel classifier from sparse labels (0 unlabelled, 1..K classes).

    ``image`` and ``labels`` are files, ``Image`` objects or arrays (pixels as in
    :func:`segment`: ``Y×X``, ``C×Y×X``, ``C×Z×Y×X`` or ``S×T×C×Z×Y×X``; labels
    ``[Z×]Y×X``). An image with several scenes or time points trains on every one that has
    labels (the others are not read), with labels of the same sizes (an array:
    ``T×[Z×]Y×X``, ``S×T×[Z×]Y×X`` or 6-D). ``axes`` names the image's axes as
    :func:`segment`'s ``axes=`` does (``"TYX"``: an array's or a plain TIFF's planes are time
    points, each with its labels). ``colors`` (``"#rrggbb"`` per class, default a fixed
    palette) are kept with the classes in the saved container, for viewers to show them.
    A list of images with a list of as many label images trains one classifier on all of
    them, their channels alike (``scopeml pixel train A.tif A_labels.tif B.tif B_labels.tif``).
    ``channels`` (names or indices) and ``scene`` (a number) choose what of the image is
    trained on, as ``scopeml pixel train --channels/--scene`` do; the channels' names are kept
    with the classifier, so :func:`segment` reads the same ones of another image. The result
    is a :class:`~scopeml.model.spec.Model`: pass it to :func:`segment`, or ``.save()`` it.

    ``n_estimators``, ``max_depth`` (``None``: grown until pure), ``min_samples_leaf`` (the
    fewest pixels a leaf holds: larger smooths) and ``seed`` are the random forest's, with
    classes weighted alike however rare; ``workers`` threads compute features and fit trees
    (``None``: all cores; the classifier is the same whatever their number); ``name`` is the
    model name saved with it.

    ``progress`` (see :mod:`scopeml.progress`) gets stage ``features`` (the labelled blocks
    whose features are computed), then ``train`` (the trees fitted, a round of the threads at
    a time); a callback that raises :class:`~scopeml.errors.Cancelled` stops the call between
    two blocks or two rounds. ``cache`` (a :class:`~scopeml.pixel.FeatureCache`) keeps the
    features of the blocks it computes for the next training on the same pixels (interactive
    retraining: a 60×256×256 stack's next training with basic25 and 100 trees: 0.5 s against
    2.3–2.9 s).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((1, 16, 16), np.float32); image[:, 4:12, 4:12] = 10
    >>> scribbles = np.zeros((16, 16), np.uint8); scribbles[0, :] = 1; scribbles[8, 6:10] = 2
    >>> clf = train_pixel_classifier(image, scribbles, classes=["bg", "cell"],
    ...                              features="gaussian_smoothing:1", n_estimators=5)
    >>> clf.spec.classes, clf.predict(image[None]).argmax(1)[0, 8, 8].item()
    (('bg', 'cell'), 1)
    """
    from scopeml.pixel import train_classifier
    from scopeml.progress import as_progress

    report = as_progress(progress)

    import numpy as np

    several = isinstance(image, (list, tuple)) and all(
        isinstance(one, (str, os.PathLike, Image, np.ndarray)) for one in image
    )  # images, not one image as nested lists
    if isinstance(image, (list, tuple)) and not image:
        from scopeml.errors import InvalidImageError

        raise InvalidImageError("no images given to train on")
    if several and (not isinstance(labels, (list, tuple)) or len(labels) != len(image)):
        from scopeml.errors import InvalidLabelsError

        got = f"{len(labels)}" if isinstance(labels, (list, tuple)) else "one"
        raise InvalidLabelsError(f"{len(image)} images need as many label images; got {got}")
    with contextlib.ExitStack() as opened:  # files opened here are closed here
        pairs = [
            _training_pair(one, its, opened, axes=axes, scene=scene, channels=channels)
            for one, its in (zip(image, labels, strict=True) if several else [(image, labels)])
        ]
        images, targets = (list(side) for side in zip(*pairs, strict=True))
        return train_classifier(
            images if several else images[0],
            targets if several else targets[0],
            features=features,
            classes=classes,
            colors=colors,
            n_estimators=n_estimators,
            max_depth=max_depth,
            min_samples_leaf=min_samples_leaf,
            spatial_dims=3 if images[0].sizes["Z"] > 1 else 2,
            workers=workers,
            seed=seed,
            name=name,
            cache=cache,
            progress=report,
        )


def _training_pair(
    image: Any, labels: Any, opened: contextlib.ExitStack, *, axes: Any, scene: Any, channels: Any
) -> tuple[Image, Any]:
    """One image and its labels as ``train_classifier`` takes them: read by
    :func:`~scopeml.inputs.open_training_pair`, a series' labels checked against its sizes.
    Files opened are closed with ``opened``."""
    image, labels = open_training_pair(
        image, labels, opened, axes=axes, scene=scene, channels=channels
    )
    if image.sizes["S"] * image.sizes["T"] > 1 and isinstance(labels, (Image, Segmentation)):
        from scopeml.errors import InvalidLabelsError
        from scopeml.objects.images import check_same_sizes

        # train_classifier pairs the time points; it takes an array T×[Z×]Y×X as it is
        labels = _as_label_image(labels)
        check_same_sizes(image, labels, "labels", "the image", InvalidLabelsError)
    return image, labels


def _as_segmentation(source: Any) -> Any:
    """A :func:`segment` store given by its path as the :class:`Segmentation` it is (its
    labels and class names, not the first array found in it); any other source unchanged.
    Private: a caller with a store's path writes ``Segmentation(path)``; the label steps and
    the command line use this to accept either."""
    if source is None:
        from scopeml.errors import InvalidRequestError

        raise InvalidRequestError(
            "no objects given (None): give labels as an array, a label file or a segment store"
        )
    if isinstance(source, Segmentation):
        source.check_exists()
    elif isinstance(source, (str, os.PathLike)):
        from scopeml.io.stores import is_zarr_store

        if (Path(source) / "labels").is_dir() and is_zarr_store(source):
            found = Segmentation(source)
            if found.classes:  # the run record of segment, with the model's classes
                return found
    return source


def _as_label_image(source: LabelSource, axes: str | None = None) -> Image:
    """Any accepted label source as a 6-D ``Image`` (arrays: ``Y×X``, ``Z×Y×X`` or 6-D, or
    as ``axes`` name them, ``"TYX"`` say; a channel axis named there is an image's, not the
    labels')."""
    from scopeml.objects.images import array_image, open_labels

    if isinstance(source, Segmentation):
        return source.labels
    if isinstance(source, Image):
        return source
    if isinstance(source, (str, os.PathLike)):
        return open_labels(source)
    import numpy as np

    return array_image(np.asarray(source), None if axes is None else axes.upper().replace("C", ""))


def _classes_of(source: LabelSource) -> tuple[str, ...]:
    """Class names behind a label source: a Segmentation's, or those recorded in the store
    that an ``Image`` of ``labels`` came from, or in an OME-Zarr label image's ``image-label``
    mark; empty when unknown."""
    if isinstance(source, Segmentation):
        return source.classes
    path = getattr(source, "path", None) if isinstance(source, Image) else source
    if not isinstance(path, (str, os.PathLike)):
        return ()
    from scopeml.io.stores import is_zarr_store

    parent = Path(path).parent
    if Path(path).name == "labels" and is_zarr_store(parent):
        return Segmentation(parent).classes
    if is_zarr_store(path):  # a class label image that names its classes (post, paint)
        from scopeml.io.omezarr import label_classes

        names = label_classes(path) or label_classes(Path(path) / "0") or []  # 0: a scene
        classes = names and all(names) and len(set(names)) == len(names)  # not objects' kinds
        return tuple(names) if classes else ()
    return ()


def label_objects(
    labels: LabelSource,
    output: PathLike,
    *,
    class_: str | int | None = None,
    connectivity: int = 1,
    min_size: int = 0,
    max_size: int | None = None,
    remove_border: bool = False,
    split: bool = False,
    split_distance: int | None = None,
    split_h: float | None = None,
    tile_size: int | Sequence[int] | None = None,
    overwrite: bool = False,
    progress: Progress = None,
    axes: str | None = None,
) -> Image:
    """Instance labels (one id per object) of every scene and time point, as OME-Zarr.

    Parameters
    ----------
    labels
        Semantic labels or a mask: a :class:`Segmentation`, an ``Image``, an array or a file.
    output
        The ``.ome.zarr`` to write (axes ``[T][Z]YX`` and pixel sizes of the input).
    class_
        The class whose objects to label, by name (``"nucleus"``) or label value (``2``);
        ``None``: every non-zero pixel of a mask; of labels with class names, the one class
        that is neither background nor boundary (as ``InstanceOptions`` chooses it), if one.
    connectivity, min_size, max_size, remove_border, tile_size, overwrite, progress
        See :func:`scopeml.objects.images.label_image` (``min_size``/``max_size``: objects
        with fewer/more pixels are dropped, exactly whatever the tiling; ``remove_border``:
        those touching the image's edge in Y or X).
    split, split_distance, split_h
        Split touching objects by a distance-transform watershed, each object on its own
        (exact whatever the tiling; the size and border rules then judge the pieces): seeds
        at distance maxima at least ``split_distance`` pixels apart (default 5), or, with
        ``split_h``, at maxima at least that many pixels above the neck (the analysis
        settings' ``watershed_split`` with ``min_distance``/``h``); either implies ``split``.
    axes
        The axes of an array ``labels`` (``"TYX"``: frames, each labelled on its own);
        by default Y×X, Z×Y×X (one 3-D stack: objects join across its planes) or 6-D.

    Returns
    -------
    Image
        The instance labels, lazily opened; ids are unique across time points.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> semantic = np.array([[1, 2, 2, 1], [1, 1, 1, 1], [2, 1, 2, 2]])
    >>> objects = label_objects(semantic, f"{tempfile.mkdtemp()}/o.ome.zarr", class_=2)
    >>> objects.read()[0, 0, 0, 0].tolist()
    [[0, 1, 1, 0], [0, 0, 0, 0], [2, 0, 3, 3]]
    """
    from scopeml.objects.images import label_image

    if not isinstance(output, (str, os.PathLike)):
        from scopeml.errors import InvalidRequestError

        raise InvalidRequestError(
            "label_objects writes the objects into a store: give output= a path "
            "(objects.ome.zarr); for a small array in memory, skimage.measure.label labels it"
        )
    labels = _as_segmentation(labels)
    if isinstance(labels, (str, os.PathLike)) and not os.path.exists(labels):  # before --class
        from scopeml.errors import ImageNotFoundError, not_found

        raise ImageNotFoundError(not_found(labels), path=labels)
    class_id = None
    classes = _classes_of(labels)
    if class_ is None and classes:  # every pixel has a class there: one object of all of them
        from scopeml.errors import InvalidRequestError
        from scopeml.objects.instances import object_candidates

        objects = [classes[value - 1] for value in object_candidates(classes)]
        if len(objects) != 1:
            labelled = " (background too is a label)" if len(objects) < len(classes) else ""
            raise InvalidRequestError(
                f"these labels hold the classes {', '.join(classes)}{labelled}; choose the "
                "class to label with class_= (--class), by name or label value"
            )
        class_ = objects[0]
    if class_ is not None:
        if isinstance(class_, str) or classes:
            from scopeml.errors import InvalidRequestError

            if not classes:
                raise InvalidRequestError(
                    f"class {class_!r} given by name, but these labels carry no class names; "
                    "give the segment output store (it names its classes) or the label value"
                )
            class_id = label_value(classes, class_)
        else:
            class_id = int(class_)
    _warn_boundary_left_out(classes, class_id)
    return label_image(
        _as_label_image(labels, axes),
        output,
        class_id=class_id,
        connectivity=connectivity,
        min_size=min_size,
        max_size=max_size,
        remove_border=remove_border,
        split=_split_of(split, split_distance, split_h),
        tile_size=tile_size,
        overwrite=overwrite,
        progress=progress,
        require_class=not classes,  # plain labels: an absent value is a typo, not "0 objects"
    )


def filter_objects(
    objects: LabelSource,
    output: PathLike,
    *,
    min_size: int = 0,
    max_size: int | None = None,
    remove_border: bool = False,
    split: bool = False,
    split_distance: int | None = None,
    split_h: float | None = None,
    tile_size: int | Sequence[int] | None = None,
    overwrite: bool = False,
    progress: Progress = None,
    axes: str | None = None,
) -> Image:
    """Objects that are objects already (a segment store's instances, StarDist or cellpose
    labels), filtered as :func:`label_objects` filters (``min_size``, ``max_size``,
    ``remove_border``; ``split``: each split on its own), each kept apart however it touches
    the others (labelling them would join touching ones), ids renumbered ``1..n`` by their
    first pixels; out of core, exact whatever the tiling. CellProfiler's FilterObjects.

    Parameters
    ----------
    objects
        Instance labels: a :class:`Segmentation` (its instances), an ``Image``, an array or
        a file.
    output
        The ``.ome.zarr`` to write (axes and pixel sizes of the input).
    split_distance, split_h
        As for :func:`label_objects`: the watershed's seed spacing in pixels (default 5) or
        its neck height; either implies ``split``.
    tile_size, overwrite, progress
        The block size in pixels per spatial axis (memory, not the result); replace an
        existing ``output``; see :mod:`scopeml.progress`.
    axes
        The axes of an array ``objects`` (``"TYX"``: frames); by default Y×X, Z×Y×X or 6-D.

    Returns
    -------
    Image
        The filtered instance labels, lazily opened.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> cells = np.array([[1, 1, 2, 2], [0, 0, 2, 2], [0, 0, 0, 0], [0, 0, 0, 3]])
    >>> kept = filter_objects(cells, f"{tempfile.mkdtemp()}/o.ome.zarr", min_size=2)
    >>> kept.read()[0, 0, 0, 0].tolist()
    [[1, 1, 2, 2], [0, 0, 2, 2], [0, 0, 0, 0], [0, 0, 0, 0]]
    """
    from scopeml.objects.images import filter_image

    if isinstance(objects, (str, os.PathLike)) and not os.path.exists(objects):
        raise FileNotFoundError(2, "No such file or directory", os.fspath(objects))
    objects = _as_segmentation(objects)
    if isinstance(objects, Segmentation) and INSTANCES in objects.outputs:
        objects = objects.instances
    if _classes_of(objects):
        from scopeml.errors import InvalidRequestError

        raise InvalidRequestError(
            "these are class labels, not objects: label a class's objects with label_objects "
            "(objects label --class), which takes the same size, border and split rules"
        )
    return filter_image(
        _as_label_image(objects, axes), output, min_size=min_size, max_size=max_size,
        remove_border=remove_border, split=_split_of(split, split_distance, split_h),
        tile_size=tile_size, overwrite=overwrite, progress=progress,
    )  # fmt: skip


def _warn_boundary_left_out(classes: Sequence[str], class_id: int | None) -> None:
    """Labelling one class of a model that splits its objects at a boundary class leaves the
    ring out: touching nuclei stay joined and each is smaller (BBBC007: areas 40 % short), as
    the analysis settings warn of ``kind: model``."""
    import warnings

    from scopeml.errors import find_stack_level
    from scopeml.objects.instances import BOUNDARY_NAMES

    boundary = next((i for i, n in enumerate(classes, 1) if n in BOUNDARY_NAMES), None)
    if boundary is None or class_id is None or class_id == boundary:
        return
    warnings.warn(
        f"labelling the {classes[class_id - 1]} pixels alone: touching objects stay joined and "
        f"each lacks the {classes[boundary - 1]} ring around it; segment --outputs instances "
        "(outputs=('labels', 'instances')) gives the objects the model splits at its "
        f"{classes[boundary - 1]} class",
        UserWarning,
        stacklevel=find_stack_level(),
    )


def _split_of(split: bool, distance: int | None, h: float | None) -> Any:
    """``label_objects``' split, as ``--split``, ``--split-distance``, ``--split-h`` take it:
    a distance or an ``h`` given splits too (``split_h=2`` alone split nothing)."""
    from scopeml.errors import InvalidRequestError
    from scopeml.objects.split import Split

    if not isinstance(split, bool):
        raise InvalidRequestError(f"split must be True or False; got {split!r}")
    if not (split or distance is not None or h is not None):
        return None
    if distance is not None and h is not None:
        raise InvalidRequestError(
            "give a split distance or a split h, not both (h chooses the seeds alone)"
        )
    return Split(5 if distance is None else distance, h)


@overload
def measure_objects(
    objects: LabelSource,
    image: PathLike | Image | np.ndarray | None = None,
    *,
    pixel_size: PixelSize | None = None,
    pixel_sizes: dict[str, float] | None = None,
    shape_features: bool = True,
    tile_size: int | Sequence[int] | None = None,
    output: None = None,
    overwrite: bool = False,
    progress: Progress = None,
    axes: str | None = None,
    workers: int = 2,
) -> pd.DataFrame: ...


@overload
def measure_objects(
    objects: LabelSource,
    image: PathLike | Image | np.ndarray | None = None,
    *,
    pixel_size: PixelSize | None = None,
    pixel_sizes: dict[str, float] | None = None,
    shape_features: bool = True,
    tile_size: int | Sequence[int] | None = None,
    output: PathLike,
    overwrite: bool = False,
    progress: Progress = None,
    axes: str | None = None,
    workers: int = 2,
) -> Path: ...


def measure_objects(
    objects: LabelSource,
    image: PathLike | Image | np.ndarray | None = None,
    *,
    pixel_size: PixelSize | None = None,
    pixel_sizes: dict[str, float] | None = None,
    shape_features: bool = True,
    tile_size: int | Sequence[int] | None = None,
    output: PathLike | None = None,
    overwrite: bool = False,
    progress: Progress = None,
    axes: str | None = None,
    workers: int = 2,
) -> pd.DataFrame | Path:
    """Measure every object; one row per object per time point (columns ``t``, and ``scene``
    where there are several, then ``label``, shape, position and per-channel intensities).

    ``objects`` are instance labels (from :func:`label_objects`, a :class:`Segmentation`
    with an ``instances`` output, or any label source);
    ``image`` the intensities (a file, an ``Image``, or an array shaped like the labels, with an
    optional leading channel axis). ``pixel_size`` (µm per pixel, as :func:`segment` takes it:
    one number, ``"Y,X"``, ``"Z,Y,X"`` or by axis) gives the axes the files record no size of
    (a file's own is kept, with a warning where they differ) and so the ``_um`` columns;
    ``pixel_sizes`` (by axis only: the older way) replaces the files' sizes.
    ``axes`` are those of ``image``'s file, as :func:`~scopeml.io.open_image` takes them; by
    default, for the very file (path and content) that the :class:`Segmentation` ``objects``
    came from, the axes its run read it with (``segment(..., axes="TYX")``), else the file's
    own; that file is also read of the scene its run read (``segment(..., scene=1)``), so
    the table is the one ``segment(..., measure=...)`` wrote. Without ``image`` such objects
    (a store, or one ``label_objects``/``filter_objects`` made from it) are measured on that
    file while it is unchanged, as ``scopeml objects measure`` does; other objects, and
    objects whose file changed, for their shapes only. ``axes`` also name the axes of
    arrays: ``objects`` (``"TYX"``: a stack of frames, each labelled on its own, not a Z
    stack) and ``image`` (the same, or with a leading channel).
    Without ``output`` the table is returned as a ``pandas.DataFrame``, sorted by scene, time
    point and ``label``. With ``output`` (``.csv``/``.parquet``) rows are streamed there and
    the path is returned, in the same order where a plane has at most 65,536 objects (held to
    be sorted), else in tile order; an existing file there is refused before any work
    unless ``overwrite=True``. ``workers`` tiles are measured at once (threads); the table is
    the same whatever their number. ``shape_features=False`` leaves out the costly outline
    columns (perimeter, circularity, convex area, solidity, Feret diameters); ``tile_size``
    (pixels per spatial axis) bounds memory, not the table; ``progress`` (see
    :mod:`scopeml.progress`) gets stages ``find objects`` and ``measure``.

    Returns
    -------
    pandas.DataFrame or Path
        The table, or ``output`` when given.

    Examples
    --------
    >>> import numpy as np
    >>> objects = np.array([[1, 1, 0], [0, 0, 2]])
    >>> measure_objects(objects, np.array([[4, 6, 0], [0, 0, 9]]))[
    ...     ["t", "label", "area", "intensity_mean_C0"]].values.tolist()
    [[0.0, 1.0, 2.0, 5.0], [0.0, 2.0, 1.0, 9.0]]
    """
    from scopeml.io.image import axis_keys
    from scopeml.objects.images import measure_image

    if pixel_size is not None and pixel_sizes is not None:
        from scopeml.errors import InvalidRequestError

        raise InvalidRequestError("give pixel_size or pixel_sizes, not both")
    given = None if pixel_size is None else _pixel_size_given(pixel_size)  # before any work
    if isinstance(pixel_sizes, Mapping):  # "y" is Y, "W" no axis
        letters = axis_keys(pixel_sizes, "ZYX", "pixel_sizes")
        pixel_sizes = {letters[key]: size for key, size in pixel_sizes.items()}
    elif pixel_sizes is not None:
        pixel_sizes = _pixel_size_given(pixel_sizes)
    if output is not None:  # before opening or measuring anything
        from scopeml.objects.table import check_table_output

        check_table_output(output, overwrite=overwrite)
    objects = _as_segmentation(objects)
    run = _run_read(objects)  # how its segment run read its image file: axes told, scene
    if isinstance(objects, Segmentation) and INSTANCES in objects.outputs:
        objects = objects.instances
    elif isinstance(objects, Segmentation) and INSTANCES in _outputs_asked(objects.path):
        from scopeml.errors import InvalidRequestError

        raise InvalidRequestError(
            "the segment run that wrote this store stopped before its instances: run it "
            "again with --resume (resume=True) to make them",
            path=objects.path,
        )
    if _classes_of(objects):  # class labels: each class would be measured as one "object"
        from scopeml.errors import InvalidRequestError

        raise InvalidRequestError(
            "these are class labels, not objects: label a class's objects first "
            "(label_objects(..., class_=...), scopeml objects label --class) or segment with "
            "outputs=('labels', 'instances')"
        )
    labels = _as_label_image(objects, axes)
    frames = axes is None and getattr(objects, "ndim", 0) == 3 and _warn_if_frames(objects)
    intensities = _intensities(image, labels, axes, run)
    if given is not None:  # as segment takes it: the files' own sizes kept
        read = labels if intensities is None else intensities
        found = labels.pixel_sizes or read.pixel_sizes
        pixel_sizes = _taken_pixel_sizes(read, dict(found), given)[0]
    with warnings.catch_warnings():
        if frames:  # frames joined as a Z stack: said above, not as "no mask" (they are masks)
            warnings.filterwarnings("ignore", message=r".*cover the image .* times over")
        return measure_image(labels, intensities, pixel_sizes=pixel_sizes,
                             shape_features=shape_features, tile_size=tile_size, output=output,
                             overwrite=overwrite, progress=progress, workers=workers)  # fmt: skip


def _warn_if_frames(labels: Any) -> bool:
    """Warn when a 3-D label array, read as a Z stack, looks like the masks of a time series'
    frames: ids that recur on neighbouring planes without overlapping there (cellpose and
    StarDist number each frame's objects from 1), where a Z stack's objects overlap plane to
    plane; or objects over objects on neighbouring planes without an id on both (scopeml's
    instances of a time series number on from frame to frame; a sparse ground truth of
    planes apart is a Z stack). Measured as a Z stack they would be joined across frames, or
    measured as one-plane volumes."""
    import itertools

    import numpy as np

    from scopeml.errors import find_stack_level

    labels = np.asarray(labels)
    recurring = overlapping = touching = 0
    for above, below in itertools.pairwise(labels):
        shared = np.intersect1d(above[above > 0], below[below > 0])
        recurring += shared.size
        overlapping += np.intersect1d(shared, above[(above == below) & (above > 0)]).size
        touching += bool(((above > 0) & (below > 0)).any())  # objects over objects
    if recurring >= 4 and overlapping < recurring / 2:
        warnings.warn(
            f"the {labels.shape[0]} planes of this 3-D label array are read as Z (a Z stack: "
            f"objects of one id span planes), but {recurring - overlapping} of its ids recur on "
            "neighbouring planes without overlapping there, as per-frame masks do: if the "
            "planes are time points, pass axes='TYX'",
            UserWarning,
            stacklevel=find_stack_level(),
        )
        return True
    if recurring == 0 and touching:  # objects on neighbouring planes, no id on both
        warnings.warn(
            f"the {labels.shape[0]} planes of this 3-D label array are read as Z (a Z stack: "
            "objects of one id span planes), but no id lies on two neighbouring planes, as in "
            "a time series' objects: if the planes are time points, pass axes='TYX'",
            UserWarning,
            stacklevel=find_stack_level(),
        )
        return True
    return False


def _outputs_asked(store: Path) -> list[str]:
    """The outputs the segment run that wrote ``store`` was asked for, as it recorded them."""
    from scopeml.tiling.store import recorded_run

    return [str(n) for n in ((recorded_run(store) or {}).get("options") or {}).get("outputs") or ()]


def _run_read(objects: Any) -> RunRead | None:
    """How the segment run that made the store ``objects`` read its image file (its axes as
    told, its scene), or the record a label store carried from it; ``None`` for others."""
    if isinstance(objects, Segmentation):
        return run_read(objects.path)
    place = objects.path if isinstance(objects, Image) else objects  # an opened label store
    return run_read_near(place) if isinstance(place, (str, os.PathLike)) else None


def _intensities(image: Any, labels: Image, axes: str | None, run: RunRead | None) -> Any:
    """The intensities ``measure_objects`` measures (``None``: shapes only): ``image`` as
    given, or without it the file the objects' run read while unchanged (as ``objects
    measure``); complex pixels refused in one clear error, not a cast's TypeError."""
    if image is None:
        intensities = None if run is None else _run_intensities(run, labels)
    elif isinstance(image, (str, os.PathLike)):
        intensities = _intensity_file(image, labels, axes, run)
    else:
        intensities = image if isinstance(image, Image) else _intensity_image(image, labels, axes)
    if intensities is not None:
        from scopeml.tiling.engine import check_pixel_values

        check_pixel_values(intensities)
    return intensities


def _run_intensities(run: RunRead, labels: Image) -> Image | None:
    """The file the objects' run read, while unchanged, read as that run read it; ``None``
    (shapes only, with a warning) where it is gone or changed, or its sizes are not the
    objects' (a store recorded before runs kept the axes an opened image was read with: the
    file's own axes differ)."""
    import warnings

    from scopeml.errors import InvalidImageError, find_stack_level
    from scopeml.objects.images import check_same_sizes

    path = run.unchanged_file()
    if path is None:
        from scopeml.tiling.identity import field_files

        recorded = run.image.get("path")
        said = (  # a file gone or changed, or an array: nothing to read again
            f"{recorded}: gone or changed since the run that made the objects"
            if isinstance(recorded, str)
            else "the run that made the objects read an array, not a file"
        )
        if files := field_files(run.image.get("content")):  # a field of files, not one
            said = (f"the run that made the objects read a field of {files} channel files "
                    f"({recorded} first), not one file")  # fmt: skip
        warnings.warn(
            f"{said}; measured for their shapes only: give the image (--image, image=) for "
            "intensities",
            UserWarning,
            stacklevel=find_stack_level(),
        )
        return None
    intensities = _intensity_file(path, labels, None, run)
    try:
        check_same_sizes(labels, intensities, "image", "labels", InvalidImageError)
    except InvalidImageError as err:
        intensities.close()
        warnings.warn(f"{err}; measured for their shapes only: pass image= (and axes=) for "
                      "intensities", UserWarning, stacklevel=find_stack_level())  # fmt: skip
        return None
    return intensities


def _intensity_file(path: PathLike, labels: Image, axes: str | None, run: RunRead | None) -> Image:
    """The intensities of ``path``, read with ``axes``; when ``path`` is the very file the
    ``run`` that made the objects read (:meth:`RunRead.reads`), of the scene it read and,
    without ``axes``, with the axes it was told. Sizes unlike the labels' name the axes that
    run named."""
    from scopeml.errors import InvalidImageError
    from scopeml.objects.images import check_same_sizes
    from scopeml.tiling.store import image_place

    same = run is not None and run.reads(path)
    if axes is None and same:
        axes = run.axes
    intensities = open_image(path, axes=axes, scene=run.scene if same else None)
    if run is not None and run.axes is not None and axes != run.axes:  # read otherwise
        try:
            check_same_sizes(
                labels, intensities, "image", "labels", InvalidImageError, hint=False
            )  # fmt: skip (the run's axes are said below)
        except InvalidImageError as err:
            intensities.close()
            if any(labels.sizes[a] != intensities.sizes[a] for a in "YX"):
                raise  # planes of another size: another image, no axes to advise
            told, place = run.axes, image_place(run.image) or "its image"
            raise InvalidImageError(
                f"{err.problem}; the segment run of these objects read {place} with axes "
                f"{told}: pass --axes {told} (axes={told!r})",
                path=err.path,
            ) from err
    return intensities


def _intensity_image(array: Any, labels: Image, axes: str | None = None) -> Image:
    """An intensity array shaped like the labels, with or without a leading channel axis, or
    a trailing one where the rest is the labels' shape (an RGB picture, Y×X×3: the labels tell
    its layout, as no guess could); or as ``axes`` name it."""
    import numpy as np

    from scopeml.objects.images import array_image

    array = np.asarray(array)
    if axes is not None:
        named = axes.upper()
        return array_image(array, "C" + named if array.ndim == len(named) + 1 else named)
    spatial = "ZYX" if labels.sizes["Z"] > 1 else "YX"
    shape = tuple(labels.sizes[a] for a in spatial)
    if array.ndim == len(spatial) + 1 and array.shape[:-1] == shape != array.shape[1:]:
        return array_image(array, spatial + "C")
    axes = {len(spatial): spatial, len(spatial) + 1: "C" + spatial, 6: None}.get(array.ndim, "")
    if axes == "":  # not the labels' layout (array_image would list its own, other rules)
        from scopeml.errors import InvalidImageError

        named = "×".join(spatial)
        raise InvalidImageError(
            f"an intensity array of shape {array.shape} for {len(spatial)}-D labels; expected "
            f"{named} or C×{named} (shaped like the labels) or S×T×C×Z×Y×X"
        )
    return array_image(array, axes)


def train_object_classifier(
    table: pd.DataFrame | PathLike,
    class_column: str,
    *,
    features: Sequence[str] | None = None,
    n_estimators: int = 100,
    max_depth: int | None = None,
    seed: int = 0,
    workers: int | None = None,
) -> ObjectClassifier:
    """Train an object classifier on a measurement table's annotated rows (empty class: skipped).

    ``table`` may be a ``.csv``/``.parquet`` file; ``class_column`` names the column that
    holds each annotated row's class. ``features`` are the columns to learn from; by default
    the numeric columns that describe an object whichever way it is turned
    (:func:`scopeml.objects.classifier.default_features`): not its position or id (``label``,
    ``t``, ``scene``, ``bbox-*``, ``centroid*``, ``parent*``), not ``orientation``,
    ``moments_central-*`` or ``extent``, not a previous ``*_probability``, and a size in
    pixels left out where the table has it in µm. ``n_estimators``, ``max_depth`` (``None``:
    grown until pure) and ``seed`` are the random forest's; ``workers`` its threads
    (``None``: one; the forest is the same whatever their number).

    Returns
    -------
    ObjectClassifier
        Pass it to :func:`classify_objects`, or ``.save()`` it.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"area": [10, 12, 50, 55], "kind": ["s", "s", "L", "L"]})
    >>> train_object_classifier(table, "kind", n_estimators=5).classes
    ('L', 's')
    """
    from scopeml.objects.classifier import train_object_classifier as train

    return train(
        _as_table(table),
        class_column,
        features=features,
        n_estimators=n_estimators,
        max_depth=max_depth,
        seed=seed,
        workers=workers,
    )


def classify_objects(
    objects: pd.DataFrame | LabelSource,
    classifier: ObjectClassifier | PathLike,
    *,
    image: PathLike | Image | np.ndarray | None = None,
    column: str = "class",
    output: PathLike | None = None,
    overwrite: bool = False,
    progress: Progress = None,
    pixel_size: PixelSize | None = None,
    axes: str | None = None,
) -> pd.DataFrame:
    """Classify objects: add the predicted class (``column``) and its probability.

    ``objects`` is a measurement table (a DataFrame or a ``.csv``/``.parquet`` file), or
    instance labels (from :func:`label_objects`: an ``Image``, array, file or
    :class:`Segmentation`), which are then measured first, with ``image`` for intensities
    and ``pixel_size`` and ``axes`` as :func:`measure_objects` takes them (a classifier
    trained on µm features needs the same pixel size).
    ``classifier`` is an :class:`~scopeml.objects.ObjectClassifier` or its file; with
    ``output`` the table is also written there (``.csv``/``.parquet``; an existing file is
    refused before any work unless ``overwrite=True``).

    Returns
    -------
    pandas.DataFrame
        The table (measured, for labels) with ``column`` and ``{column}_probability`` added.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> table = pd.DataFrame({"area": [1, 2, 8, 9], "kind": ["s", "s", "L", "L"]})
    >>> clf = train_object_classifier(table, "kind", n_estimators=5)
    >>> classify_objects(pd.DataFrame({"area": [1, 9]}), clf)["class"].tolist()
    ['s', 'L']
    >>> classify_objects(np.array([[1, 0, 2, 2, 2, 2, 2, 2, 2]]), clf)[["label", "class"]].values
    array([[1, 's'],
           [2, 'L']], dtype=object)
    """
    from scopeml.errors import InvalidRequestError
    from scopeml.objects.classifier import ObjectClassifier
    from scopeml.objects.table import check_table_output, write_table

    if output is not None:
        check_table_output(output, overwrite=overwrite)
    model = open_model(classifier) if isinstance(classifier, (str, os.PathLike)) else classifier
    if not isinstance(model, ObjectClassifier):
        swapped = isinstance(objects, ObjectClassifier)
        raise InvalidRequestError(
            f"{type(model).__name__} is not an object classifier"
            + (" (the objects come first, then the classifier)" if swapped else ""),
            path=str(classifier) if isinstance(classifier, (str, os.PathLike)) else None,
        )
    if _is_table(objects):
        if pixel_size is not None or axes is not None:
            raise InvalidRequestError(
                "pixel_size= and axes= are for instance labels measured here; a table is "
                "measured already"
            )
        table = _as_table(objects)
    else:
        table = measure_objects(objects, image, progress=progress, pixel_size=pixel_size, axes=axes)
    result = model.classify(table, column=column)
    if output is not None:
        write_table(result, output, overwrite=overwrite)
    return result


def paint_objects(
    objects: LabelSource,
    table: pd.DataFrame | PathLike,
    output: PathLike,
    *,
    column: str | None = None,
    classes: Sequence[str] | None = None,
    tile_size: int | None = None,
    overwrite: bool = False,
    progress: Progress = None,
    axes: str | None = None,
) -> Image:
    """Paint each object by its class in ``table`` into a class label image at ``output`` (an
    ``.ome.zarr``): ZEN's picture of an object classification, CellProfiler's
    ConvertObjectsToImage; viewers colour it by class, :func:`label_objects` takes a class's
    objects from it by name.

    ``objects`` are the instance labels the table was measured from; ``table`` (a DataFrame
    or a ``.csv``/``.parquet`` file) has their ids (``label``, an analysis's ``object_id``),
    the class ``column`` (default ``object_class``, an analysis's, else ``class``,
    :func:`classify_objects`'s), and ``t`` and ``scene`` where the labels have several.
    Class ``k`` of ``classes`` (default the table's names, sorted) is painted as ``k``, then
    ``unclassified`` for rows without a class; objects not in the table stay 0 (warned).
    Out of core, block by block; an existing ``output`` is refused unless ``overwrite``.

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd
    >>> cells = np.array([[1, 1, 0, 2], [0, 0, 0, 2]])
    >>> table = pd.DataFrame({"label": [1, 2], "class": ["round", "long"]})
    >>> painted = paint_objects(cells, table, f"{tempfile.mkdtemp()}/c.ome.zarr")
    >>> painted.read()[0, 0, 0, 0].tolist()
    [[2, 2, 0, 1], [0, 0, 0, 1]]
    """
    from scopeml.objects.paint import paint_image

    if isinstance(objects, (str, os.PathLike)) and not os.path.exists(objects):
        raise FileNotFoundError(2, "No such file or directory", os.fspath(objects))
    objects = _as_segmentation(objects)
    if isinstance(objects, Segmentation) and INSTANCES in objects.outputs:
        objects = objects.instances
    if _classes_of(objects):  # each class would be painted as one "object"
        from scopeml.errors import InvalidRequestError

        raise InvalidRequestError(
            "these are class labels, not objects: paint the objects their table was measured "
            "from (label_objects / objects label --class, or segment with instances)"
        )
    path = table if isinstance(table, (str, os.PathLike)) else None
    if path is not None:  # an analysis's names as text: image 001 is not 1
        from scopeml.analysis.report import TEXT_COLUMNS
        from scopeml.objects.table import read_table

        table = read_table(path, text=TEXT_COLUMNS)
    return paint_image(
        _as_label_image(objects, axes), _as_table(table), output, column=column,
        classes=classes, tile_size=tile_size, overwrite=overwrite, progress=progress,
        table_path=path,
    )  # fmt: skip


def _is_table(source: Any) -> bool:
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return True
    from scopeml.objects.table import TABLE_SUFFIXES

    suffix = Path(source).suffix.lower() if isinstance(source, (str, os.PathLike)) else ""
    return suffix in TABLE_SUFFIXES


def _as_table(table: pd.DataFrame | PathLike) -> pd.DataFrame:
    if isinstance(table, (str, os.PathLike)):
        from scopeml.objects.table import read_table

        return read_table(table)
    return table
