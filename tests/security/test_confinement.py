"""Every file a reader opens must resolve below the allowed roots (issue #18, critical).

Each escape route is built in ``tmp_path``: an ``inside`` folder (the allowed root) and an
``outside`` folder holding a secret image. With ``allowed_roots`` each route is refused with
:class:`OutsideRootError` naming the file; without, the outside pixels come through — which is
what makes each route an escape and not a broken file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.errors import InvalidImageError, OutsideRootError
from scopeml.io import READERS, create_ome_zarr, open_image
from scopeml.io.testing import nuclei_image, to_stczyx, write_czi

needs_czi = pytest.mark.skipif(
    importlib.util.find_spec("pylibCZIrw") is None, reason="pylibCZIrw is not installed"
)

SECRET = np.full((24, 32), 201, np.uint8)
OWN = np.full((24, 32), 7, np.uint8)  # not the fill value, so every chunk file exists


@pytest.fixture
def inside(tmp_path: Path) -> Path:
    folder = tmp_path / "inside"
    folder.mkdir()
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    tifffile.imwrite(folder / "secret.tif", SECRET)
    return folder


# ---------------------------------------------------------------------------- multi-file OME-TIFF


def _ome_xml(planes: list[tuple[str, str]], shape: tuple[int, int]) -> str:
    """OME-XML for a Z stack whose plane ``z`` is IFD 0 of file ``planes[z] = (name, uuid)``."""
    height, width = shape
    tiffdata = "".join(
        f'<TiffData FirstZ="{z}" IFD="0" PlaneCount="1">'
        f'<UUID FileName="{name}">urn:uuid:{file_uuid}</UUID></TiffData>'
        for z, (name, file_uuid) in enumerate(planes)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
        f'UUID="urn:uuid:{planes[0][1]}">'
        '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" '
        f'SizeX="{width}" SizeY="{height}" SizeZ="{len(planes)}" SizeC="1" SizeT="1">'
        '<Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
        f"{tiffdata}</Pixels></Image></OME>"
    )


def write_multifile_ome_tiff(master: Path, first: np.ndarray, companion: str) -> None:
    """A two-plane OME-TIFF: plane 0 in ``master``, plane 1 in the file named ``companion``
    (relative to ``master``'s folder, or absolute), as the OME-XML says."""
    planes = [(master.name, str(uuid.uuid4())), (companion, str(uuid.uuid4()))]
    tifffile.imwrite(master, first, description=_ome_xml(planes, first.shape), metadata=None)


@pytest.mark.parametrize("how", ["absolute", "dotdot"])
def test_a_multifile_ome_tiff_naming_a_file_outside_is_refused(inside, outside, how):
    master = inside / "stack.ome.tif"
    secret = outside / "secret.tif"
    name = str(secret) if how == "absolute" else os.path.join("..", "outside", "secret.tif")
    write_multifile_ome_tiff(master, np.zeros((24, 32), np.uint8), name)

    with open_image(master) as image:  # unconfined, the companion is read: an escape
        np.testing.assert_array_equal(image.read(Z=1)[0, 0, 0, 0], SECRET)

    with pytest.raises(OutsideRootError, match=r"secret\.tif") as info:
        open_image(master, allowed_roots=[inside])
    assert str(master) in str(info.value)  # which file named it
    assert isinstance(info.value, PermissionError)


def test_a_multifile_ome_tiff_inside_the_root_reads_identically(inside):
    planes = [nuclei_image((24, 32), channels=1, seed=s)[0] for s in (1, 2)]
    tifffile.imwrite(inside / "plane1.tif", planes[1])
    master = inside / "stack.ome.tif"
    write_multifile_ome_tiff(master, planes[0], "plane1.tif")

    with open_image(master) as free, open_image(master, allowed_roots=[inside]) as confined:
        assert confined.shape == (1, 1, 1, 2, 24, 32)
        np.testing.assert_array_equal(confined.read(), free.read())
        np.testing.assert_array_equal(confined.read()[0, 0, 0], np.stack(planes))


def test_a_companion_symlinked_from_inside_to_outside_is_refused(inside, outside):
    (inside / "plane1.tif").symlink_to(outside / "secret.tif")
    master = inside / "stack.ome.tif"
    write_multifile_ome_tiff(master, np.zeros((24, 32), np.uint8), "plane1.tif")
    with pytest.raises(OutsideRootError, match=r"plane1\.tif"):
        open_image(master, allowed_roots=[inside])


def test_companions_checked_at_open_stay_the_files_read_later(inside, outside):
    """tifffile reopens companions by path on each read; with roots they are held open from
    the check on, so a companion swapped for a symlink afterwards is not followed."""
    planes = [np.arange(24 * 32, dtype=np.uint8).reshape(24, 32) + s for s in (0, 1)]
    master = inside / "stack.ome.tif"  # uint8 like the secret, so the swap reads cleanly
    companion = inside / "plane1.tif"

    def swap_companion_for_a_link_outside() -> None:
        companion.unlink()
        companion.symlink_to(outside / "secret.tif")

    tifffile.imwrite(companion, planes[1])
    write_multifile_ome_tiff(master, planes[0], "plane1.tif")
    with open_image(master) as free:  # unconfined, the swap is followed: why pinning matters
        swap_companion_for_a_link_outside()
        np.testing.assert_array_equal(free.read(Z=1)[0, 0, 0, 0], SECRET)

    tifffile.imwrite(inside / "plane1b.tif", planes[1])
    companion.unlink()
    (inside / "plane1b.tif").rename(companion)
    with open_image(master, allowed_roots=[inside]) as confined:
        swap_companion_for_a_link_outside()
        with ThreadPoolExecutor(2) as pool:
            plane = pool.submit(confined.read, Z=1).result()
        np.testing.assert_array_equal(plane[0, 0, 0, 0], planes[1])


def _ndtiff_index(path: Path, names: list[str]) -> None:
    """An ``NDTiff.index`` with one frame entry per file name (Micro-Manager's layout)."""
    with path.open("wb") as index:
        for z, name in enumerate(names):
            axes = json.dumps({"z": z}).encode()
            encoded = name.encode()
            index.write(struct.pack("<I", len(axes)) + axes)
            index.write(struct.pack("<I", len(encoded)) + encoded)
            index.write(struct.pack("<IiiiiIii", 8, 32, 24, 0, 0, 0, 0, 0))


def test_micromanager_datasets_name_every_file_tifffile_would_open(inside, outside):
    """NDTiff index entries (absolute or ../ names) and MMStack siblings symlinked outside
    are found before tifffile opens them, and refused."""
    from scopeml.io.confine import Confinement
    from scopeml.io.tiff_checks import micromanager_files

    _ndtiff_index(inside / "NDTiff.index", ["a_NDTiffStack.tif", "../outside/secret.tif"])
    (inside / "a_MMStack_1.tif").symlink_to(outside / "secret.tif")
    files = micromanager_files(str(inside), ndtiff=True, mmstack=True)
    names = [os.path.relpath(os.path.realpath(f), inside.parent) for f in files]
    assert names == [
        "inside/NDTiff.index",
        "outside/secret.tif",
        "inside/a_NDTiffStack.tif",
        "outside/secret.tif",
    ]
    confinement = Confinement.of([inside])
    refused = []
    for file in files:
        try:
            confinement.check(file)
        except OutsideRootError:
            refused.append(os.path.basename(file))
    assert refused == ["secret.tif", "a_MMStack_1.tif"]


# ---------------------------------------------------------------------------- OME-Zarr


def _ome_zarr(path: Path, data: np.ndarray) -> Path:
    array = create_ome_zarr(path, shape=data.shape, dtype=data.dtype, axes="YX", chunks=(8, 8))
    array[:] = data
    return path


def test_an_ome_zarr_whose_array_folder_is_a_symlink_outside_is_refused(inside, outside):
    _ome_zarr(outside / "real.ome.zarr", SECRET)
    image = inside / "image.ome.zarr"
    image.mkdir()
    shutil.copy(outside / "real.ome.zarr" / "zarr.json", image / "zarr.json")
    (image / "0").symlink_to(outside / "real.ome.zarr" / "0", target_is_directory=True)

    with open_image(image) as free:
        np.testing.assert_array_equal(free.read()[0, 0, 0, 0], SECRET)
    with pytest.raises(OutsideRootError, match="outside the allowed folders"):
        open_image(image, allowed_roots=[inside])


def _chunk_symlinked_outside(inside: Path, outside: Path) -> Path:
    """An OME-Zarr inside whose chunk (0, 0) is a symlink to a chunk of an outside store."""
    _ome_zarr(outside / "real.ome.zarr", SECRET)
    image = _ome_zarr(inside / "image.ome.zarr", OWN)
    chunk = image / "0" / "c" / "0" / "0"
    chunk.unlink()
    chunk.symlink_to(outside / "real.ome.zarr" / "0" / "c" / "0" / "0")
    return image


def test_an_ome_zarr_chunk_symlinked_outside_is_refused_where_it_is_read(inside, outside):
    image_path = _chunk_symlinked_outside(inside, outside)
    with open_image(image_path) as free:
        assert free.read(Y=slice(0, 8), X=slice(0, 8)).max() == 201  # an escape, unconfined

    with open_image(image_path, allowed_roots=[inside]) as image:
        # the other chunks are inside and read; the symlinked one is refused, naming it
        np.testing.assert_array_equal(image.read(Y=slice(8, 24))[0, 0, 0, 0], OWN[8:])
        with pytest.raises(OutsideRootError, match=r"c/0/0"):
            image.read(Y=slice(0, 8), X=slice(0, 8))


def test_the_check_holds_for_reads_in_worker_threads_after_open(inside, outside):
    """Engine workers read tiles from other threads long after open_image returned: the roots
    live in the store, so a chunk turned into a symlink after opening is still refused."""
    image_path = _ome_zarr(inside / "image.ome.zarr", OWN)
    _ome_zarr(outside / "real.ome.zarr", SECRET)
    with open_image(image_path, allowed_roots=[inside]) as image:
        chunk = image_path / "0" / "c" / "1" / "1"
        chunk.unlink()
        chunk.symlink_to(outside / "real.ome.zarr" / "0" / "c" / "1" / "1")
        regions = [slice(0, 8), slice(8, 16), slice(16, 24)]
        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(image.read, Y=r, X=slice(8, 16)) for r in regions]
        assert futures[0].result().max() == futures[2].result().max() == 7
        with pytest.raises(OutsideRootError, match=r"c/1/1"):
            futures[1].result()


