"""One list of zarr markers, one of image suffixes, one of model container suffixes."""

from __future__ import annotations

import pytest

from scopeml.errors import InvalidRequestError
from scopeml.io.omezarr import create_ome_zarr, read_ome_zarr
from scopeml.io.registry import IMAGE_SUFFIXES, READERS, reader_for
from scopeml.io.replace import check_replaceable_store
from scopeml.io.stores import ZARR_MARKERS, is_zarr_store
from scopeml.model.container import CONTAINER_SUFFIXES


@pytest.mark.parametrize("marker", ZARR_MARKERS)
def test_every_marker_makes_a_store_for_reading_and_replacing(tmp_path, marker) -> None:
    store = tmp_path / "plain_name"  # no .zarr suffix: found by its marker alone
    store.mkdir()
    (store / marker).write_text("{}")
    assert is_zarr_store(store)
    assert reader_for(store) is read_ome_zarr
    check_replaceable_store(store)  # a store: may be replaced


def test_a_folder_without_markers_is_not_a_store(tmp_path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("mine")
    assert not is_zarr_store(tmp_path / "data")
    with pytest.raises(InvalidRequestError, match=r"without zarr\.json"):
        check_replaceable_store(tmp_path / "data")


def test_new_store_inside_a_v2_group_uses_it_as_root(tmp_path) -> None:
    group = tmp_path / "experiment"
    group.mkdir()
    (group / ".zgroup").write_text('{"zarr_format": 2}')
    create_ome_zarr(group / "labels", shape=(4, 4), dtype="uint8", axes="YX", chunks=(4, 4))
    assert is_zarr_store(group / "labels")


def test_suffix_lists() -> None:
    assert set(IMAGE_SUFFIXES) == set(READERS)
    lengths = [len(s) for s in IMAGE_SUFFIXES]
    assert lengths == sorted(lengths, reverse=True)  # longest first: .ome.tif before .tif
    assert {".czi", ".ome.tiff", ".tif", ".ome.zarr", ".png"} <= set(IMAGE_SUFFIXES)
    assert CONTAINER_SUFFIXES == (".czann", ".czseg", ".czmodel")
