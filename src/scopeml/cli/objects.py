"""``scopeml objects …``: instance labels, measurements, the object classifier."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from scopeml.io.axes import AXES_HELP, files_told

app = typer.Typer(
    help="Objects: instance labels, measurements, object classifier.", no_args_is_help=True
)


#: The size, border and split rules of ``label`` and ``filter`` (one definition, one help).
MIN_SIZE = typer.Option(
    0, "--min-size", help="Drop objects with fewer pixels (voxels in Z stacks)."
)
MAX_SIZE = typer.Option(
    None, "--max-size", help="Drop objects with more pixels (voxels in Z stacks)."
)
REMOVE_BORDER = typer.Option(
    False,
    "--remove-border",
    help="Drop objects touching the image's edge in Y or X (cut by the field of view).",
)
SPLIT = typer.Option(
    False,
    "--split",
    help="Split touching objects at the necks of their distance to the background "
    "(watershed), each object on its own; the size and border rules judge the pieces.",
)
SPLIT_DISTANCE = typer.Option(
    None,
    "--split-distance",
    help="Split (as --split) with seeds at least this many pixels apart (default 5).",
)
SPLIT_H = typer.Option(
    None,
    "--split-h",
    help="Split (as --split) with seeds at maxima at least this many pixels above the neck "
    "to their neighbour (fewer, surer splits; --split-distance is then unused).",
)
TILE_SIZE = typer.Option(
    None,
    help="Tile edge in pixels along every axis, clipped to the image (also the output "
    "chunks). Default: 1024×1024 in 2-D; in a Z stack at most 128³ voxels, an axis "
    "shorter than its share whole (40×228×228 for 40 planes).",
)


@app.command("label")
def label(
    labels: Path = typer.Argument(
        ...,
        help="Semantic label image or mask (TIFF, OME-Zarr, .npy), or a scopeml segment store.",
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Instance labels, an .ome.zarr."),
    class_: str | None = typer.Option(
        None,
        "--class",
        help="Class to label: its name (labels of a `scopeml segment` store) or its label "
        "value (default: every non-zero pixel of a mask; of a store's class labels, the one "
        "class that is neither background nor boundary, if one; else give it).",
    ),
    class_id: int | None = typer.Option(
        None, "--class-id", help="Label value to label (older spelling of --class VALUE)."
    ),
    connectivity: int = typer.Option(1, help="1 = faces only … ndim = full neighbourhood."),
    min_size: int = MIN_SIZE,
    max_size: int | None = MAX_SIZE,
    remove_border: bool = REMOVE_BORDER,
    split: bool = SPLIT,
    split_distance: int | None = SPLIT_DISTANCE,
    split_h: float | None = SPLIT_H,
    tile_size: int | None = TILE_SIZE,
    overwrite: bool = typer.Option(False, help="Replace an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    axes: str | None = typer.Option(None, "--axes", help=AXES_HELP),
) -> None:
    """Label the objects of every scene and time point, tile by tile, stitched across tiles."""
    from scopeml.api import label_objects
    from scopeml.errors import InvalidRequestError
    from scopeml.io.replace import check_replaceable_store

    if class_ is not None and class_id is not None:
        raise InvalidRequestError("give --class or --class-id, not both")
    _refuse_not_images(labels)
    choice: str | int | None = class_id if class_ is None else class_
    if isinstance(choice, str) and choice.strip().isdigit():
        choice = int(choice)
    if overwrite:
        check_replaceable_store(output, inputs=(labels,))
    options = dict(connectivity=connectivity, min_size=min_size, max_size=max_size,
                   remove_border=remove_border, split=split, split_distance=split_distance,
                   split_h=split_h, tile_size=tile_size, overwrite=overwrite,
                   progress=not quiet)  # fmt: skip
    source: Any = labels
    if files_told(axes, labels):  # the file's axes as told (a plain page sequence as T, say)
        from scopeml.io import open_image

        source = open_image(labels, axes=axes)
    with _stop_said(output):
        out = label_objects(source, output, class_=choice, **options)
    _say_objects(out, output)


@app.command("filter")
def filter_(
    objects: Path = typer.Argument(
        ...,
        help="Instance labels (one id per object: a segment store's instances, StarDist or "
        "cellpose masks; TIFF, OME-Zarr, .npy), or a scopeml segment store.",
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Filtered objects, an .ome.zarr."),
    min_size: int = MIN_SIZE,
    max_size: int | None = MAX_SIZE,
    remove_border: bool = REMOVE_BORDER,
    split: bool = SPLIT,
    split_distance: int | None = SPLIT_DISTANCE,
    split_h: float | None = SPLIT_H,
    tile_size: int | None = TILE_SIZE,
    overwrite: bool = typer.Option(False, help="Replace an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    axes: str | None = typer.Option(None, "--axes", help=AXES_HELP),
) -> None:
    """Filter objects by size and the image's edge (and split them), each kept apart however
    it touches the others (objects label would join them); ids renumbered 1..n."""
    from scopeml.api import filter_objects

    source = _objects_source(objects, output, overwrite, axes)
    with _stop_said(output):
        out = filter_objects(
            source, output, min_size=min_size, max_size=max_size, remove_border=remove_border,
            split=split, split_distance=split_distance, split_h=split_h, tile_size=tile_size,
            overwrite=overwrite, progress=not quiet,
        )  # fmt: skip
    _say_objects(out, output)


def _objects_source(objects: Path, output: Path, overwrite: bool, axes: str | None) -> Any:
    """Objects to read for ``filter`` and ``paint``: checked as an image, not to be replaced by
    the output, and read with the axes told, if any (else given on as a path)."""
    from scopeml.io.replace import check_replaceable_store

    _refuse_not_images(objects)
    if overwrite:
        check_replaceable_store(output, inputs=(objects,))
    if files_told(axes, objects):
        from scopeml.io import open_image

        return open_image(objects, axes=axes)
    return objects


def _refuse_not_images(*paths: Path | None) -> None:
    """A model or a table given where labels or an image go is said to be one in one line, as
    ``info`` says it, before an image reader tries it (bioio's printed its own attempt)."""
    from scopeml.cli.info import refuse_not_an_image

    for path in paths:
        if path is not None:
            refuse_not_an_image(path)


def _say_objects(out: Any, output: Path) -> None:
    """The final line of ``label`` and ``filter``: how many objects, their axes, where."""
    from scopeml.io.omezarr import open_ome_zarr_array

    first = output if out.sizes["S"] == 1 else output / "0"
    n_objects = open_ome_zarr_array(first, mode="r").attrs["n_objects"]
    typer.echo(f"{n_objects} objects ({_axes(out)}) → {output}")


@app.command("measure")
def measure(
    labels: Path = typer.Argument(
        ...,
        help="Instance labels (TIFF, OME-Zarr, .zarr, .npy), or a scopeml segment store (its "
        "instances).",
    ),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Table: .csv or .parquet (rows sorted by scene, t and label)."
    ),
    image: Path | None = typer.Option(
        None,
        "--image",
        help="Intensities to measure. Default for a segment store, and for the objects "
        "label/filter made from one: the image its run read, if that file is unchanged.",
    ),
    pixel_size: str | None = typer.Option(
        None,
        "--pixel-size",
        metavar="SIZE",
        help="Micrometres per pixel for files that record none: one number for every axis, or "
        "Y,X, or Z,Y,X for a Z stack with another Z step (a file's own size is kept, with a "
        "warning where they differ). The area column counts "
        "pixels (voxels in a Z stack); area_um2 (volume_um3 in a Z stack) is in µm.",
    ),
    shape_features: bool = typer.Option(
        True, help="Perimeter, convex hull, Feret diameters (slower)."
    ),
    tile_size: int | None = typer.Option(
        None,
        help="Tile edge in pixels along every axis, clipped to the image. Default: 1024×1024 "
        "in 2-D; in a Z stack at most 128³ voxels.",
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing table."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    axes: str | None = typer.Option(
        None, "--axes", help=f"{AXES_HELP} For those of the labels and --image."
    ),
    workers: int = typer.Option(2, min=1, help="Tiles measured at once (threads)."),
) -> None:
    """Measure every object of every scene and time point into a table (columns t, scene)."""
    from scopeml.api import Segmentation, _as_segmentation, measure_objects
    from scopeml.io import open_image
    from scopeml.objects.images import open_labels
    from scopeml.objects.table import check_table_output

    check_table_output(output, overwrite=overwrite)  # before the labels are even opened
    _refuse_not_images(labels, image)
    source = _as_segmentation(labels)  # a segment store: its instances, else its labels
    told = files_told(axes, None if isinstance(source, Segmentation) else labels, image)
    if isinstance(source, Segmentation):
        objects = source.instances if "instances" in source.outputs else source.labels
    else:
        objects = open_labels(labels) if labels not in told else open_image(labels, axes=axes)
    # a store is measured as such (its instances, the axes its run read --image with; one
    # that stopped before them says so)
    store = isinstance(source, Segmentation) and "instances" in source.outputs
    measured: Any = source if isinstance(source, Segmentation) else objects
    said = "; shapes only, no --image" if image is None else ""
    if image is None and (store or _names_source(labels)):  # the image its run read, if it
        image, said = _store_image(source.path if store else labels)  # is still that file
    sizes = None if pixel_size is None else _pixel_sizes(pixel_size, objects.sizes["Z"] > 1)
    with _stop_said(output):
        measure_objects(
            measured,
            image,
            axes=axes if image in told else None,  # the file's axes as told (pages as T, say)
            pixel_size=sizes,  # for the axes the files record none of, as segment's
            shape_features=shape_features,
            tile_size=tile_size,
            output=output,  # streamed tile by tile: memory does not grow with the object count
            overwrite=overwrite,
            progress=not quiet,
            workers=workers,
        )
    voxels = "; area in voxels" if objects.sizes["Z"] > 1 else ""
    shown = f"{count_rows(output)} objects measured ({_axes(objects)}{voxels}{said})"
    typer.echo(f"{shown} → {output}")


