"""OME-Zarr: the engine's output layout, NGFF metadata, parallel writers, bad stores."""

from __future__ import annotations

import json
import multiprocessing

import numpy as np
import pytest
import zarr

from scopeml.errors import InvalidImageError, InvalidRequestError
from scopeml.io import create_ome_zarr, open_image, open_ome_zarr_array, read_axes
from scopeml.io.testing import nuclei_image


def test_image_groups_inside_a_new_root_are_valid_ngff_0_5(tmp_path):
    root = tmp_path / "OUT.ome.zarr"
    create_ome_zarr(
        root / "labels",
        shape=(1, 30, 40),
        dtype="uint32",
        axes="ZYX",
        chunks=(1, 16, 16),
        pixel_sizes={"Y": 0.5, "X": 0.25},
    )
    create_ome_zarr(
        root / "probabilities",
        shape=(3, 30, 40),
        dtype="float32",
        axes="CYX",
        chunks=(3, 16, 16),
        pixel_sizes={"Y": 0.5, "X": 0.25},
        channel_names=["background", "nucleus", "border"],
        name="probabilities",
    )
    assert json.loads((root / "zarr.json").read_text())["node_type"] == "group"
    meta = json.loads((root / "probabilities" / "zarr.json").read_text())["attributes"]["ome"]
    assert meta["version"] == "0.5"
    multiscale = meta["multiscales"][0]
    assert [a["name"] for a in multiscale["axes"]] == ["c", "y", "x"]
    assert multiscale["axes"][1] == {"name": "y", "type": "space", "unit": "micrometer"}
    transform = multiscale["datasets"][0]["coordinateTransformations"][0]
    assert transform == {"type": "scale", "scale": [1.0, 0.5, 0.25]}
    assert [c["label"] for c in meta["omero"]["channels"]] == ["background", "nucleus", "border"]
    array = zarr.open_array(str(root / "probabilities" / "0"), mode="r")
    assert array.metadata.dimension_names == ("c", "y", "x")
    assert array.chunks == (3, 16, 16)
    assert read_axes(root / "labels") == ("ZYX", {"Y": 0.5, "X": 0.25}, ["C0"])


def test_an_output_group_reads_back_with_open_image(tmp_path):
    path = tmp_path / "OUT.ome.zarr" / "probabilities"
    probabilities = np.random.default_rng(0).random((2, 20, 30), dtype=np.float32)
    array = create_ome_zarr(
        path,
        shape=probabilities.shape,
        dtype="float32",
        axes="CYX",
        chunks=(1, 8, 8),
        pixel_sizes={"Y": 1.5, "X": 1.5},
        channel_names=["bg", "fg"],
    )
    array[:] = probabilities
    with open_image(path) as image:
        assert image.shape == (1, 1, 2, 1, 20, 30)
        assert image.pixel_sizes == {"Y": 1.5, "X": 1.5}
        assert image.channel_names == ("bg", "fg")
        np.testing.assert_array_equal(
            image.read(C=1, Y=slice(3, 11))[0, 0, 0, 0], probabilities[1, 3:11]
        )


def _write_band(path: str, rows: slice, value: int) -> None:
    array = open_ome_zarr_array(path)
    array[rows] = value


def test_separate_processes_write_whole_chunks_into_one_array(tmp_path):
    path = tmp_path / "out.ome.zarr"
    create_ome_zarr(path, shape=(32, 24), dtype="uint8", axes="YX", chunks=(16, 8))
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_write_band, args=(str(path), slice(0, 16), 3)),
        context.Process(target=_write_band, args=(str(path), slice(16, 32), 5)),
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        if worker.is_alive():
            worker.kill()
        assert worker.exitcode == 0
    result = open_ome_zarr_array(path, mode="r")[:]
    assert (result[:16] == 3).all() and (result[16:] == 5).all()


