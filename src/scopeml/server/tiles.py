"""Tiles on the wire: ``.npy`` bytes or raw bytes with dtype/shape headers, never base64 JSON.

A request body is untrusted: :func:`decode_tile` accepts only plain numeric arrays (no pickle, no
object or structured dtypes), checks the declared size against the bytes that arrived, and
:func:`check_tile` checks channels and spatial sizes against the model's spec. Both raise
:class:`~scopeml.errors.InvalidRequestError` with a message that says what was wrong.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import numpy as np

from scopeml.errors import InvalidRequestError
from scopeml.model.spec import ModelSpec
from scopeml.tiling.outputs import class_labels

NPY_MAGIC = b"\x93NUMPY"
NPY_MEDIA_TYPE = "application/x-npy"
DTYPE_HEADER = "x-tile-dtype"
SHAPE_HEADER = "x-tile-shape"
ALLOWED_KINDS = "uif"  # unsigned, signed, float: microscopy pixel values
MAX_DIMS = 8
MAX_NPY_HEADER = 10_000  # numpy's own default limit on a header it parses


def decode_tile(body: bytes | bytearray, headers: Mapping[str, str] | None = None) -> np.ndarray:
    """Turn a request body into an array: ``.npy`` bytes, or raw bytes described by headers.

    Raw bytes need ``X-Tile-Dtype`` (a numpy dtype string such as ``<f4`` or ``uint16``) and
    ``X-Tile-Shape`` (comma-separated sizes); without them the body must be ``.npy``.

    Examples
    --------
    >>> raw = np.arange(6, dtype=np.uint16).tobytes()
    >>> decode_tile(raw, {"X-Tile-Dtype": "uint16", "X-Tile-Shape": "1,2,3"}).shape
    (1, 2, 3)
    >>> decode_tile(encode_array(np.zeros((2, 2), np.float32))).dtype
    dtype('float32')
    >>> huge = {"X-Tile-Dtype": "uint8", "X-Tile-Shape": f"{2**62 + 1},4"}  # 2**64 + 4 bytes
    >>> decode_tile(b"\\0" * 4, huge)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: tile body has 4 bytes; ... need 18446744073709551620
    """
    lower = {key.lower(): value for key, value in (headers or {}).items()}
    if SHAPE_HEADER in lower or DTYPE_HEADER in lower:
        return _decode_raw(body, lower.get(DTYPE_HEADER), lower.get(SHAPE_HEADER))
    if not bytes(body[: len(NPY_MAGIC)]) == NPY_MAGIC:
        raise InvalidRequestError(
            "tile body is neither .npy data (no NUMPY magic) nor raw bytes with "
            "X-Tile-Dtype and X-Tile-Shape headers"
        )
    return _decode_npy(body)


def _decode_npy(body: bytes | bytearray) -> np.ndarray:
    """A view of the ``.npy`` body's data (no copy), after its header is read and checked."""
    header = io.BytesIO(bytes(body[: MAX_NPY_HEADER + 16]))  # the header only, never the data
    try:
        version = np.lib.format.read_magic(header)
        readers = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }
        if version not in readers:
            raise InvalidRequestError(
                f"tile body is .npy format version {version}; use 1.0 or 2.0 (numpy.save)"
            )
        shape, fortran_order, dtype = readers[version](header)
    except InvalidRequestError:
        raise
    except Exception as err:  # numpy raises ValueError, OSError, EOFError, SyntaxError ...
        # numpy's words echo the header (and its parser's objects): not passed on
        raise InvalidRequestError(
            f"tile body is not a readable .npy array (its header does not parse: "
            f"{type(err).__name__}); write it with numpy.save"
        ) from err
    if any(n < 0 for n in shape):
        raise InvalidRequestError(f"tile body's .npy header declares shape {shape}: sizes < 0")
    _check_dtype(dtype)
    offset = header.tell()
    expected = math.prod(shape) * dtype.itemsize
    if expected != len(body) - offset:
        raise InvalidRequestError(
            f"tile body has {len(body) - offset} data bytes; its .npy header "
            f"({dtype}, shape {shape}) needs {expected}"
        )
    array = np.frombuffer(body, dtype=dtype, count=math.prod(shape), offset=offset)
    return array.reshape(shape, order="F" if fortran_order else "C")


def _decode_raw(
    body: bytes | bytearray, dtype_text: str | None, shape_text: str | None
) -> np.ndarray:
    if not dtype_text or not shape_text:
        raise InvalidRequestError("raw tile bytes need both X-Tile-Dtype and X-Tile-Shape headers")
    try:
        dtype = np.dtype(dtype_text.strip())
    except TypeError as err:
        raise InvalidRequestError(f"X-Tile-Dtype {dtype_text!r} is not a numpy dtype") from err
    _check_dtype(dtype)
    try:
        shape = tuple(int(part) for part in shape_text.split(","))
    except ValueError as err:
        raise InvalidRequestError(
            f"X-Tile-Shape {shape_text!r} is not comma-separated integers"
        ) from err
    if not 1 <= len(shape) <= MAX_DIMS or any(n < 1 for n in shape):
        raise InvalidRequestError(f"X-Tile-Shape {shape} must be 1 to {MAX_DIMS} sizes >= 1")
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow, however large
    if expected != len(body):
        raise InvalidRequestError(
            f"tile body has {len(body)} bytes; dtype {dtype} and shape {shape} need {expected}"
        )
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        pickled = " (objects would need pickle, which is never loaded)" if dtype.hasobject else ""
        raise InvalidRequestError(
            f"tile dtype {dtype} is not supported{pickled}; send integer or float pixel values"
        )


