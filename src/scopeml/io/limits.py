"""Limits on what an image may declare, checked when it is opened, before any pixel is read.

A few hundred bytes can declare a 10⁶ × 10⁶ TIFF or a 10¹² × 10¹² OME-Zarr, or a chunk that
decodes to gigabytes; planning tiles over such an image, or reading one tile of it, then costs
memory and time out of all proportion to the file. The readers compare declared sizes with
these limits and with the data really present (TIFF strips and tiles must exist in the file),
and refuse with :class:`~scopeml.errors.InvalidImageError` naming the file and both values.

Defaults are module constants; each can be overridden by an environment variable (read when
:func:`default_limits` is called) or by passing an :class:`ImageLimits` to ``open_image``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from os import PathLike
from typing import Any

from scopeml.errors import InvalidImageError, InvalidRequestError

MAX_PIXELS = 2**40
MAX_AXIS = 2**31
MAX_CHUNK_BYTES = 256 * 2**20
# zlib on all-zero 256² tiles compresses ~710:1, zstd on 1024² tiles ~17,000:1 (tifffile)
MAX_COMPRESSION_RATIO = 2**18

ENV = {
    "max_pixels": "SCOPEML_MAX_IMAGE_PIXELS",
    "max_axis": "SCOPEML_MAX_IMAGE_AXIS",
    "max_chunk_bytes": "SCOPEML_MAX_CHUNK_BYTES",
    "max_compression_ratio": "SCOPEML_MAX_COMPRESSION_RATIO",
}


@dataclass(frozen=True)
class ImageLimits:
    """What an opened image may declare.

    Parameters
    ----------
    max_pixels
        Most pixels (product of all axes, scenes included) of an image.
    max_axis
        Most pixels along any one axis.
    max_chunk_bytes
        Most decoded bytes of one chunk, TIFF tile or strip, or zarr shard index: the memory
        one region read may need whatever its size. An uncompressed TIFF strip that really is
        in the file may be larger.
    max_compression_ratio
        Most declared (decoded) bytes of a TIFF per byte of file(s).

    Examples
    --------
    >>> limits = ImageLimits(max_pixels=100)
    >>> ImageLimits.from_dict(limits.to_dict()) == limits
    True
    >>> limits.check_shape((1, 1, 1, 1, 20, 20), path="big.tif")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    scopeml.errors.InvalidImageError: big.tif: the image declares 400 pixels (20×20); the ...
    """

    max_pixels: int = MAX_PIXELS
    max_axis: int = MAX_AXIS
    max_chunk_bytes: int = MAX_CHUNK_BYTES
    max_compression_ratio: float = MAX_COMPRESSION_RATIO

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidRequestError(f"image limit {field.name} must be > 0; got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageLimits:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidRequestError(
                f"unknown image limits {sorted(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ImageLimits:
        """The defaults, each overridden by its environment variable (see ``ENV``) when set."""
        environ = os.environ if environ is None else environ
        changes: dict[str, Any] = {}
        for name, variable in ENV.items():
            text = environ.get(variable, "").strip()
            if not text:
                continue
            try:
                value = float(text) if name == "max_compression_ratio" else int(float(text))
            except ValueError as err:
                raise InvalidRequestError(
                    f"environment variable {variable}={text!r} is not a number"
                ) from err
            changes[name] = value
        return replace(cls(), **changes)

    def check_shape(self, shape: Sequence[int], *, path: str | PathLike[str] | None) -> None:
        """Refuse a declared shape with too many pixels in all or along one axis."""
        pixels = math.prod(int(n) for n in shape)
        described = "×".join(str(int(n)) for n in shape if n != 1) or "1"
        if pixels > self.max_pixels:
            raise InvalidImageError(
                f"the image declares {pixels} pixels ({described}); the limit is {self.max_pixels}",
                path=path,
            )
        longest = max((int(n) for n in shape), default=0)
        if longest > self.max_axis:
            raise InvalidImageError(
                f"the image declares {longest} pixels along one axis ({described}); the limit "
                f"is {self.max_axis}",
                path=path,
            )

    def check_chunk(
        self, shape: Sequence[int], itemsize: int, *, what: str, path: str | PathLike[str] | None
    ) -> None:
        """Refuse a chunk (tile, strip, shard index) of more than ``max_chunk_bytes``."""
        nbytes = math.prod(int(n) for n in shape) * int(itemsize)
        if nbytes > self.max_chunk_bytes:
            described = "×".join(str(int(n)) for n in shape)
            raise InvalidImageError(
                f"{what} of {described} pixels decodes to {nbytes} bytes; the limit is "
                f"{self.max_chunk_bytes}",
                path=path,
            )


def default_limits() -> ImageLimits:
    """The limits in force: the module defaults, overridden by the ``SCOPEML_MAX_*`` variables."""
    return ImageLimits.from_env()