def test_a_region_read_fetches_only_the_chunks_it_covers(tmp_path, monkeypatch):
    from zarr.storage import LocalStore

    path = tmp_path / "img.ome.zarr"
    array = create_ome_zarr(path, shape=(2, 64, 64), dtype="uint16", axes="CYX", chunks=(1, 16, 16))
    array[:] = nuclei_image((64, 64), seed=1)
    keys: list[str] = []
    original = LocalStore.get

    async def spy(self, key, *args, **kwargs):
        keys.append(key)
        return await original(self, key, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "get", spy)
    with open_image(path) as image:
        keys.clear()
        image.read(C=1, Y=slice(20, 40), X=slice(50, 60))
    assert sorted(k for k in keys if "/c/" in k) == ["0/c/1/1/3", "0/c/1/2/3"]


def test_bioformats2raw_layout_reads_series_as_scenes(tmp_path):
    root = tmp_path / "plate.zarr"
    data = [nuclei_image((16, 24), seed=s) for s in range(2)]
    for index, pixels in enumerate(data):
        array = create_ome_zarr(
            root / str(index), shape=pixels.shape, dtype=pixels.dtype, axes="CYX", chunks=(1, 8, 8)
        )
        array[:] = pixels
    with open_image(root) as image:
        assert image.shape == (2, 1, 2, 1, 16, 24)
        np.testing.assert_array_equal(image.read(S=1)[0, 0, :, 0], data[1])
    with open_image(root, scene=0) as image:
        np.testing.assert_array_equal(image.read()[0, 0, :, 0], data[0])


def test_a_zarr_without_ngff_metadata_is_an_invalid_image_listing_its_members(tmp_path):
    path = tmp_path / "plain.zarr"
    group = zarr.open_group(str(path), mode="w")
    group.create_array("labels", shape=(4, 4), dtype="uint8")
    with pytest.raises(InvalidImageError, match=r"no NGFF metadata.*members: \['labels'\]") as info:
        open_image(path)
    assert info.value.path == str(path)


def test_a_bare_array_with_dimension_names_reads_without_metadata(tmp_path):
    path = tmp_path / "raw.zarr"
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    zarr.create_array(str(path), data=data, dimension_names=["c", "y", "x"])
    with open_image(path) as image:
        assert image.shape == (1, 1, 2, 1, 3, 4)
        np.testing.assert_array_equal(image.read()[0, 0, :, 0], data)
    zarr.create_array(str(tmp_path / "anon.zarr"), data=data)
    with pytest.raises(InvalidImageError, match="dimension_names"):
        open_image(tmp_path / "anon.zarr")


@pytest.mark.parametrize(
    ("multiscales", "message"),
    [
        ("not a list", "malformed NGFF"),
        ([{"axes": [{"name": "y"}, {"name": "x"}]}], "malformed NGFF"),
        ([{"axes": [{"name": "x"}, {"name": "y"}], "datasets": [{"path": "0"}]}], "not supported"),
        ([{"axes": ["y", "x"], "datasets": [{"path": "missing"}]}], "level 'missing' is missing"),
        (
            [
                {
                    "axes": ["y", "x"],
                    "datasets": [
                        {
                            "path": "0",
                            "coordinateTransformations": [{"type": "scale", "scale": [1]}],
                        }
                    ],
                }
            ],
            "malformed NGFF",
        ),
    ],
)
def test_malformed_ngff_metadata_is_an_invalid_image(tmp_path, multiscales, message):
    path = tmp_path / "bad.ome.zarr"
    group = zarr.open_group(str(path), mode="w")
    group.create_array("0", shape=(4, 4), dtype="uint8")
    group.attrs["ome"] = {"version": "0.5", "multiscales": multiscales}
    with pytest.raises(InvalidImageError, match=message):
        open_image(path)


def test_garbage_in_zarr_json_is_an_invalid_image(tmp_path):
    path = tmp_path / "broken.zarr"
    path.mkdir()
    (path / "zarr.json").write_text("{not json")
    with pytest.raises(InvalidImageError, match=r"broken\.zarr"):
        open_image(path)


