"""``scopeml classify IMAGE... -m MODEL -o table.csv``: one class per image plane, or per
object with ``--labels``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from scopeml.io.axes import AXES_HELP


def classify(
    images: list[Path] = typer.Argument(..., help="Image files (every scene, time point, plane)."),
    model: Path = typer.Option(
        ...,
        "-m",
        "--model",
        help="A classification model: a .czann (Single/MultiClassClassification) or a "
        "bioimage.io package of one (zip, folder or rdf.yaml).",
    ),
    output: Path = typer.Option(..., "-o", "--output", help="The table (.csv or .parquet)."),
    labels: Path | None = typer.Option(
        None, help="Instance labels of one 2-D image: classify each object from a crop around it."
    ),
    channels: str | None = typer.Option(
        None, help="Image channels fed to the model, by name or index, e.g. DAPI or 0,2."
    ),
    axes: str | None = typer.Option(None, "--axes", help=AXES_HELP),
    overwrite: bool = typer.Option(False, help="Replace an existing table."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Classify whole images, or with --labels each object, with a classification model.

    A Single/MultiClassClassification model (a .czann, or a bioimage.io package run as its
    converted .czann); planes (or object crops) are resized to the model's input size. With
    --labels, each object gets a class (one row per object).
    """
    from scopeml.classify import chosen_channels, classify_images, classify_object_crops
    from scopeml.objects.table import check_table_output, write_table

    check_table_output(output, overwrite=overwrite)  # before any model runs
    chosen = None if channels is None else [c.strip() for c in channels.split(",")]
    if labels is None:
        table = classify_images(
            images, model, output=output, overwrite=overwrite, channels=chosen, axes=axes,
            progress=not quiet,
        )  # fmt: skip
        typer.echo(f"{len(table)} planes classified → {output}")
        return
    from scopeml.errors import InvalidRequestError
    from scopeml.io import open_image

    if len(images) != 1:
        raise InvalidRequestError("--labels goes with exactly one image")
    image = chosen_channels(open_image(images[0], axes=axes), chosen)
    # opened images: a bad one's error names its file (one plane each, checked there)
    table = classify_object_crops(_objects(labels, axes), image, model)
    write_table(table, output, overwrite=overwrite)
    typer.echo(f"{len(table)} objects classified → {output}")


def _objects(labels: Path, axes: str | None) -> Any:
    """The instance labels ``--labels`` names: a file's, or a segment store's instances (as
    ``objects measure`` takes a store)."""
    from scopeml.api import Segmentation, _as_segmentation
    from scopeml.errors import InvalidRequestError
    from scopeml.io import open_image

    source = _as_segmentation(labels)
    if not isinstance(source, Segmentation):
        return open_image(labels, axes=axes)
    if "instances" not in source.outputs:
        raise InvalidRequestError(
            "this segment store holds no instances, only class labels: segment with "
            "--outputs labels,instances, or label them (objects label)",
            path=labels,
        )
    return source.instances
