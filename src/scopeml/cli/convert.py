"""``scopeml convert IMAGE -o OUT.ome.zarr``: any image scopeml reads as a chunked OME-Zarr
with lower resolutions, which viewers (napari, QuPath through its OME-Zarr support) show whole
at once and which later runs read chunk by chunk."""

from __future__ import annotations

from pathlib import Path

import typer

from scopeml.io.axes import AXES_HELP


def convert(
    image: Path = typer.Argument(
        ..., help="Image file or folder (CZI, OME-TIFF, TIFF, OME-Zarr, or any format bioio reads)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Output store (OUT.ome.zarr)."),
    scene: str | None = typer.Option(
        None,
        help="Convert only this scene: its number, or its name as info lists it. "
        "Default: every scene, one image each (groups 0, 1, …).",
    ),
    chunk: int = typer.Option(512, min=16, help="Chunk edge along Y and X, in pixels."),
    labels: bool = typer.Option(
        False,
        "--labels",
        help="The image holds labels (classes or object ids): lower resolutions take each "
        "block's most frequent value instead of the mean, and the store is marked as labels.",
    ),
    axes: str | None = typer.Option(None, "--axes", help=AXES_HELP),
    overwrite: bool = typer.Option(False, help="Replace an earlier output of scopeml."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Copy an image into an OME-Zarr store (NGFF 0.5) block by block, with lower resolutions.

    Pixel sizes and channel names carry over; each image is halved until it fits in
    1024×1024 px. The store is written beside OUT and moved into place when complete. Ends
    with one line on what was written.
    """
    import time

    from scopeml.inputs import check_output_name
    from scopeml.io import open_image
    from scopeml.io.convert import write_ome_zarr
    from scopeml.io.omezarr import level_count
    from scopeml.io.probe import scene_number

    start = time.perf_counter()
    check_output_name(output, note="")  # out.tif would be a folder no TIFF reader opens
    number = scene_number(image, scene, axes=axes)  # a name → its number
    with open_image(image, scene=number, axes=axes) as opened:
        written = write_ome_zarr(
            output,
            opened,
            chunks={"Y": chunk, "X": chunk},
            labels=labels,
            overwrite=overwrite,
            progress=not quiet,
        )
        sizes, scenes = opened.sizes, opened.sizes["S"]
    levels = level_count(written if scenes == 1 else written / "0")
    shape = " ".join(f"{a}={sizes[a]}" for a in "TCZYX" if sizes[a] > 1 or a in "YX")
    typer.echo(
        f"{image} → {written}: {scenes} scene{'s' * (scenes > 1)}, {shape}, {opened.dtype}, "
        f"{levels} resolution level{'s' * (levels > 1)}; {time.perf_counter() - start:.1f} s"
    )
