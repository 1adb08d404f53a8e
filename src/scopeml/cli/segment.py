"""``scopeml segment IMAGE --model MODEL -o OUT.ome.zarr``."""

from __future__ import annotations

import typer


def segment(image: str = typer.Argument(..., help="Image to segment.")) -> None:
    """Segment an image of any size with a model (not yet implemented)."""
    raise typer.Exit(1)