def test_a_chunk_swapped_for_a_symlink_between_check_and_read_is_refused(
    inside, outside, monkeypatch
):
    """The store opens the checked real path without following a final symlink: the
    window between check and open is closed for the chunk file itself."""
    from scopeml.io.confine import Confinement

    image_path = _ome_zarr(inside / "image.ome.zarr", OWN)
    _ome_zarr(outside / "real.ome.zarr", SECRET)
    chunk = image_path / "0" / "c" / "0" / "1"
    check = Confinement.check

    def check_then_swap(self, path, **kwargs):
        real = check(self, path, **kwargs)
        if Path(path) == chunk and not chunk.is_symlink():
            chunk.unlink()
            chunk.symlink_to(outside / "real.ome.zarr" / "0" / "c" / "0" / "1")
        return real

    with open_image(image_path, allowed_roots=[inside]) as image:
        monkeypatch.setattr(Confinement, "check", check_then_swap)
        with pytest.raises(OutsideRootError, match="became a symlink"):
            image.read(Y=slice(0, 8), X=slice(8, 16))


def test_a_sharded_ome_zarr_inside_the_root_reads_identically(inside):
    """Shards are read by byte ranges (the index from the end, chunks from the middle)."""
    data = nuclei_image((70, 90), channels=1, seed=5)[0]
    path = inside / "sharded.ome.zarr"
    array = create_ome_zarr(
        path, shape=data.shape, dtype=data.dtype, axes="YX", chunks=(16, 16), shards=(32, 32)
    )
    array[:] = data
    with open_image(path, allowed_roots=[inside]) as image:
        np.testing.assert_array_equal(image.read()[0, 0, 0, 0], data)
        np.testing.assert_array_equal(image.read(Y=slice(20, 50))[0, 0, 0, 0], data[20:50])


