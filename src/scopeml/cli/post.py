"""``scopeml post``: morphology on a label image, tile by tile, into an OME-Zarr store."""

from __future__ import annotations

from pathlib import Path

import typer

STEP_HELP = (
    "A step, in the order given (repeat the option): fill_holes (holes of any size, a whole-plane "
    "pass out of core) or fill_holes:MAX_PIXELS (smaller holes only, one tile pass), "
    "remove_small:MIN_PIXELS, opening[:RADIUS], closing[:RADIUS]. Each runs on every class."
)


def post(
    image: Path = typer.Argument(
        ..., help="Label image (a segment output's labels, any format), or a scopeml segment store."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Output store (OUT.ome.zarr)."),
    step: list[str] = typer.Option(..., "--step", "-s", help=STEP_HELP),
    tile_size: int = typer.Option(1024, help="Tile edge in pixels (read with the steps' halo)."),
    overwrite: bool = typer.Option(False, help="Replace an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Post-process a label image exactly as a whole-image run would, in bounded memory."""
    from scopeml.api import Segmentation, _as_segmentation
    from scopeml.post import PostStep, post_process_file

    steps = [PostStep.parse(text) for text in step]
    source = _as_segmentation(image)  # a segment store: its labels
    path = post_process_file(
        source.path / "labels" if isinstance(source, Segmentation) else image,
        output,
        steps,
        tile_size=tile_size,
        overwrite=overwrite,
        progress=not quiet,
    )
    if not quiet:
        typer.echo(str(path))
