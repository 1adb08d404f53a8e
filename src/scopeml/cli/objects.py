"""``scopeml objects …``: instance labels, measurements, the object classifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    help="Objects: instance labels, measurements, object classifier.", no_args_is_help=True
)


@app.command("label")
def label(
    labels: Path = typer.Argument(..., help="Semantic label image or mask (TIFF, OME-Zarr, .npy)."),
    output: Path = typer.Option(..., "-o", "--output", help="Instance labels, a .zarr folder."),
    class_id: int | None = typer.Option(
        None, "--class-id", help="Class to label (default: every non-zero pixel)."
    ),
    connectivity: int = typer.Option(1, help="1 = faces only … ndim = full neighbourhood."),
    tile_size: int = typer.Option(1024, help="Tile edge in pixels (also the output chunks)."),
    overwrite: bool = typer.Option(False, help="Replace an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Label the objects of one class, tile by tile, stitched across tile borders."""
    from scopeml.io.replace import check_replaceable_store
    from scopeml.objects.label import label_instances_tiled

    if overwrite:
        check_replaceable_store(output, inputs=(labels,))
    view, _ = _open_labels(labels)
    out = label_instances_tiled(
        view,
        output,
        class_id=class_id,
        connectivity=connectivity,
        tile_shape=(tile_size,) * len(view.shape),
        overwrite=overwrite,
        progress=not quiet,
    )
    typer.echo(f"{out.attrs['n_objects']} objects → {output}")


@app.command("measure")
def measure(
    labels: Path = typer.Argument(..., help="Instance labels (TIFF, OME-Zarr, .zarr, .npy)."),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Table: .csv or .parquet (rows in tile order)."
    ),
    image: Path | None = typer.Option(None, "--image", help="Intensities to measure."),
    pixel_size: float | None = typer.Option(
        None, help="Micrometres per pixel (default: from the files' metadata)."
    ),
    shape_features: bool = typer.Option(
        True, help="Perimeter, convex hull, Feret diameters (slower)."
    ),
    tile_size: int = typer.Option(1024, help="Tile edge in pixels."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Measure every object (shape, position, moments, per-channel intensities) into a table."""
    from scopeml.objects.measure_tiled import measure_objects_tiled

    view, sizes = _open_labels(labels)
    intensities = None
    if image is not None:
        from scopeml.io import open_image

        intensities = open_image(image)
        sizes = {**intensities.pixel_sizes, **sizes}
    if pixel_size is not None:
        sizes = {"Z": pixel_size, "Y": pixel_size, "X": pixel_size}
    measure_objects_tiled(
        view,
        intensities,
        pixel_sizes=sizes or None,
        shape_features=shape_features,
        tile_shape=(tile_size,) * len(view.shape),
        output=output,  # streamed tile by tile: memory does not grow with the object count
        progress=not quiet,
    )
    typer.echo(f"objects → {output}")


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
) -> None:
    """Train an object classifier from annotated objects (rows with an empty class are skipped)."""
    from scopeml.objects.classifier import ObjectClassifier
    from scopeml.objects.table import read_table

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
    classifier.save(output)
    typer.echo(f"{classifier!r} → {output}")


@app.command("classify")
def classify(
    model: Path = typer.Argument(..., help="Classifier from `scopeml objects train`."),
    table: Path = typer.Argument(..., help="Measurement table (.csv/.parquet)."),
    output: Path = typer.Option(..., "-o", "--output", help="Table with the class column added."),
    column: str = typer.Option("class", help="Name of the class column to add."),
) -> None:
    """Classify measured objects; adds the class and its probability as columns."""
    from scopeml.objects.classifier import load_object_classifier
    from scopeml.objects.table import read_table, write_table

    classifier = load_object_classifier(model)
    result = classifier.classify(read_table(table), column=column)
    write_table(result, output)
    counts = result[column].value_counts().to_dict()
    typer.echo(f"{len(result)} objects {counts} → {output}")


class _PlaneView:
    """``(Z×)Y×X`` array-like over channel 0 of scene 0, time 0 of an :class:`Image`."""

    def __init__(self, image: Any) -> None:
        self.image = image
        z, y, x = image.spatial_shape
        self.shape = (y, x) if z == 1 else (z, y, x)
        self.dtype = image.dtype
        self.chunks = None

    def __getitem__(self, key: tuple[slice, ...]) -> Any:
        named = dict(zip("ZYX"[-len(self.shape) :], key, strict=True))
        data = self.image.read(S=0, T=0, C=0, **named)[0, 0, 0]
        return data[0] if len(self.shape) == 2 else data


def _open_labels(path: Path) -> tuple[Any, dict[str, float]]:
    """A lazy ``(Z×)Y×X`` label array and its pixel sizes, from .npy, a zarr array or an image."""
    import numpy as np

    from scopeml.errors import InvalidImageError

    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    if path.suffix == ".npy":
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as err:
            raise InvalidImageError(f"cannot read labels: {err}", path=path) from err
        return _squeezed(array, path), {}
    if path.is_dir() and (path / "zarr.json").is_file():
        import json

        meta = json.loads((path / "zarr.json").read_text())
        if meta.get("node_type") == "array":
            import zarr

            return _squeezed(zarr.open_array(str(path), mode="r"), path), {}
    from scopeml.io import open_image

    image = open_image(path)
    return _PlaneView(image), dict(image.pixel_sizes)


def _squeezed(array: Any, path: Path) -> Any:
    from scopeml.errors import InvalidImageError

    if len(array.shape) not in (2, 3):
        raise InvalidImageError(
            f"labels must be 2-D or 3-D; got shape {tuple(array.shape)}", path=path
        )
    return array