def test_create_checks_its_arguments_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "out.ome.zarr"
    kwargs = {"shape": (2, 8, 8), "dtype": "uint8", "chunks": (1, 4, 4)}
    with pytest.raises(InvalidRequestError, match="subset of TCZYX"):
        create_ome_zarr(path, axes="YXC", **kwargs)
    with pytest.raises(InvalidRequestError, match="same length"):
        create_ome_zarr(path, axes="CZYX", **kwargs)
    with pytest.raises(InvalidRequestError, match="3 channel names given for 2 channels"):
        create_ome_zarr(path, axes="CYX", channel_names=["a", "b", "c"], **kwargs)
    create_ome_zarr(path, axes="CYX", **kwargs)[:] = 9
    with pytest.raises(InvalidRequestError, match="output exists"):
        create_ome_zarr(path, axes="CYX", **kwargs)
    fresh = create_ome_zarr(path, axes="CYX", overwrite=True, **kwargs)
    assert int(fresh[:].max()) == 0


def test_open_array_errors_name_the_store(tmp_path):
    with pytest.raises(InvalidImageError, match=r"nothing\.zarr"):
        open_ome_zarr_array(tmp_path / "nothing.zarr")
    path = tmp_path / "one.ome.zarr"
    create_ome_zarr(path, shape=(4, 4), dtype="uint8", axes="YX", chunks=(4, 4))
    with pytest.raises(InvalidRequestError, match="level 2 does not exist; the image has 1"):
        open_ome_zarr_array(path, level=2)


def test_a_temporary_store_and_an_explicit_root_become_root_groups(tmp_path):
    partial = tmp_path / "OUT.ome.zarr.partial"
    create_ome_zarr(
        partial / "0" / "labels",
        shape=(8, 8),
        dtype="uint8",
        axes="YX",
        chunks=(4, 4),
        shards=(8, 8),
    )
    for folder in (partial, partial / "0"):
        assert json.loads((folder / "zarr.json").read_text())["node_type"] == "group"
    assert open_ome_zarr_array(partial / "0" / "labels").shards == (8, 8)
    plain = tmp_path / "results"
    create_ome_zarr(
        plain / "a" / "b", shape=(8, 8), dtype="uint8", axes="YX", chunks=(4, 4), root=plain
    )
    assert json.loads((plain / "a" / "zarr.json").read_text())["node_type"] == "group"
    with pytest.raises(InvalidRequestError, match="does not contain"):
        create_ome_zarr(
            plain / "c",
            shape=(8, 8),
            dtype="uint8",
            axes="YX",
            chunks=(4, 4),
            root=tmp_path / "elsewhere",
        )


def test_write_ome_zarr_overwrites_only_a_zarr_store_that_is_not_its_input(tmp_path):
    from scopeml.io import write_ome_zarr
    from scopeml.io.image import Image

    image = Image(np.zeros((1, 1, 1, 1, 8, 8), np.uint8))
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(InvalidRequestError, match="not a zarr store"):
        write_ome_zarr(folder, image, overwrite=True)
    assert (folder / "notes.txt").read_text() == "keep me"
    store = write_ome_zarr(tmp_path / "a.ome.zarr", image)
    assert write_ome_zarr(store, image, overwrite=True) == store  # an earlier store: replaced
    with pytest.raises(InvalidRequestError, match="holds the input"):
        write_ome_zarr(store, open_image(store), overwrite=True)
    assert open_image(store).read().shape == (1, 1, 1, 1, 8, 8)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"shape": [0, 64]}, r"shape \(0, 64\) in chunks \(32, 32\): no pixels"),
        (  # a zero chunk edge: ZeroDivisionError (exit 1) in every command that read it
            {"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [0, 32]}}},
            r"in chunks \(0, 32\): no pixels, or chunks of no size",
        ),
        ({"shape": [-64, 64]}, "level '0' is not a valid zarr array"),  # said "is missing"
        ({"data_type": "object"}, "level '0' is not a valid zarr array"),
    ],
)
def test_a_zarr_level_of_no_pixels_or_invalid_metadata_is_named_so(tmp_path, change, message):
    import json

    path = tmp_path / "bad.ome.zarr"
    create_ome_zarr(path, shape=(64, 64), dtype="uint16", axes="YX", chunks=(32, 32))
    meta = path / "0" / "zarr.json"
    meta.write_text(json.dumps(json.loads(meta.read_text()) | change))
    with pytest.raises(InvalidImageError, match=message) as caught:
        open_image(path)
    assert caught.value.path == str(path)
