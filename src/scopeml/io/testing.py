"""Small seeded images in the formats scopeml reads, for tests and benchmarks.

Nothing here is used by scopeml itself; it lets tests build a CZI mosaic, an OME-TIFF or an
OME-Zarr in a temporary folder instead of committing files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from scopeml.io.image import AXES
from scopeml.synthetic import synthetic_nuclei


def nuclei_image(shape: tuple[int, ...], channels: int = 2, seed: int = 0) -> np.ndarray:
    """``C×(Z×)Y×X`` uint16 synthetic nuclei, dense enough that small crops hold some.

    Examples
    --------
    >>> nuclei_image((8, 10)).shape
    (2, 8, 10)
    """
    image, _ = synthetic_nuclei(shape, channels=channels, density=0.004, seed=seed)
    return image


def write_czi(
    path: str | Path,
    scenes: Sequence[tuple[np.ndarray, tuple[int, int]]],
    *,
    channel_names: Sequence[str] = (),
    pixel_sizes: Mapping[str, float] | None = None,
    tile: int | None = None,
    zen_dimensions: str = "",
) -> Path:
    """Write a gray CZI with one scene per ``(C×Z×Y×X array, (x, y) mosaic origin)``.

    Origins are absolute mosaic coordinates and may be negative. ``tile`` splits each plane
    into mosaic tiles of that size (the CZI ``M`` index); pixel sizes are in micrometres.
    ``zen_dimensions``: XML put first in the metadata's ``Dimensions``, as ZEN writes it
    (scene names, time positions: see :func:`put_in_dimensions`). Needs pylibCZIrw.
    """
    from pylibCZIrw import czi

    path = Path(path)
    sizes = dict(pixel_sizes or {})
    with czi.create_czi(str(path), exist_ok=True) as writer:
        for index, (data, (x0, y0)) in enumerate(scenes):
            n_c, n_z, height, width = data.shape
            step_y, step_x = (tile, tile) if tile else (height, width)
            for c in range(n_c):
                for z in range(n_z):
                    for y in range(0, height, step_y):
                        for x in range(0, width, step_x):
                            part = data[c, z, y : y + step_y, x : x + step_x]
                            writer.write(
                                np.ascontiguousarray(part)[..., None],
                                plane={"C": c, "Z": z, "T": 0},
                                location=(x0 + x, y0 + y),
                                scene=index,
                            )
        writer.write_metadata(
            path.stem,
            channel_names=dict(enumerate(channel_names)),
            scale_x=sizes.get("X", 0.0) * 1e-6,  # CZI stores metres
            scale_y=sizes.get("Y", 0.0) * 1e-6,
            scale_z=sizes.get("Z", 0.0) * 1e-6,
            custom_attributes=ROOM if zen_dimensions else None,
        )
    return put_in_dimensions(path, zen_dimensions) if zen_dimensions else path


#: A custom attribute that makes room in a CZI's metadata for :func:`put_in_dimensions`.
ROOM = {"Placeholder": "x" * 600}


def put_in_dimensions(path: Path, element: str) -> Path:
    """Put ``element`` first in the ``Dimensions`` of a CZI written with ``custom_attributes=
    ROOM``, in place of that room.

    pylibCZIrw's ``write_metadata`` cannot write ZEN's scene names or time positions (its
    custom attributes go under ``Information/CustomAttributes`` and refuse paths), so the XML
    is swapped in the file's metadata segment for the same XML without the room and with
    ``element``, padded with spaces to the same byte length (the segment's sizes stay true).
    libCZI then reads that XML back as it reads ZEN's.
    """
    data = path.read_bytes()
    start = data.index(b"<ImageDocument>")
    end = data.index(b"</ImageDocument>") + len(b"</ImageDocument>")
    xml = data[start:end].decode("utf-8")
    xml = re.sub(r"<CustomAttributes>.*?</CustomAttributes>", "", xml, flags=re.S)
    edited = xml.replace("<Dimensions>", f"<Dimensions>{element}", 1).encode("utf-8")
    if len(edited) > end - start:
        raise ValueError(f"{len(edited) - (end - start)} bytes more than the room made")
    path.write_bytes(data[:start] + edited.ljust(end - start, b" ") + data[end:])
    return path


def to_stczyx(array: np.ndarray, axes: str) -> np.ndarray:
    """View an array whose axes are the letters ``axes`` as ``S T C Z Y X``.

    Examples
    --------
    >>> to_stczyx(np.zeros((4, 5, 3)), "YXC").shape
    (1, 1, 3, 1, 4, 5)
    """
    out = array
    for axis in AXES:
        if axis not in axes:
            out = out[np.newaxis]
            axes = axis + axes
    return out.transpose([axes.index(a) for a in AXES])
