"""Images that lie about their size are refused when opened, in bounded memory (issue #18).

A few hundred bytes can declare 10⁶ × 10⁶ pixels (TIFF), 10¹² × 10¹² (OME-Zarr) or one chunk of
20000² pixels; each is refused before any pixel is read, with an error naming the file and the
two values compared. Memory is measured with tracemalloc (numpy, zarr and tifffile allocate
through it), never time.
"""

from __future__ import annotations

import math
import struct
import subprocess
import sys
import tracemalloc
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scopeml.errors import InvalidImageError, InvalidRequestError
from scopeml.io import create_ome_zarr, open_image
from scopeml.io.limits import ENV, MAX_CHUNK_BYTES, MAX_PIXELS, ImageLimits, default_limits
from scopeml.io.testing import nuclei_image

MEMORY_BOUND = 200 * 2**20


def peak_memory_of_refusal(open_call: Callable[[], object]) -> tuple[InvalidImageError, int]:
    """The error ``open_call`` raises and the peak memory traced while it ran."""
    tracemalloc.start()
    try:
        with pytest.raises(InvalidImageError) as info:
            open_call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return info.value, peak


def lying_tiff(path: Path, *, compression: str | None = None, tile=None, **tags: object) -> Path:
    """A 16 × 16 TIFF whose tags are then patched in place to claim something else."""
    data = np.full((16, 16), 3, np.uint8)
    tifffile.imwrite(path, data, metadata=None, compression=compression, tile=tile)
    with tifffile.TiffFile(path, mode="r+") as tf:
        for name, value in tags.items():
            tf.pages.first.tags[name].overwrite(value)
    return path


MILLION = 10**6
LYING_TIFFS = {
    # name: (writer options, patched tags, words the error must contain)
    "strips": ({}, {"ImageWidth": MILLION, "ImageLength": MILLION}, ["62500"]),
    "tiles": (
        {"tile": (16, 16)},
        {"ImageWidth": MILLION, "ImageLength": MILLION},
        ["3906250000 tiles", "holds 1"],
    ),
    "one uncompressed strip": (
        {},
        {"ImageWidth": MILLION, "ImageLength": MILLION, "RowsPerStrip": MILLION},
        ["1000000000000 bytes", "hold 256"],
    ),
    "one compressed strip": (
        {"compression": "zlib"},
        {"ImageWidth": MILLION, "ImageLength": MILLION, "RowsPerStrip": MILLION},
        ["1000000000000 bytes", f"limit is {MAX_CHUNK_BYTES}"],
    ),
    "short strip byte count": ({}, {"StripByteCounts": (10,)}, ["256 bytes", "hold 10"]),
    # tifffile's own words were "self.rowsperstrip=0 < 1"
    "no rows per strip": ({}, {"RowsPerStrip": 0}, ["rowsperstrip tag is out of range (0 < 1)"]),
}


@pytest.mark.parametrize("case", list(LYING_TIFFS))
def test_a_tiny_tiff_lying_about_its_size_is_refused_in_bounded_memory(tmp_path, case):
    options, tags, words = LYING_TIFFS[case]
    path = lying_tiff(tmp_path / "liar.tif", **options, **tags)
    assert path.stat().st_size < 600  # the file was 378 bytes
    error, peak = peak_memory_of_refusal(lambda: open_image(path))
    assert error.path == str(path)
    for word in words:
        assert word in error.problem
    assert peak < MEMORY_BOUND


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    width=st.one_of(st.integers(1, 40), st.integers(1, 10**7)),
    height=st.one_of(st.integers(1, 40), st.integers(1, 10**7)),
    tiled=st.booleans(),
)
def test_a_patched_tiff_opens_only_if_its_data_covers_what_it_declares(
    tmp_path_factory, width, height, tiled
):
    """16 × 16 pixels of data (one tile, or one 16-row strip of 256 bytes) back a declared
    size only if one tile or strip covers it: anything needing more is refused."""
    path = tmp_path_factory.mktemp("patched") / "x.tif"
    lying_tiff(path, tile=(16, 16) if tiled else None, ImageWidth=width, ImageLength=height)
    # one tile must hold the whole declared image; or one strip of 16 rows and 256 bytes
    covered = max(width, height) <= 16 if tiled else height <= 16 and width * height <= 256
    if covered:
        with open_image(path) as image:
            assert image.shape[-2:] == (height, width)
            image.read()
    else:
        _, peak = peak_memory_of_refusal(lambda: open_image(path))
        assert peak < MEMORY_BOUND