def _names_source(labels: Path) -> bool:
    """Whether a label store (not a segment store) records the image its objects come from."""
    from scopeml.segmentation import run_read

    labels = labels.absolute()
    return (labels / "zarr.json").is_file() and run_read(labels) is not None


def _store_image(store: Path) -> tuple[Path | None, str]:
    """The image file a segment store's run read, if it is still that file (else ``None``:
    shapes only), and the summary's words for it (the scene its run read, which measuring
    reads too)."""
    from scopeml.segmentation import run_image, run_read

    recorded, same = run_image(store)
    if not same:
        return None, (f"; shapes only: {recorded} is gone or changed since its run, no --image"
                      if recorded else "; shapes only, no --image")  # fmt: skip
    read = run_read(store)
    of = "" if read is None or read.scene is None else f"scene {read.scene} of "
    return recorded, f"; intensities of {of}{recorded.name}, the image its run read"


@app.command("train")
def train(
    table: Path = typer.Argument(
        ..., help="Measurement table (.csv/.parquet) with a class column."
    ),
    class_column: str = typer.Option(..., "--class-column", help="Column naming each class."),
    output: Path = typer.Option(..., "-o", "--output", help="Classifier file to write."),
    features: str | None = typer.Option(
        None, help="Comma-separated feature columns (default: all numeric non-position ones)."
    ),
    n_estimators: int = typer.Option(100, help="Trees in the forest."),
    max_depth: int | None = typer.Option(None, help="Maximum tree depth."),
    seed: int = typer.Option(0, help="Random seed."),
    overwrite: bool = typer.Option(False, help="Replace an existing classifier file."),
) -> None:
    """Train an object classifier from annotated objects (rows with an empty class are skipped)."""
    from scopeml.errors import InvalidRequestError
    from scopeml.io.replace import check_output_file
    from scopeml.objects.classifier import ObjectClassifier
    from scopeml.objects.quality import quality_text
    from scopeml.objects.table import read_table

    if output.resolve() == table.resolve():
        raise InvalidRequestError("the output would replace the input table", path=output)
    check_output_file(output, overwrite=overwrite)  # before the table is even read
    data = read_table(table)
    names = [f.strip() for f in features.split(",") if f.strip()] if features else None
    classifier = ObjectClassifier.train(
        data,
        class_column,
        features=names,
        n_estimators=n_estimators,
        max_depth=max_depth,
        seed=seed,
    )
    classifier.save(output, overwrite=overwrite)
    typer.echo(f"{classifier!r}, {_trained_on(data, class_column, classifier.classes)} → {output}")
    typer.echo(quality_text(classifier.quality))


