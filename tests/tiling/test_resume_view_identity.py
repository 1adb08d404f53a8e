"""A resume of a view of a file (``select_channels``, ``select_scene``, ``open_image(path,
scene=)``) is decided by the run record, which names the view: another view is refused, the
same one is accepted without the statistics pass and without reopening the file's metadata.
An array that merely names a file is not the file's run."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import scopeml as sm
import scopeml.io.registry as registry
from scopeml.errors import IncompleteOutputError
from scopeml.synthetic import realistic_nuclei

#: What a resume of another scene of the file is told.
OTHER_SCENE = "the run read scene 1 of the image, not scene 0; pass --scene 1"
RUN = {"outputs": ("labels",), "tile_size": 128, "workers": 1, "scale": 1}


def _nuclei() -> np.ndarray:
    return np.clip(realistic_nuclei((160, 150), seed=3)[0][0], 0, None) * 1000


@pytest.fixture
def opened(monkeypatch) -> list[object]:
    """Every file opened with open_image from here on, counted."""
    calls: list[object] = []
    real = registry.reader_for

    def spy(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(registry, "reader_for", spy)
    return calls


def test_another_channel_view_is_refused_and_the_same_one_not_read(
    tmp_path, statistics_passes, opened
):
    # channel 1: the same nuclei, 5× brighter and flipped
    path = tmp_path / "two.ome.tif"
    pixels = np.stack([_nuclei(), 5 * _nuclei()[::-1]]).astype(np.uint16)
    tifffile.imwrite(path, pixels, ome=True, metadata={"axes": "CYX"})
    out = tmp_path / "o.ome.zarr"
    with sm.open_image(path) as image:
        first = sm.segment(image.select_channels([0]), "nuclei", out, **RUN)
        statistics_passes.clear()
        opened.clear()
        again = sm.segment(image.select_channels([0]), "nuclei", out, resume=True, **RUN)
        assert again.already_complete and again == first
        assert statistics_passes == [] and opened == []  # the record decides: no pass, no reopening
        with pytest.raises(IncompleteOutputError, match=r"image_view\.channels: \[0\]"):
            sm.segment(image.select_channels([1]), "nuclei", out, resume=True, **RUN)
        assert statistics_passes == []  # the view differs: no pass needed to say so


def test_channels_chosen_by_name_are_not_read_again(tmp_path, statistics_passes):
    """``channels=`` is in the record: the file's fingerprint still decides."""
    path = tmp_path / "two.ome.tif"
    pixels = np.stack([_nuclei(), 5 * _nuclei()[::-1]]).astype(np.uint16)
    tifffile.imwrite(path, pixels, ome=True, metadata={"axes": "CYX"})
    out = tmp_path / "o.ome.zarr"
    first = sm.segment(path, "nuclei", out, channels=["C1"], **RUN)
    statistics_passes.clear()
    again = sm.segment(path, "nuclei", out, channels=["C1"], resume=True, **RUN)
    assert again.already_complete and again == first and statistics_passes == []


def test_another_scene_is_refused_and_the_same_one_not_read(tmp_path, statistics_passes, opened):
    path = tmp_path / "scenes.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tiff:
        for scene in (_nuclei(), 5 * _nuclei()[::-1]):
            tiff.write(scene.astype(np.uint16), metadata={"axes": "YX"})
    out = tmp_path / "o.ome.zarr"
    with sm.open_image(path, scene=1) as second, sm.open_image(path) as both:
        first = sm.segment(second, "nuclei", out, **RUN)
        statistics_passes.clear()
        opened.clear()
        again = sm.segment(second, "nuclei", out, resume=True, **RUN)
        assert again.already_complete and again == first
        assert statistics_passes == [] and opened == []
        again = sm.segment(both.select_scene(1), "nuclei", out, resume=True, **RUN)
        assert again.already_complete and again == first and statistics_passes == []
        with pytest.raises(IncompleteOutputError, match=OTHER_SCENE):
            sm.segment(both.select_scene(0), "nuclei", out, resume=True, **RUN)
    refused = pytest.raises(IncompleteOutputError, match=OTHER_SCENE)
    with sm.open_image(path, scene=0) as zeroth, refused:
        sm.segment(zeroth, "nuclei", out, resume=True, **RUN)
    assert statistics_passes == []


def test_an_array_naming_the_file_is_not_the_files_run(tmp_path, statistics_passes):
    path = tmp_path / "nuclei.tif"
    tifffile.imwrite(path, _nuclei().astype(np.uint16), photometric="minisblack")
    out = tmp_path / "o.ome.zarr"
    first = sm.segment(path, "nuclei", out, **RUN)
    other = (5 * _nuclei()[::-1]).astype(np.uint16)[None, None, None, None]
    with pytest.raises(IncompleteOutputError, match="different run"):
        sm.segment(sm.Image(other, path=path), "nuclei", out, resume=True, **RUN)
    same = sm.Image(tifffile.imread(path)[None, None, None, None], path=path)
    with pytest.raises(IncompleteOutputError, match="different run"):  # no fingerprint
        sm.segment(same, "nuclei", out, resume=True, **RUN)
    again = sm.segment(path, "nuclei", out, resume=True, **RUN)
    assert again.already_complete and again == first


def test_a_store_recorded_without_the_view_is_refused(tmp_path):
    import zarr

    path = tmp_path / "nuclei.tif"
    tifffile.imwrite(path, _nuclei().astype(np.uint16), photometric="minisblack")
    out = tmp_path / "o.ome.zarr"
    sm.segment(path, "nuclei", out, **RUN)
    group = zarr.open_group(str(out), mode="r+")
    record = dict(group.attrs["scopeml"])
    del record["image_view"]  # as recorded before the view was
    group.attrs["scopeml"] = record
    with pytest.raises(IncompleteOutputError, match="recorded before scopeml kept which scene"):
        sm.segment(path, "nuclei", out, resume=True, **RUN)


def test_an_unfinished_store_recorded_without_the_view_is_refused(tmp_path):
    import json

    from scopeml.errors import Cancelled
    from scopeml.tiling.store import partial_path

    def stop(event):
        if event.stage == "segment" and event.done >= 1:
            raise Cancelled("stopped")

    path = tmp_path / "nuclei.tif"
    tifffile.imwrite(path, _nuclei().astype(np.uint16), photometric="minisblack")
    out = tmp_path / "o.ome.zarr"
    run = {**RUN, "tile_size": 64, "batch_size": 1}
    with pytest.raises(Cancelled):
        sm.segment(path, "nuclei", out, progress=stop, **run)
    record = partial_path(out) / ".scopeml-run.json"
    old = json.loads(record.read_text())
    del old["image_view"]
    record.write_text(json.dumps(old))
    with pytest.raises(IncompleteOutputError, match="recorded before scopeml kept which scene"):
        sm.segment(path, "nuclei", out, resume=True, **run)