# ---------------------------------------------------------------------------- the image itself


def _tiff(path: Path) -> np.ndarray:
    tifffile.imwrite(path, SECRET)
    return to_stczyx(SECRET, "YX")


def _png(path: Path) -> np.ndarray:
    from PIL import Image as PILImage

    PILImage.fromarray(SECRET).save(path)
    return to_stczyx(SECRET, "YX")


def _zarr(path: Path) -> np.ndarray:
    _ome_zarr(path, SECRET)
    return to_stczyx(SECRET, "YX")


def _czi(path: Path) -> np.ndarray:
    write_czi(path, [(SECRET[None, None], (0, 0))])
    return to_stczyx(SECRET, "YX")


FORMATS = [
    pytest.param("image.tif", _tiff, id="tiff"),
    pytest.param("image.png", _png, id="png"),
    pytest.param("image.ome.zarr", _zarr, id="ome-zarr"),
    pytest.param("image.czi", _czi, id="czi", marks=needs_czi),
]


@pytest.mark.parametrize(("name", "write"), FORMATS)
def test_an_image_symlinked_from_inside_to_outside_is_refused(inside, outside, name, write):
    expected = write(outside / name)
    link = inside / name
    link.symlink_to(outside / name, target_is_directory=(outside / name).is_dir())

    with open_image(link) as free:
        np.testing.assert_array_equal(free.read(), expected)
    with pytest.raises(OutsideRootError, match=name) as info:
        open_image(link, allowed_roots=[inside])
    assert info.value.path == str(link)