def _trained_on(data: Any, class_column: str, classes: tuple[str, ...]) -> str:
    """``trained on 8 labelled objects (mitotic 4, interphase 4) of 35, 27 unlabelled
    skipped``: the rows with a class (as :meth:`ObjectClassifier.train` takes them), per class,
    of all rows."""
    from collections import Counter

    from scopeml.objects.classifier import class_names

    target = data[class_column]
    labelled = target.notna() & (target.astype(str) != "")
    per_class = Counter(class_names(target[labelled]).tolist())
    counts = ", ".join(f"{name} {per_class[name]}" for name in classes)
    count = int(labelled.sum())
    unlabelled = f", {len(data) - count} unlabelled skipped" if count < len(data) else ""
    return f"trained on {count} labelled objects ({counts}) of {len(data)}{unlabelled}"


@app.command("classify")
def classify(
    model: Path = typer.Argument(..., help="Classifier from `scopeml objects train`."),
    table: Path = typer.Argument(..., help="Measurement table (.csv/.parquet)."),
    output: Path = typer.Option(..., "-o", "--output", help="Table with the class column added."),
    column: str = typer.Option(
        "class",
        help="Name of the class column to add (and of NAME_probability). A table that has "
        "either already (analyze's tables have a class column) is refused, not overwritten: "
        "give another name, e.g. --column predicted.",
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing output table."),
) -> None:
    """Classify measured objects; adds the class and its probability as columns."""
    from scopeml.errors import InvalidRequestError
    from scopeml.objects.classifier import is_object_classifier, load_object_classifier
    from scopeml.objects.table import TABLE_SUFFIXES, check_table_output, read_table, write_table

    check_table_output(output, overwrite=overwrite)
    if model.name.lower().endswith(TABLE_SUFFIXES) and is_object_classifier(table):
        raise InvalidRequestError(  # said so, not as a table that is no zip archive
            f"a table, given where the classifier goes: the order is MODEL TABLE (scopeml "
            f"objects classify {table} {model} -o {output})",
            path=model,
        )
    classifier = load_object_classifier(model)
    try:
        result = classifier.classify(read_table(table), column=column)
    except InvalidRequestError as err:  # the table does not fit the classifier: name the table
        if err.path is not None:
            raise
        raise InvalidRequestError(err.problem, path=table) from err
    write_table(result, output, overwrite=overwrite)
    counts = result[column].value_counts().to_dict()
    typer.echo(f"{len(result)} objects {counts} → {output}")


@app.command("paint")
def paint(
    objects: Path = typer.Argument(
        ...,
        help="Instance labels the table was measured from (TIFF, OME-Zarr, .npy), or a "
        "scopeml segment store (its instances).",
    ),
    table: Path = typer.Argument(
        ...,
        help="Their table with a class column (.csv/.parquet): objects classify's output "
        "or an analysis's per-image table.",
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Class label image, an .ome.zarr."),
    column: str | None = typer.Option(
        None, help="The class column (default: object_class, an analysis's, else class)."
    ),
    classes: str | None = typer.Option(
        None,
        help="Classes in their label values' order, comma-separated: 'A,B' paints A as "
        "1 and B as 2 (default: the table's, sorted).",
    ),
    tile_size: int | None = TILE_SIZE,
    overwrite: bool = typer.Option(False, help="Replace an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    axes: str | None = typer.Option(None, "--axes", help=AXES_HELP),
) -> None:
    """Paint each object by its class in the table: a class label image (ZEN's picture of an
    object classification) that viewers colour by class, and objects label --class takes."""
    from scopeml.api import paint_objects
    from scopeml.io.omezarr import label_classes

    source = _objects_source(objects, output, overwrite, axes)
    names = None if classes is None else [c.strip() for c in classes.split(",") if c.strip()]
    with _stop_said(output):
        out = paint_objects(
            source, table, output, column=column, classes=names, tile_size=tile_size,
            overwrite=overwrite, progress=not quiet,
        )  # fmt: skip
    painted = label_classes(output if out.sizes["S"] == 1 else output / "0") or []
    said = ", ".join(f"{value} {name}" for value, name in enumerate(painted, 1))
    typer.echo(f"objects painted by class ({said}; 0 none) → {output}")


@contextlib.contextmanager
def _stop_said(output: Path) -> Iterator[None]:
    """Ctrl-C (or SIGTERM) says in one line what it left, as ``segment`` and ``analyze`` do:
    an output is moved into place only when complete, so nothing, or the one there before,
    or (stopped just after the move) the whole new one."""
    before = _identity(output)
    try:
        yield
    except KeyboardInterrupt:
        from scopeml.progress import close_bars

        close_bars()  # the line starts clean, not at a bar's end
        after = _identity(output)
        kept = (f"nothing was written to {output}" if after is None
                else f"{output} is as it was" if after == before
                else f"{output} was written whole before the stop")  # fmt: skip
        typer.echo(f"stopped; {kept}", err=True)
        raise


def _identity(path: Path) -> tuple[int, int] | None:
    """What tells a file or store there from the one moved into its place: its inode and
    modification time; ``None`` when there is none."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def count_rows(table: Path) -> int:
    """Rows of a written ``.csv``/``.parquet`` table, read in bounded memory (the Parquet footer;
    CSV records streamed, quoted line breaks counted as the csv module reads them).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = path.write_text('label,name\\n1,"a\\nb"\\n2,c\\n')
    >>> count_rows(path)
    2
    """
    from scopeml.objects.table import table_format

    if table_format(table) == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(table).metadata.num_rows)
    import csv

    with open(table, newline="", encoding="utf-8") as stream:
        return max(sum(1 for _ in csv.reader(stream)) - 1, 0)  # less the header


def _pixel_sizes(text: str, stack: bool) -> dict[str, float]:
    """``--pixel-size``: one number for every axis, ``Y,X``, or ``Z,Y,X`` (a Z stack's).

    Examples
    --------
    >>> _pixel_sizes("0.5", stack=True)
    {'Z': 0.5, 'Y': 0.5, 'X': 0.5}
    >>> _pixel_sizes("2, 0.26,0.26", stack=True)
    {'Z': 2.0, 'Y': 0.26, 'X': 0.26}
    >>> _pixel_sizes("0.3,0.2", stack=False)
    {'Y': 0.3, 'X': 0.2}
    """
    from scopeml.cli.analyze import pixel_size_option

    sizes = pixel_size_option(text)
    values = list(sizes.values())
    if len(text.split(",")) == 1:
        return sizes
    if len(values) == 3 and not stack:
        raise typer.BadParameter("Z,Y,X given for 2-D labels; give Y,X", param_hint="--pixel-size")
    if len(values) == 2 and stack:
        raise typer.BadParameter(
            "Y,X given for a Z stack; give Z,Y,X (or one number for every axis)",
            param_hint="--pixel-size",
        )
    return sizes


def _axes(image: Any) -> str:
    """``"2 time points × 3-D"``-style summary of what was handled."""
    parts = [f"{n} {name}" for axis, name in (("S", "scenes"), ("T", "time points"))
             if (n := image.sizes[axis]) > 1]  # fmt: skip
    return " × ".join([*parts, "3-D" if image.sizes["Z"] > 1 else "2-D"])
