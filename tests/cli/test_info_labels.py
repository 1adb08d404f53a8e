"""``scopeml info`` on instance labels (``objects label``'s output) says it holds labels and
how many objects; it showed a plain image of channel C0 (new-user trial)."""

from __future__ import annotations

import json

import numpy as np
import tifffile

from scopeml.cli import info as info_module
from scopeml.cli import main


def test_info_says_a_label_store_holds_objects(tmp_path, capsys, monkeypatch):
    mask = np.zeros((60, 80), np.uint8)
    mask[5:15, 5:15] = mask[30:40, 20:30] = mask[50:55, 60:75] = 1
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    store = tmp_path / "objects.ome.zarr"
    assert main(["objects", "label", str(tmp_path / "mask.tif"), "-o", str(store), "-q"]) == 0
    capsys.readouterr()
    assert main(["info", str(store)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "  holds: instance labels, 3 objects"
    assert main(["info", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["labels"] == {"kind": "instance labels",
                                                             "objects": 3}  # fmt: skip
    (store / "0" / "zarr.json").write_text(  # no count recorded (an analysis's stores)
        (store / "0" / "zarr.json").read_text().replace('"n_objects"', '"other"')
    )
    assert info_module.describe_labels(store) == {"kind": "labels", "largest_id": 3}
    monkeypatch.setattr(info_module, "LABEL_SCAN_PIXELS", 100)  # a large one is not read
    assert info_module.describe_labels(store) == {"kind": "labels"}


def test_info_on_a_plain_image_says_nothing_of_labels(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "a.tif", np.ones((20, 30), np.uint8))
    assert main(["info", str(tmp_path / "a.tif")]) == 0
    assert "holds:" not in capsys.readouterr().out
    assert info_module.describe_labels(tmp_path / "a.tif") is None


def test_a_two_scene_label_store_counts_its_objects_once(tmp_path):
    import scopeml as sm

    mask = np.zeros((2, 1, 1, 1, 40, 50), np.uint8)  # S T C Z Y X: two scenes
    mask[0, ..., 5:15, 5:15] = mask[1, ..., 20:30, 20:30] = mask[1, ..., 2:8, 40:48] = 1
    store = sm.label_objects(sm.Image(mask), tmp_path / "objects.ome.zarr").path
    assert info_module.describe_labels(store) == {"kind": "instance labels", "objects": 3}
