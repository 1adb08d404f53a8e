"""``scopeml segment IMAGE --model MODEL -o OUT.ome.zarr``."""

from __future__ import annotations

from pathlib import Path

import typer

from scopeml.cli.model import TIME_BUDGET_HELP
from scopeml.errors import InvalidRequestError
from scopeml.io.axes import AXES_HELP


def _sizes(text: str | None, name: str) -> int | tuple[int, ...] | None:
    """``"512"`` → 512, ``"32,256,256"`` → (32, 256, 256)."""
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError as err:
        raise InvalidRequestError(f"--{name} takes N or N,N[,N]; got {text!r}") from err
    return values[0] if len(values) == 1 else values


def _class(text: str) -> str | int:
    """A class by name, or by label value when the text is a number."""
    return int(text) if text.strip().isdigit() else text.strip()


def _threshold(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError as err:
        raise InvalidRequestError(f"--seed-threshold takes a number or none; got {text!r}") from err


def _renamed_class(class_: str | None, old: str | None) -> str | None:
    """``--class``, or the deprecated ``--instance-class`` (with a warning on stderr)."""
    if old is None:
        return class_
    if class_ is not None:
        raise InvalidRequestError("give --class only (--instance-class is its old name)")
    typer.echo(
        "warning: --instance-class is renamed --class; the old name goes in the next release",
        err=True,
    )
    return old


def parse_scale(text: str | None) -> float | str | None:
    """``"auto"``, ``"0.5"`` or ``"1/3"`` → ``"auto"``, 0.5, 0.333…; a bad value is an error
    of the option (``error: --scale: …``), not of the image."""
    from fractions import Fraction

    from scopeml.tiling.scale import run_factor

    if text is None or text.strip().lower() == "auto":
        return None if text is None else "auto"
    try:
        factor = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError) as err:
        raise InvalidRequestError(
            f"takes a number (0.5, 1/3) or auto; got {text!r}", path="--scale"
        ) from err
    try:  # the range a run accepts, checked before any file is read
        return run_factor(factor)  # as it runs: 0.13 runs (and is said and recorded) as 1/8
    except InvalidRequestError as err:
        raise InvalidRequestError(err.problem.removeprefix("scale "), path="--scale") from err