BILLION = 10**9
LYING_OME_XML = {
    # (SizeZ, TiffData attributes): words of the error
    "SizeZ": ((BILLION, f'FirstZ="{BILLION - 1}" IFD="0" PlaneCount="1"'), "1000000000 planes"),
    "PlaneCount": ((1, f'IFD="0" PlaneCount="{BILLION}"'), "PlaneCount=1000000000"),
    "NumPlanes": ((1, f'IFD="0" NumPlanes="{BILLION}"'), "NumPlanes=1000000000"),
    "negative IFD": ((1, 'IFD="-5"'), "IFD=-5"),
}


@pytest.mark.parametrize("case", list(LYING_OME_XML))
def test_an_ome_tiff_declaring_a_billion_planes_is_refused_before_tifffile_lists_them(
    tmp_path, case
):
    """tifffile makes one list entry per declared OME plane (unchecked, 8 GB for 10⁹ planes;
    under a 3 GB address-space limit it died of MemoryError); the XML is checked first."""
    (size_z, tiffdata), words = LYING_OME_XML[case]
    file_uuid = uuid.uuid4()
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
        f'UUID="urn:uuid:{file_uuid}"><Image ID="Image:0">'
        '<Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="16" SizeY="16" '
        f'SizeZ="{size_z}" SizeC="1" SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
        f"<TiffData {tiffdata}>"
        f'<UUID FileName="liar.ome.tif">urn:uuid:{file_uuid}</UUID></TiffData>'
        "</Pixels></Image></OME>"
    )
    path = tmp_path / "liar.ome.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8), description=xml, metadata=None)
    error, peak = peak_memory_of_refusal(lambda: open_image(path))
    assert words in error.problem
    assert peak < MEMORY_BOUND


def test_highly_compressed_real_tiffs_still_open(tmp_path):
    """An all-zero image compresses ~700:1 with zlib and ~17,000:1 with zstd on 1024² tiles;
    both are real data, under the default ratio limit."""
    zeros = np.zeros((2048, 2048), np.uint8)
    for compression, tile in (("zlib", (256, 256)), ("zstd", (1024, 1024))):
        path = tmp_path / f"{compression}.tif"
        tifffile.imwrite(path, zeros, compression=compression, tile=tile)
        assert zeros.nbytes / path.stat().st_size > 500
        with open_image(path) as image:
            assert image.read(Y=slice(1000, 1100)).max() == 0


# ---------------------------------------------------------------------------- OME-Zarr


def declared_zarr(path: Path, shape, chunks, *, dtype="uint8", shards=None) -> Path:
    """An NGFF image group declaring ``shape`` with no chunk written (metadata only)."""
    create_ome_zarr(path, shape=shape, dtype=dtype, axes="YX", chunks=chunks, shards=shards)
    return path


def test_an_ome_zarr_declaring_ten_to_the_twelve_squared_is_refused(tmp_path):
    path = declared_zarr(tmp_path / "huge.ome.zarr", (10**12, 10**12), (1024, 1024))
    error, peak = peak_memory_of_refusal(lambda: open_image(path))
    assert error.path == str(path)
    assert f"{10**24} pixels" in error.problem
    assert f"limit is {MAX_PIXELS}" in error.problem
    assert peak < MEMORY_BOUND


def test_an_ome_zarr_longer_than_the_axis_limit_is_refused(tmp_path):
    path = declared_zarr(tmp_path / "long.ome.zarr", (1, 2**32), (1, 1024))
    with pytest.raises(InvalidImageError, match=f"{2**32} pixels along one axis"):
        open_image(path)


def test_a_declared_20000_squared_chunk_is_refused_unless_the_limit_allows_it(tmp_path):
    path = declared_zarr(tmp_path / "chunk.ome.zarr", (20000, 20000), (20000, 20000), dtype="u2")
    error, peak = peak_memory_of_refusal(lambda: open_image(path))
    assert "20000×20000" in error.problem
    assert f"{20000 * 20000 * 2} bytes" in error.problem
    assert f"limit is {MAX_CHUNK_BYTES}" in error.problem
    assert peak < MEMORY_BOUND
    # the same declaration is legitimate under a larger limit: absent chunks read as fill
    with open_image(path, limits=ImageLimits(max_chunk_bytes=2**30)) as image:
        assert image.shape[-2:] == (20000, 20000)
        assert image.read(Y=slice(0, 4), X=slice(0, 4)).max() == 0