def tile_memory(
    tile: np.ndarray, spec: ModelSpec, body_bytes: int, runtime_per_pixel: float = 0.0
) -> int:
    """Bytes the server holds for one tile request at its peak: the body, the float32 batch
    (unless the body is float32 already), the model's float32 output ``N×K×…`` and its encoded
    copy (measured in ``tests/server/test_memory.py``), and the model runtime's working memory,
    ``runtime_per_pixel`` bytes per pixel (:func:`scopeml.server.models.runtime_bytes_per_pixel`).

    Examples
    --------
    >>> spec = ModelSpec(2, 1, ("bg", "fg"), (0, 0))
    >>> tile = np.zeros((1, 100, 100), np.uint16)  # 20 kB
    >>> tile_memory(tile, spec, tile.nbytes)  # body + float32 copy + 2 × 2 classes × float32
    220000
    >>> tile_memory(tile, spec, tile.nbytes, runtime_per_pixel=300.0)  # + 300 B × 10⁴ pixels
    3220000
    """
    dims = spec.spatial_dims
    n_tiles = tile.shape[0] if tile.ndim == dims + 2 else 1
    pixels = math.prod(tile.shape[-dims:]) if tile.ndim >= dims else 0
    batch = 0 if tile.dtype == np.float32 else math.prod(tile.shape) * 4
    runtime = math.ceil(n_tiles * pixels * runtime_per_pixel)
    return body_bytes + batch + 2 * n_tiles * spec.n_classes * pixels * 4 + runtime


def check_tile(array: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Check a tile (``C×[Z×]Y×X``) or batch (``N×C×[Z×]Y×X``) against a model; return a batch.

    The batch is float32: a czmodel graph gets raw pixel values as float32.

    Examples
    --------
    >>> spec = ModelSpec(2, 1, ("bg", "fg"), (8, 8), tile_step=(4, 4))
    >>> check_tile(np.zeros((1, 16, 16), np.uint16), spec).shape
    (1, 1, 16, 16)
    """
    dims = spec.spatial_dims
    if array.ndim == dims + 1:
        array = array[np.newaxis]
    elif array.ndim != dims + 2:
        axes = "[Z×]Y×X" if dims == 3 else "Y×X"
        raise InvalidRequestError(
            f"tile has {array.ndim} dimensions; the {dims}-D model takes C×{axes} "
            f"({dims + 1}) or N×C×{axes} ({dims + 2})"
        )
    if array.shape[1] != spec.in_channels:
        raise InvalidRequestError(
            f"tile has {array.shape[1]} channels; model expects {spec.in_channels}"
        )
    spatial = tuple(array.shape[2:])
    if array.shape[0] < 1 or min(spatial) < 1:
        raise InvalidRequestError(f"tile has an empty axis: shape {tuple(array.shape)}")
    if spec.tile_shape is not None and spatial != tuple(spec.tile_shape):
        raise InvalidRequestError(
            f"tile has spatial size {spatial}; model takes exactly {tuple(spec.tile_shape)}"
        )
    if any(size % step for size, step in zip(spatial, spec.tile_step, strict=True)):
        raise InvalidRequestError(
            f"tile has spatial size {spatial}; model needs multiples of {tuple(spec.tile_step)}"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def encode_array(array: np.ndarray) -> memoryview:
    """``.npy`` bytes of an array (the response format of tile prediction), made in one buffer.

    The array's data is copied once, straight after the header: no intermediate copies.

    Examples
    --------
    >>> data = encode_array(np.arange(3, dtype=np.uint8))
    >>> bytes(data[:6]), np.load(io.BytesIO(data)).tolist()
    (b'\\x93NUMPY', [0, 1, 2])
    """
    array = np.ascontiguousarray(array)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    start = header.tell()
    buffer = bytearray(start + array.nbytes)
    buffer[:start] = header.getvalue()
    np.frombuffer(buffer, dtype=array.dtype, offset=start).reshape(array.shape)[...] = array
    return memoryview(buffer)


def finite_batch(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """An ``N×C×…`` batch with each pixel non-finite in any channel set to 0, and the ``N×…``
    mask of those pixels (``None``: none), by the engine's rule
    (:func:`~scopeml.io.nonfinite.replace_nonfinite`).

    Examples
    --------
    >>> batch, invalid = finite_batch(np.array([[[1.0, np.inf]], [[2.0, 3.0]]], np.float32))
    >>> batch.tolist(), invalid.tolist()
    ([[[1.0, 0.0]], [[2.0, 3.0]]], [[False, True], [False, False]])
    """
    from scopeml.io.nonfinite import replace_nonfinite

    replaced, invalid = replace_nonfinite(np.moveaxis(batch, 1, 0))  # C×N×…: masks N×…
    return np.moveaxis(replaced, 0, 1), invalid


def labels_from_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Labels as the engine writes them: class ``k`` (channel ``k`` of axis 1) is label ``k + 1``.

    Examples
    --------
    >>> labels_from_probabilities(np.array([[[0.2]], [[0.8]]], np.float32)[np.newaxis])
    array([[[2]]], dtype=uint8)
    """
    return class_labels(probabilities, axis=1)