def segment(
    image: Path = typer.Argument(
        ..., help="Image to segment (CZI, OME-TIFF, OME-Zarr, TIFF, PNG)."
    ),
    model: Path = typer.Option(
        ..., "--model", "-m", help="Model file (.czann, …) or built-in name (nuclei)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Output store (OUT.ome.zarr)."),
    outputs: str = typer.Option(
        "labels",
        help="Comma-separated: labels, probabilities, confidence, mask, instances (objects "
        "split at the model's boundary class, from the labels).",
    ),
    tile_size: str | None = typer.Option(
        None,
        help="Core tile size: N, or one per spatial axis (Z,Y,X). "
        "Default 512, or eight halos where more, up to 2048 (3-D: 128). Results are the "
        "same at any size; a small one only costs time (each tile reads its halo again).",
    ),
    halo: str | None = typer.Option(
        None, help="Halo per side, N or per axis; default: the model's own."
    ),
    batch_size: int = typer.Option(
        1, help="Tiles per runtime call (1 is fastest and leanest on CPU)."
    ),
    workers: int = typer.Option(
        2, help="Local worker threads (one shared model session); -1: one per core."
    ),
    scheduler: str | None = typer.Option(
        None, help="dask.distributed scheduler address (tcp://host:8786); default: local."
    ),
    min_confidence: float | None = typer.Option(
        None, help="Pixels below this maximum probability become unclassified (label 0)."
    ),
    extract_class: str | None = typer.Option(
        None, help="Also write a binary mask (output 'mask') of this class."
    ),
    blend: bool = typer.Option(False, help="Blend overlapping Gaussian-weighted windows."),
    normalize: str | None = typer.Option(
        None,
        help="none (raw values), meanstd, or percentile:LOW,HIGH (global); default: the "
        "policy the model records (the nuclei model: percentile:1,99.8), else none. Add 'per "
        "time point' (or give it alone: the model's policy) for each time point's own "
        "statistics.",
    ),
    probability_dtype: str = typer.Option("float32", help="float32, float16 or uint8."),
    scene: str | None = typer.Option(
        None, help="Scene of a multi-scene image: its number, or its name as scopeml info lists it."
    ),
    axes: str | None = typer.Option(None, "--axes", help=AXES_HELP),
    channels: str | None = typer.Option(
        None, help="Image channels fed to the model, by name or index, e.g. DAPI or 0,2."
    ),
    scale: str | None = typer.Option(
        None,
        help="Magnify the image by this factor for the model (2: objects half the size it "
        "was trained on; 0.5 or 1/2: twice); outputs keep the image's grid. auto: estimate "
        "the objects' size and bring it to the model's (models that record one; the default "
        "for nuclei; --scale 1 turns it off).",
    ),
    resume: bool = typer.Option(False, help="Continue an interrupted run from its partial output."),
    overwrite: bool = typer.Option(False, help="Replace an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ome_tiff: bool = typer.Option(False, help="Also write each output as OUT.<name>.ome.tiff."),
    time_budget: float | None = typer.Option(
        None, "--time-budget", help=TIME_BUDGET_HELP, metavar="SECONDS"
    ),
    measure: Path | None = typer.Option(
        None,
        help="Also write the objects table (.csv/.parquet) of the instances; adds instances "
        "to --outputs when they are not named there.",
    ),
    shape_features: bool = typer.Option(
        True, help="Perimeter, convex hull, Feret diameters in the --measure table (slower)."
    ),
    pixel_size: str | None = typer.Option(
        None,
        "--pixel-size",
        metavar="SIZE",
        help="Micrometres per pixel for an image whose file records none (plain TIFF, PNG): "
        "one number for every axis, or Y,X, or Z,Y,X for a Z stack with another Z step. The "
        "outputs record it, so the --measure table (and objects measure of the store) has µm "
        "columns; a file's own size is kept (a warning where it differs).",
    ),
    class_: str | None = typer.Option(
        None,
        "--class",
        help="Class of the instances, by name or label value; default: the one class "
        "that is neither background nor boundary.",
    ),
    instance_class: str | None = typer.Option(
        None, "--instance-class", hidden=True, help="Deprecated: --class."
    ),
    boundary_class: str | None = typer.Option(
        None,
        "--boundary-class",
        help="The class seeds grow into, by name or label value; default: the model's class "
        "named 'boundary' (without one: connected components of --class).",
    ),
    grow: float = typer.Option(
        4.0, help="Pixels a seed grows into the boundary class (also the halo of instances)."
    ),
    min_size: int = typer.Option(8, help="Instance seeds with fewer pixels are dropped."),
    seed_threshold: str = typer.Option(
        "0.6",
        help="Seeds where P(object class) exceeds this (with a boundary class); 'none': the "
        "object class of the labels.",
    ),
) -> None:
    """Segment an image of any size with a model, tile by tile, into an OME-Zarr store.

    A 2-D model runs on a Z stack plane by plane (and on each time point); the instances are
    then labelled in 3-D, so an object in neighbouring planes is one object.

    Ends with one line on what was written: the outputs, the object count of the instances,
    the table and OME-TIFF copies, and the time taken.
    """
    import time

    from scopeml.api import segment as run
    from scopeml.cli.analyze import pixel_size_option
    from scopeml.io.probe import scene_number
    from scopeml.model.runtime import set_default_time_budget
    from scopeml.objects.instances import InstanceOptions
    from scopeml.tiling.store import describe_partial

    if not shape_features and measure is None:
        raise typer.BadParameter("measures shapes only with --measure TABLE",
                                 param_hint="--no-shape-features")  # fmt: skip
    set_default_time_budget(time_budget)  # for every model this run loads
    choice = _renamed_class(class_, instance_class)

    start = time.perf_counter()
    factor = parse_scale(scale)
    sizes = pixel_size_option(pixel_size)  # a bad size: an error of the option, before any work
    number = scene_number(image, scene, axes=axes)  # A1-Pos3 → its number
    earlier = describe_partial(output) if resume else None  # the tiles a resume keeps
    result = run(
        image,
        model,
        output,
        outputs=tuple(name.strip() for name in outputs.split(",") if name.strip()),
        tile_size=_sizes(tile_size, "tile-size"),
        halo=_sizes(halo, "halo"),
        batch_size=batch_size,
        workers=workers,
        scheduler=scheduler,
        min_confidence=min_confidence,
        extract_class=extract_class,
        blend=blend,
        normalize=normalize,
        probability_dtype=probability_dtype,
        scene=number,
        axes=axes,  # recorded in the store; dask workers reopen the file with them
        channels=None if channels is None else tuple(c.strip() for c in channels.split(",")),
        scale=factor,
        resume=resume,
        overwrite=overwrite,
        ome_tiff=ome_tiff,
        progress=not quiet,  # tqdm bars on stderr
        instances=InstanceOptions(
            class_=None if choice is None else _class(choice),
            boundary_class=None if boundary_class is None else _class(boundary_class),
            grow=grow,
            min_size=min_size,
            seed_threshold=_threshold(seed_threshold),
        ),
        measure=measure,
        shape_features=shape_features,
        pixel_size=sizes,
    )
    seconds = time.perf_counter() - start
    done = "already complete; nothing to do: " if result.already_complete else ""
    if earlier and earlier["tiles_done"] and not result.already_complete:
        of = "" if earlier["tiles"] is None else f" of {earlier['tiles']}"  # an older store
        done = f"resumed ({earlier['tiles_done']}{of} tiles kept): "
    typer.echo(done + summary(result.path, measure, ome_tiff, seconds, scale=factor))


def summary(
    store: Path,
    table: Path | None,
    ome_tiff: bool,
    seconds: float,
    *,
    scale: float | str | None = None,
) -> str:
    """The line a run ends with: ``labels, instances (132 objects) → OUT.ome.zarr at scale
    0.5; table → T.csv; 4.2 s``. The object count is the one the instances record, summed over
    the scenes and time points it names (``1808 objects in 10 time points``); the scale
    is named when the image was magnified for the model (``scale`` other than 1), and always
    when ``auto`` chose it (asked for, or the model's default: the shipped ``nuclei``), with
    what it was chosen from (``at scale 0.5 (auto: objects ~48 px, model 20 px)``, as the
    store records it)."""
    from scopeml.api import Segmentation
    from scopeml.io.omezarr import open_ome_zarr_array
    from scopeml.tiling.engine import ome_tiff_path
    from scopeml.tiling.size import recorded_auto_scale

    segmentation = Segmentation(store)
    written = segmentation.outputs
    outputs = list(written)
    if "instances" in outputs:
        count = open_ome_zarr_array(store / "instances", mode="r").attrs.get("n_objects")
        if count is not None:
            sizes = segmentation.instances.sizes
            planes = [f"{sizes[axis]} {name}" for axis, name in (("S", "scenes"),
                      ("T", "time points")) if sizes[axis] > 1]  # fmt: skip
            over = f" in {' × '.join(planes)}" if planes else ""
            outputs[outputs.index("instances")] += f" ({count} object{'s' * (count != 1)}{over})"
    auto = recorded_auto_scale(store)  # chosen by scale auto (asked for, or the model's default)
    if auto is not None:
        at_scale = f" at scale {auto.scale:g} ({auto.text()})"
    else:
        at_scale = f" at scale {scale:g}" if scale is not None and scale != 1 else ""
    parts = [f"{', '.join(outputs) or 'nothing'} → {store}{at_scale}"]
    if table is not None and table.exists():
        parts.append(f"table → {table}")
    tiffs = [str(path) for name in written if (path := ome_tiff_path(store, name)).exists()]
    if ome_tiff and tiffs:
        parts.append(f"OME-TIFF → {', '.join(tiffs)}")
    return "; ".join([*parts, f"{seconds:.1f} s"])
