"""What one image's analysis writes: label stores, per-class tables and an overview PNG.

Everything goes into the image's temporary results folder, which the runner moves into place
when the image is complete, so nothing half-written ever sits at a final path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scopeml.objects.label import iter_tiles

__all__ = [
    "CLASS_COLOURS",
    "LabelStores",
    "draw_overview",
    "outlines",
    "parquet_available",
    "scale_bar_length",
    "write_tables",
]

#: Outline colours, one per class in settings order (repeating).
CLASS_COLOURS = (
    (255, 64, 64),
    (64, 220, 64),
    (80, 140, 255),
    (255, 200, 0),
    (255, 0, 255),
    (0, 230, 230),
    (255, 128, 0),
)
OVERVIEW_SIZE = 1024


class LabelStores:
    """One OME-Zarr label store per class, ``[T][Z]YX``; several scenes as images ``0, 1, …``,
    each of its scene's size; each image marked as an NGFF ``image-label`` (the object ids, no
    class properties; the channel named by the class, its display window the ids written, set
    by :meth:`finish`). ``scenes``: one image (``S`` = 1) per scene, for its sizes and pixel
    sizes (``T``, seconds: the time step on the NGFF ``t`` axis, as ``segment``'s stores)."""

    def __init__(
        self, folder: Path, names: Sequence[str], *, scenes: Sequence[Any], tile_size: int
    ) -> None:
        import zarr

        from scopeml.io.omezarr import create_ome_zarr, mark_label_image

        z = "Z" if any(scene.sizes["Z"] > 1 for scene in scenes) else ""
        t = "T" if any(scene.sizes["T"] > 1 for scene in scenes) else ""
        self._has_t, self._has_z = bool(t), bool(z)
        self._arrays, self._groups, self._largest = {}, {}, {}
        for name in names:
            store = folder / f"{name}.ome.zarr"
            groups = [store] if len(scenes) == 1 else [store / str(s) for s in range(len(scenes))]
            self._arrays[name] = []
            for group, scene in zip(groups, scenes, strict=True):
                sizes, axes = scene.sizes, t + z + "YX"
                shape = tuple(sizes[a] for a in axes)
                chunks = (1,) * len(t + z) + (min(tile_size, sizes["Y"]),
                                              min(tile_size, sizes["X"]))  # fmt: skip
                self._arrays[name].append(create_ome_zarr(
                    group, shape=shape, dtype=np.int32, axes=axes, chunks=chunks,  # as segment's:
                    pixel_sizes={a: v for a, v in scene.pixel_sizes.items() if a in axes},
                    name=name, root=store, channel_names=[name],
                ))  # fmt: skip
                mark_label_image(zarr.open_group(str(group), mode="r+"), ())  # napari opens labels
            self._groups[name] = groups

    def write(
        self, name: str, scene: int, time: int, labels: np.ndarray, *, region: tuple = ()
    ) -> None:
        """Write one plane (``(Z×)Y×X``) of a class's labels, or the ``region`` of it given
        (a 2-D one in a store with Z, for scenes of which only some are stacks: at Z 0)."""
        array = self._arrays[name][scene]
        flat = (0,) if self._has_z and labels.ndim == 2 else ()
        array[((time,) if self._has_t else ()) + flat + tuple(region)] = labels
        if labels.size:
            key = (name, scene)
            self._largest[key] = max(self._largest.get(key, 0), int(labels.max()))

    def write_tiled(self, name: str, scene: int, time: int, labels: Any, tile_size: int) -> None:
        """:meth:`write` a plane in memory (numpy) at once, one in a zarr store tile by tile."""
        if isinstance(labels, np.ndarray):
            self.write(name, scene, time, labels)
            return
        for region in iter_tiles(labels.shape, (tile_size, tile_size)):
            self.write(name, scene, time, np.asarray(labels[region]), region=region)

    def finish(self, *, ome_tiff: bool = False) -> None:
        """Set each image's display window to the ids written (Fiji showed a window of
        ±2³¹: black) and add its lower resolutions; with ``ome_tiff``, copy each class's
        store to ``CLASS.ome.tif`` beside it (a scene per image series), for readers without
        OME-Zarr 0.5 (Fiji's Bio-Formats)."""
        import zarr

        from scopeml.io.omezarr import set_display_window
        from scopeml.io.pyramid import add_levels

        for name, groups in self._groups.items():
            for scene, group in enumerate(groups):
                largest = self._largest.get((name, scene), 0)
                set_display_window(zarr.open_group(str(group), mode="r+"), largest)
                add_levels(group, "mode")  # a viewer shows a huge one whole from a small level
            if ome_tiff:
                self._copy(name, groups)

    @staticmethod
    def _copy(name: str, groups: list[Path]) -> None:
        """``CLASS.ome.tif`` beside the store: pyramidal for one scene (its levels as each
        plane's sub-resolutions); several scenes are copied at full resolution only."""
        from scopeml.io import open_image
        from scopeml.io.ometiff import copy_to_ome_tiff, write_ome_tiff

        if len(groups) == 1:
            copy_to_ome_tiff(groups[0], groups[0].with_name(f"{name}.ome.tif"), name)
            return
        with open_image(groups[0].parent) as labels:
            write_ome_tiff(groups[0].parent.with_name(f"{name}.ome.tif"), labels, labels=())


def parquet_available() -> bool:
    """Whether pyarrow is installed (Parquet tables are written only then)."""
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None


def write_tables(tables: Mapping[str, pd.DataFrame], folder: Path, *, parquet: bool) -> list[Path]:
    """Write one CSV (and Parquet) per class; return the paths written."""
    from scopeml.io.replace import atomic_write

    written = []
    for name, table in tables.items():
        kinds = ["csv"] + (["parquet"] if parquet and parquet_available() else [])
        for kind in kinds:
            path = folder / f"{name}.{kind}"
            with atomic_write(path, fsync=False) as temp:
                if kind == "csv":
                    table.to_csv(temp, index=False)
                else:
                    table.to_parquet(temp, index=False)
            written.append(path)
    return written


def draw_overview(
    background: np.ndarray,
    labels: Mapping[str, np.ndarray],
    path: Path,
    *,
    colours: Mapping[str, tuple[int, int, int]],
    pixel_size: float | None = None,
    in_colour: bool = False,
) -> Path:
    """A PNG of ``background`` (``(Z×)Y×X``; Z shown as its maximum; ``in_colour``:
    ``3×(Z×)Y×X``, red, green and blue, one stretch for the three so hues stay, as an RGB
    image's overview was drawn grey from one of them) with the objects of each
    class outlined in its colour, shrunk to at most 1024 pixels a side, over a white band with
    the legend (each class's colour and name) and, where ``pixel_size`` (µm per pixel of
    ``background`` along X) is known, a scale bar. Classes are drawn from the last of
    ``labels`` to the first, so a parent's outlines (the line where it was split, too) stay
    above its children's.

    The image keeps its own pixels at the top left (``png[:height, :width]``); the band is
    below it, the canvas wider than the image only where the legend needs it.

    Examples
    --------
    >>> import tempfile
    >>> image = np.zeros((8, 8)); image[2:6, 2:6] = 1
    >>> out = draw_overview(image, {"a": (image > 0).astype(int)}, Path(tempfile.mkdtemp())
    ...                     / "o.png", colours={"a": (255, 0, 0)}, pixel_size=0.5)
    >>> from PIL import Image as PILImage
    >>> PILImage.open(out).getpixel((2, 2))
    (255, 0, 0)
    >>> PILImage.open(out).text["scale_bar"]
    '0.5 µm = 1.0 px'
    """
    from PIL import Image as PILImage

    from scopeml.io.replace import atomic_write

    pixels = np.asarray(background, np.float32)
    plane = np.stack([_project(c) for c in pixels] if in_colour else [_project(pixels)], -1)
    step = max(1, -(-max(plane.shape[:2]) // OVERVIEW_SIZE))
    plane = plane[::step, ::step]
    finite = plane[np.isfinite(plane)]
    low, high = np.percentile(finite, (1, 99.8)) if finite.size else (0.0, 1.0)
    shown = np.clip((plane - low) / ((high - low) or 1.0), 0, 1) * 200
    rgb = np.repeat(np.nan_to_num(shown).astype(np.uint8), 3 // plane.shape[2], axis=2)
    for name, objects in reversed(labels.items()):
        shown = _project(np.asarray(objects))[::step, ::step]
        rgb[outlines(shown)] = colours[name]
    scale = None if not pixel_size else float(pixel_size) * step
    canvas, info = _with_legend(PILImage.fromarray(rgb), {n: colours[n] for n in labels}, scale)
    with atomic_write(path, fsync=False) as temp:
        canvas.save(temp, format="PNG", pnginfo=info, compress_level=1)
    return path


def scale_bar_length(pixel_size: float, width: int) -> float:
    """A round length in µm (1, 2 or 5 ×10ⁿ) that spans at most a fifth of ``width`` pixels
    of ``pixel_size`` µm (at least one pixel).

    >>> scale_bar_length(0.325, 1024)  # 1024 px of 0.325 µm: 333 µm across
    50.0
    """
    most = max(width / 5 * pixel_size, pixel_size)
    power = 10.0 ** np.floor(np.log10(most))
    return float(max(m * power for m in (1, 2, 5) if m * power <= most))


def _with_legend(
    image: Any, colours: Mapping[str, tuple[int, int, int]], pixel_size: float | None
) -> tuple[Any, Any]:
    """``image`` over a white band: a swatch and the name per class, then the scale bar."""
    from PIL import Image as PILImage
    from PIL import ImageDraw
    from PIL.PngImagePlugin import PngInfo

    from scopeml.analysis.charts import font, text

    face, gap, row = font(12), 14, 20
    measure = ImageDraw.Draw(PILImage.new("L", (1, 1)))
    items: list[tuple[float, Any]] = []  # (width, draw(x, y))
    for name, colour in colours.items():
        label = text(name, face)

        def swatch(draw: Any, x: float, y: float, c: Any = colour, s: str = label) -> None:
            draw.rectangle([x, y + 3, x + 11, y + 14], fill=tuple(c), outline="black")
            draw.text((x + 16, y + 1), s, fill="black", font=face)

        items.append((16 + measure.textlength(label, font=face), swatch))
    info = PngInfo()
    info.add_itxt("legend", ", ".join(colours))
    if pixel_size:
        microns = scale_bar_length(pixel_size, image.width)
        length = microns / pixel_size
        caption = text(f"{microns:g} µm", face)
        info.add_itxt("scale_bar", f"{microns:g} µm = {length:.1f} px")

        def bar(draw: Any, x: float, y: float) -> None:
            draw.rectangle([x, y + 7, x + length - 1, y + 11], fill="black")
            draw.text((x + length + 5, y + 1), caption, fill="black", font=face)

        items.append((length + 5 + measure.textlength(caption, font=face), bar))
    width = max(image.width, int(max((w for w, _ in items), default=0)) + 2 * gap // 2)
    placed, x, y = [], gap / 2, 4.0
    for w, draw_item in items:
        if x > gap / 2 and x + w > width - gap / 2:
            x, y = gap / 2, y + row
        placed.append((x, y, draw_item))
        x += w + gap
    canvas = PILImage.new("RGB", (width, image.height + int(y) + row + 4), "white")
    canvas.paste(image, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for x, y, draw_item in placed:
        draw_item(draw, x, image.height + y)
    return canvas, info


def outlines(labels: np.ndarray) -> np.ndarray:
    """The objects' pixels with a 4-neighbour of another value: ``skimage.segmentation.
    find_boundaries(labels, mode="inner")`` by two neighbour comparisons per axis (its grey
    dilation and erosion took half the overview's time).

    Examples
    --------
    >>> outlines(np.array([[0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1]])).astype(int)
    array([[0, 1, 0, 0],
           [0, 1, 0, 0],
           [0, 1, 0, 0]])
    """
    labels = np.asarray(labels)
    edges = np.zeros(labels.shape, bool)
    for axis in range(labels.ndim):
        front = [slice(None)] * labels.ndim
        back = [slice(None)] * labels.ndim
        front[axis], back[axis] = slice(1, None), slice(None, -1)
        differ = labels[tuple(front)] != labels[tuple(back)]
        edges[tuple(front)] |= differ
        edges[tuple(back)] |= differ
    return edges & (labels != 0)


def _project(array: np.ndarray) -> np.ndarray:
    return array.max(axis=0) if array.ndim == 3 else array