def test_a_huge_declared_array_of_absent_chunks_within_the_limits_opens(tmp_path):
    """Lazily absent chunks are the fill value: a large declaration within limits is fine."""
    path = declared_zarr(tmp_path / "sparse.ome.zarr", (2**19, 2**19), (512, 512))
    with open_image(path) as image:
        assert image.shape[-2:] == (2**19, 2**19)
        assert image.read(Y=slice(2**18, 2**18 + 8), X=slice(0, 8)).max() == 0


def test_a_shard_whose_index_is_too_big_is_refused(tmp_path):
    path = declared_zarr(tmp_path / "shard.ome.zarr", (2**16, 2**16), (1, 1), shards=(8192, 8192))
    with pytest.raises(InvalidImageError, match="shard index"):
        open_image(path)


def test_a_bare_zarr_array_is_held_to_the_limits(tmp_path):
    path = tmp_path / "bare.zarr"
    zarr.create_array(
        str(path), shape=(10**7, 10**7), chunks=(1024, 1024), dtype="u1", dimension_names="yx"
    )
    with pytest.raises(InvalidImageError, match=f"{10**14} pixels"):
        open_image(path)


# ---------------------------------------------------------------------------- the configuration


def test_limits_come_from_the_environment_when_set(tmp_path, monkeypatch):
    path = declared_zarr(tmp_path / "chunk.ome.zarr", (4096, 4096), (4096, 4096))  # 16 MiB chunk
    open_image(path).close()
    monkeypatch.setenv(ENV["max_chunk_bytes"], str(2**20))
    assert default_limits().max_chunk_bytes == 2**20
    with pytest.raises(InvalidImageError, match=f"limit is {2**20}"):
        open_image(path)
    monkeypatch.setenv(ENV["max_pixels"], "100")
    with pytest.raises(InvalidImageError, match="limit is 100"):
        open_image(path, limits=ImageLimits(max_pixels=100))  # an argument wins as well
    monkeypatch.setenv(ENV["max_pixels"], "lots")
    with pytest.raises(InvalidRequestError, match=ENV["max_pixels"]):
        default_limits()


@pytest.mark.parametrize("bad", [0, -1, "10", None, True])
def test_limits_must_be_positive_numbers(bad):
    with pytest.raises(InvalidRequestError, match="max_axis"):
        ImageLimits(max_axis=bad)


def test_limits_round_trip_and_refuse_unknown_names():
    limits = ImageLimits(max_pixels=10, max_compression_ratio=3.5)
    assert ImageLimits.from_dict(limits.to_dict()) == limits
    with pytest.raises(InvalidRequestError, match="max_pixel"):
        ImageLimits.from_dict({"max_pixel": 3})


@given(
    shape=st.lists(st.integers(1, 2**22), min_size=1, max_size=6),
    max_pixels=st.integers(1, 2**50),
    max_axis=st.integers(1, 2**25),
)
def test_check_shape_refuses_exactly_what_exceeds_a_limit(shape, max_pixels, max_axis):
    limits = ImageLimits(max_pixels=max_pixels, max_axis=max_axis)
    too_big = math.prod(shape) > max_pixels or max(shape) > max_axis
    if too_big:
        with pytest.raises(InvalidImageError, match="limit is"):
            limits.check_shape(shape, path="x.tif")
    else:
        limits.check_shape(shape, path="x.tif")


# ---------------------------------------------------------------------------- chunk bombs

BOMB_BYTES = 2**28  # what the bomb inflates to: 256 MiB, more than the memory bound


def _bomb(codec_id: str) -> bytes:
    """A small compressed stream that decodes to ``BOMB_BYTES`` zeros."""
    import numcodecs

    zeros = np.zeros(BOMB_BYTES, np.uint8)  # calloc'd: untouched pages cost no memory
    if codec_id == "gzip":
        compressor = zlib.compressobj(1, wbits=31)
        return compressor.compress(memoryview(zeros)) + compressor.flush()
    codec = {"zstd": numcodecs.Zstd(), "blosc": numcodecs.Blosc(cname="zstd")}[codec_id]
    return bytes(codec.encode(zeros))


