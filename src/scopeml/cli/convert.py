"""``scopeml convert IMAGE -o OUT.ome.zarr``: any image scopeml reads as a chunked OME-Zarr
with lower resolutions, which viewers (napari, QuPath through its OME-Zarr support) show whole
at once and which later runs read chunk by chunk."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import typer

from scopeml.io.axes import AXES_HELP


def convert(
    images: list[Path] = typer.Argument(
        ...,
        help="Image file or folder (CZI, OME-TIFF, TIFF, OME-Zarr, or any format bioio reads); "
        "several: one field's channels, a file each, stacked in the order given.",
        show_default=False,
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
    channel_names: str | None = typer.Option(
        None,
        "--channel-names",
        help="The output's channel names, comma-separated (DAPI,GFP): needed where stacked "
        "files name none of theirs.",
    ),
    overwrite: bool = typer.Option(False, help="Replace an earlier output of scopeml."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Copy an image into an OME-Zarr store (NGFF 0.5) block by block, with lower resolutions.

    Pixel sizes and channel names carry over; each image is halved until it fits in
    1024×1024 px. Several images are one field's channels, a file each (as some microscopes
    save them): stacked in the order given, with the first one's pixel sizes. The store is
    written beside OUT and moved into place when complete. Ends with one line on what was
    written.

    Example: scopeml convert f1_DAPI.tif f1_GFP.tif --channel-names DAPI,GFP -o f1.ome.zarr
    """
    import time

    from scopeml.errors import InvalidRequestError
    from scopeml.inputs import check_output_name
    from scopeml.io import Image, open_image
    from scopeml.io.convert import write_ome_zarr
    from scopeml.io.omezarr import level_count
    from scopeml.io.replace import check_replaceable_store

    start = time.perf_counter()
    check_output_name(output, note="")  # out.tif would be a folder no TIFF reader opens
    check_replaceable_store(output, inputs=tuple(images))
    names = None if channel_names is None else [n.strip() for n in channel_names.split(",")]
    if labels and len(images) > 1:
        raise InvalidRequestError("--labels takes one image of labels, not channels to stack")
    with _opened(images, scene, axes, names) as opened:
        written = write_ome_zarr(
            output,
            opened,
            chunks={"Y": chunk, "X": chunk},
            labels=labels,
            overwrite=overwrite,
            progress=not quiet,
        )
        whole = [one for one in opened if isinstance(one, Image)]  # else: opened one by one
        scenes = sum(one.sizes["S"] for one in whole) + len(opened) - len(whole)
        shapes = {_shape(one.sizes) for one in whole}
        same = len(shapes) == 1 and len(whole) == len(opened)
        shape = f", {shapes.pop()}" if same else " of different sizes"
    with open_image(written, scene=0) as first:
        dtype = first.dtype
    levels = level_count(written if scenes == 1 else written / "0")
    source = images[0] if len(images) == 1 else f"{len(images)} files"
    typer.echo(
        f"{source} → {written}: {scenes} scene{'s' * (scenes > 1)}{shape}, {dtype}, "
        f"{levels} resolution level{'s' * (levels > 1)}; {time.perf_counter() - start:.1f} s"
    )


def _shape(sizes: dict[str, int]) -> str:
    return " ".join(f"{a}={sizes[a]}" for a in "TCZYX" if sizes[a] > 1 or a in "YX")


@contextlib.contextmanager
def _opened(
    images: list[Path], scene: str | None, axes: str | None, names: list[str] | None
) -> Iterator[list[Any]]:
    """The scenes to copy: the one image (all its scenes), or where they differ in size a
    function opening each, so one is open at a time; its channels renamed where ``names`` are
    given; or the images' channels stacked (:func:`~scopeml.io.image.stack_channels`)."""
    from scopeml.errors import InvalidImageError, InvalidRequestError
    from scopeml.io import open_image
    from scopeml.io.image import stack_channels
    from scopeml.io.probe import probe_image, scene_number

    if len(images) == 1 and names is None:
        number = scene_number(images[0], scene, axes=axes)  # a name → its number
        try:
            whole = open_image(images[0], scene=number, axes=axes)
        except InvalidImageError as err:
            if "scenes of different sizes" not in str(err):
                raise
            count = len(probe_image(images[0], axes=axes)["scenes"])  # each opened in turn
            yield [partial(open_image, images[0], scene=k, axes=axes) for k in range(count)]
            return
        with whole:
            yield [whole]
        return
    with contextlib.ExitStack() as stack:
        opened = []
        for image in images:
            number = scene_number(image, scene, axes=axes)
            opened.append(stack.enter_context(open_image(image, scene=number, axes=axes)))
        total = sum(image.sizes["C"] for image in opened)
        if names is not None and len(names) != total:
            raise InvalidRequestError(
                f"--channel-names gives {len(names)} names for {total} channels"
            )
        yield [opened[0] if names is None and len(opened) == 1 else stack_channels(opened, names)]
