"""``scopeml info IMAGE``: which reader opens a file and what it holds.

The file is opened in a child process (:func:`scopeml.io.probe.probe_image`), so a reader that
crashes on a corrupt file ends in a one-line error, not in a dead terminal.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer


def info(
    image: Path = typer.Argument(
        ..., help="Image file or folder (any format scopeml or bioio reads)."
    ),
    scene: int | None = typer.Option(None, help="Describe only this scene."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
    timeout: float = typer.Option(60.0, min=1.0, help="Seconds to wait for the reader."),
) -> None:
    """Print the reader that opens IMAGE, its axes, shape, dtype, scenes, channels, pixel sizes."""
    from scopeml.io.probe import probe_image

    description = probe_image(image, scene=scene, timeout=timeout)
    if as_json:
        typer.echo(json.dumps(description, indent=2))
        return
    for line in format_description(description):
        typer.echo(line)


def format_description(description: dict) -> list[str]:
    """The text lines of ``scopeml info`` for a :func:`~scopeml.io.probe.describe_image` dict.

    Examples
    --------
    >>> lines = format_description({
    ...     "path": "a.nd2", "reader": "scopeml.io.bioio:read_bioio", "plugin": "bioio-nd2 2.6.0",
    ...     "axes": "STCZYX", "shape": [1, 1, 2, 1, 8, 9], "dtype": "uint16",
    ...     "scenes": [{"name": "XYPos:0", "shape": [1, 2, 1, 8, 9]}],
    ...     "channel_names": ["DAPI", "GFP"], "pixel_sizes": {"Y": 0.5, "X": 0.5},
    ...     "region_reads": "whole 8×9 planes (the plugin cannot read regions)"})
    >>> print("\\n".join(lines))
    a.nd2
      reader: bioio-nd2 2.6.0 (scopeml.io.bioio:read_bioio)
      shape: S=1 T=1 C=2 Z=1 Y=8 X=9, uint16
      scenes: 1: XYPos:0 (T=1 C=2 Z=1 Y=8 X=9)
      channels: DAPI, GFP
      pixel sizes (µm): Y=0.5 X=0.5
      region reads: whole 8×9 planes (the plugin cannot read regions)
    """
    axes = description["axes"]
    reader = description["reader"]
    if description.get("plugin"):
        reader = f"{description['plugin']} ({reader})"
    shape = " ".join(f"{a}={n}" for a, n in zip(axes, description["shape"], strict=True))
    scenes = ", ".join(
        f"{s['name']} ("
        + " ".join(f"{a}={n}" for a, n in zip(axes[1:], s["shape"], strict=True))
        + ")"
        for s in description["scenes"]
    )
    sizes = " ".join(f"{a}={v:g}" for a, v in description["pixel_sizes"].items()) or "unknown"
    lines = [
        description["path"],
        f"  reader: {reader}",
        f"  shape: {shape}, {description['dtype']}",
        f"  scenes: {len(description['scenes'])}: {scenes}",
        f"  channels: {', '.join(description['channel_names'])}",
        f"  pixel sizes (µm): {sizes}",
    ]
    if description.get("region_reads"):
        lines.append(f"  region reads: {description['region_reads']}")
    return lines