@pytest.mark.parametrize(("name", "write"), FORMATS)
def test_an_image_inside_the_root_reads_identically(inside, name, write):
    expected = write(inside / name)
    with open_image(inside / name, allowed_roots=[inside]) as confined:
        np.testing.assert_array_equal(confined.read(), expected)
    # a root given as a relative path, and a symlink that stays inside, are fine too
    (inside / "sub").mkdir()
    (inside / "sub" / name).symlink_to(inside / name)
    relative = os.path.relpath(inside, Path.cwd())
    with open_image(inside / "sub" / name, allowed_roots=[relative]) as confined:
        np.testing.assert_array_equal(confined.read(), expected)


def test_a_path_with_dotdot_out_of_the_root_is_refused(inside, outside):
    with pytest.raises(OutsideRootError):
        open_image(inside / ".." / "outside" / "secret.tif", allowed_roots=[inside])
    with pytest.raises(OutsideRootError):  # no root at all allows nothing
        open_image(outside / "secret.tif", allowed_roots=[])


def test_a_root_is_a_folder_not_a_name_prefix(tmp_path):
    """``/data/images`` must not allow ``/data/images-private``."""
    (tmp_path / "images").mkdir()
    (tmp_path / "images-private").mkdir()
    _tiff(tmp_path / "images-private" / "x.tif")
    with pytest.raises(OutsideRootError):
        open_image(tmp_path / "images-private" / "x.tif", allowed_roots=[tmp_path / "images"])


def test_a_reader_that_cannot_confine_its_reads_is_refused_with_roots(inside, monkeypatch):
    def read_anything(path, *, scene=None):  # a plug-in reader without allowed_roots
        return open_image(inside / "image.tif")

    _tiff(inside / "image.tif")
    (inside / "x.weird").write_bytes(b"")
    monkeypatch.setitem(READERS, ".weird", read_anything)
    with open_image(inside / "x.weird") as image:  # unconfined: used as before
        assert image.shape[-2:] == SECRET.shape
    with pytest.raises(InvalidImageError, match="cannot confine"):
        open_image(inside / "x.weird", allowed_roots=[inside])
