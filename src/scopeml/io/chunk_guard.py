"""Bound what one compressed zarr chunk may decode to, before the decoder allocates it.

The array metadata declares each chunk's size, but the compressed bytes carry their own:
numcodecs' zstd and blosc allocate what the frame header says, gzip inflates to the end. A
32 KB chunk file of an array with 1 MiB chunks can thus make one tile read allocate 1 GiB
(measured: 1.07 GB peak for zstd and blosc, 2.1 GB for gzip). :func:`guard_chunks` wraps
the compressors of an opened array so that a chunk declaring, or inflating to, more than
the array's own chunk bytes is refused with :class:`~scopeml.errors.InvalidImageError`.
Compressors other than zstd, blosc, gzip, zlib and lz4 are left as they are.
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import numpy as np

from scopeml.errors import InvalidImageError

_NUMCODEC_ATTRIBUTES = ("_zstd_codec", "_blosc_codec", "_gzip_codec")
_SLACK = 1024  # a checksum or header codec decoded after the compressor


class BoundedDecoder:
    """A numcodecs codec whose ``decode`` refuses output longer than ``limit`` bytes.

    Examples
    --------
    >>> import numcodecs
    >>> bomb = numcodecs.Zstd().encode(bytes(10**6))
    >>> BoundedDecoder(numcodecs.Zstd(), 1000, path="x.zarr").decode(bomb)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    scopeml.errors.InvalidImageError: x.zarr: a zstd chunk decodes to 1000000 bytes; ...
    >>> len(BoundedDecoder(numcodecs.Zstd(), 10**6, path="x.zarr").decode(bomb))
    1000000
    """

    def __init__(self, inner: Any, limit: int, *, path: str) -> None:
        self.inner, self.limit, self.path = inner, int(limit), path
        self.codec_id = getattr(inner, "codec_id", "")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, buf: Any) -> Any:
        return self.inner.encode(buf)

    def decode(self, buf: Any, out: Any = None) -> Any:
        data = memoryview(np.ascontiguousarray(np.frombuffer(buf, np.uint8)))
        if self.codec_id in ("gzip", "zlib"):
            inflated = self._inflate(data, 31 if self.codec_id == "gzip" else 15)
            if out is None:
                return inflated
            np.frombuffer(out, np.uint8)[: len(inflated)] = np.frombuffer(inflated, np.uint8)
            return out
        self._refuse_if_larger(_declared_size(self.codec_id, data, self.path))
        return self.inner.decode(buf, out)

    def _refuse_if_larger(self, size: int | None) -> None:
        if size is not None and size > self.limit:
            raise InvalidImageError(
                f"a {self.codec_id} chunk decodes to {size} bytes; the array's chunks hold "
                f"{self.limit}",
                path=self.path,
            )

    def _inflate(self, data: memoryview, wbits: int) -> bytes:
        decompressor = zlib.decompressobj(wbits)
        try:
            inflated = decompressor.decompress(data, self.limit + 1)
        except zlib.error as err:
            raise InvalidImageError(
                f"a {self.codec_id} chunk is corrupt: {err}", path=self.path
            ) from err
        if len(inflated) > self.limit or decompressor.unconsumed_tail:
            raise InvalidImageError(
                f"a {self.codec_id} chunk decodes to more than {self.limit} bytes, the size "
                "of the array's chunks",
                path=self.path,
            )
        return inflated


def _declared_size(codec_id: str, data: memoryview, path: str) -> int | None:
    """The decoded size a compressed chunk declares in its header (None: no such header)."""
    if codec_id == "blosc" and len(data) >= 16:
        return struct.unpack_from("<I", data, 4)[0]
    if codec_id == "lz4" and len(data) >= 4:
        return struct.unpack_from("<I", data, 0)[0]
    if codec_id == "zstd":
        size = _zstd_content_size(data)
        if size is None:
            raise InvalidImageError(
                "a zstd chunk does not declare its decoded size; refused, since decoding it "
                "could take any amount of memory",
                path=path,
            )
        return size
    return None


def _zstd_content_size(data: memoryview) -> int | None:
    """Frame_Content_Size of a zstd frame header (RFC 8878, 3.1.1.1), or None if absent."""
    if len(data) < 6 or bytes(data[:4]) != b"\x28\xb5\x2f\xfd":
        return None
    descriptor = data[4]
    fcs_flag, single_segment, dict_flag = descriptor >> 6, (descriptor >> 5) & 1, descriptor & 3
    position = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[dict_flag]
    width = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
    if width == 0 or len(data) < position + width:
        return None
    value = int.from_bytes(data[position : position + width], "little")
    return value + 256 if width == 2 else value


def guard_chunks(array: Any, *, path: str) -> None:
    """Make every compressor of the opened zarr ``array`` refuse chunks larger than its own.

    Works on the codec objects of this array's codec pipeline (zarr v3 compressors, also
    inside a sharding codec, and a v2 ``compressor``), so nothing global changes.
    """
    try:
        itemsize = np.dtype(array.dtype).itemsize
    except TypeError:
        return  # variable-length data: no fixed chunk size to hold it to
    limit = math.prod(array.chunks) * itemsize + _SLACK
    pipeline = getattr(getattr(array, "async_array", None), "codec_pipeline", None)
    codecs = [
        *getattr(pipeline, "array_array_codecs", ()),
        getattr(pipeline, "array_bytes_codec", None),
        *getattr(pipeline, "bytes_bytes_codecs", ()),
    ]
    while codecs:
        codec = codecs.pop()
        if codec is None:
            continue
        codecs.extend(getattr(codec, "codecs", ()) or ())  # a sharding codec's inner codecs
        for name in _NUMCODEC_ATTRIBUTES:
            if name in type(codec).__dict__:  # a cached property: set the instance's value
                inner = getattr(codec, name)
                if not isinstance(inner, BoundedDecoder):
                    codec.__dict__[name] = BoundedDecoder(inner, limit, path=path)
        compressor = getattr(codec, "compressor", None)  # zarr v2
        if compressor is not None and not isinstance(compressor, BoundedDecoder):
            object.__setattr__(codec, "compressor", BoundedDecoder(compressor, limit, path=path))