def _zarr_with_a_bomb(path: Path, codec_id: str, zarr_format: int) -> Path:
    """An NGFF image of 64 × 64 uint8 in 32 × 32 chunks (1 KiB each; 0.5 on zarr v3, 0.4 on
    v2) whose chunk (0, 0) is replaced by a bomb; returns that chunk file."""
    import numcodecs
    from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

    v3 = {"gzip": GzipCodec(), "zstd": ZstdCodec(), "blosc": BloscCodec()}
    v2 = {"gzip": numcodecs.GZip(), "zstd": numcodecs.Zstd(), "blosc": numcodecs.Blosc()}
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    array = group.create_array(
        "0",
        shape=(64, 64),
        chunks=(32, 32),
        dtype="u1",
        compressors=[(v3 if zarr_format == 3 else v2)[codec_id]],
        fill_value=0,
    )
    array[:] = 5
    multiscales = [{"version": "0.4", "axes": ["y", "x"], "datasets": [{"path": "0"}]}]
    group.attrs["multiscales"] = multiscales
    chunk = path / "0" / ("c/0/0" if zarr_format == 3 else "0.0")
    chunk.write_bytes(_bomb(codec_id))
    return chunk


@pytest.mark.parametrize("zarr_format", [3, 2])
@pytest.mark.parametrize("codec_id", ["gzip", "zstd", "blosc"])
def test_a_compressed_chunk_that_inflates_past_its_size_is_refused_in_bounded_memory(
    tmp_path, codec_id, zarr_format
):
    """The metadata says 1 KiB per chunk; the compressed bytes say 256 MiB: refused from the
    header (zstd, blosc) or after inflating one byte past 1 KiB (gzip)."""
    path = tmp_path / "bomb.ome.zarr"
    chunk = _zarr_with_a_bomb(path, codec_id, zarr_format)
    assert chunk.stat().st_size < 3 * 2**20
    with open_image(path) as image:
        assert image.read(Y=slice(32, 64)).min() == 5  # the honest chunks read
        error, peak = peak_memory_of_refusal(lambda: image.read(Y=slice(0, 8), X=slice(0, 8)))
    assert error.path == str(path)
    assert "chunk decodes to" in error.problem
    assert str(32 * 32 + 1024) in error.problem
    assert peak < MEMORY_BOUND


def test_sharded_and_compressed_arrays_read_as_written_through_the_guard(tmp_path):
    data = nuclei_image((70, 90), channels=1, seed=12)[0]
    path = tmp_path / "sharded.ome.zarr"
    array = create_ome_zarr(
        path, shape=data.shape, dtype=data.dtype, axes="YX", chunks=(16, 16), shards=(32, 32)
    )
    array[:] = data
    with open_image(path) as image:
        np.testing.assert_array_equal(image.read()[0, 0, 0, 0], data)


# ---------------------------------------------------------------------------- PNG

RSS_SCRIPT = """
import resource, sys
from scopeml.io import open_image
from scopeml.errors import InvalidImageError
import PIL.Image, PIL.PngImagePlugin  # imported before the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    open_image(sys.argv[1]).close()
    outcome = "opened"
except InvalidImageError as err:
    outcome = err.problem
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown * 1024, outcome, sep="\\n")
"""


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid RGBA PNG of zeros, written row by row: a small file that decodes to
    ``width × height × 4`` bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    compressor = zlib.compressobj(9)
    row = bytes(1 + 4 * width)  # filter type 0, then the pixels
    stream = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream)
    path.write_bytes(png + chunk(b"IEND", b""))
    return path


def test_a_png_bomb_is_refused_from_its_header_before_pillow_allocates_it(tmp_path):
    """9000 × 9000 RGBA is under Pillow's bomb warning (89 MP) but decodes to 324 MB (then
    243 MB more without alpha) from a ~300 KB file; the header is checked first. Pillow
    allocates outside tracemalloc, so the peak RSS growth is measured in a fresh process."""
    path = png_bomb(tmp_path / "bomb.png", 9000, 9000)
    assert path.stat().st_size < 2**20
    run = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(path)], capture_output=True, text=True, check=True
    )
    grown, outcome = run.stdout.splitlines()
    assert "9000×9000×4 pixels decodes to 324000000 bytes" in outcome
    assert int(grown) < MEMORY_BOUND
