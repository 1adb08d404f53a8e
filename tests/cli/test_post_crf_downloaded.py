"""``post --step crf`` on a store moved from where it was segmented (a server's result.zip
unpacked, another machine): the recorded image not at its path is said in one line naming
--image; a file of its name beside the store is used, and a warning names it."""

from __future__ import annotations

import shutil

import numpy as np
import tifffile
import zarr

import scopeml as sm
from scopeml.cli import main
from scopeml.io import open_image
from scopeml.model.spec import ModelSpec
from scopeml.post import dense_crf


class SoftThreshold:
    """A blurry two-class model (background, coin): a logistic ramp around 107."""

    spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("background", "coin"), halo=(0, 0))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        coin = 1 / (1 + np.exp(-(batch.astype(np.float32) - 107) / 25))
        return np.concatenate([1 - coin, coin], axis=1).astype(np.float32)


def test_a_moved_store_finds_its_image_beside_it_or_says_to_give_it(tmp_path, capsys) -> None:
    from skimage import data

    image = data.coins()[:120, :150]
    made = tmp_path / "made"
    made.mkdir()
    tifffile.imwrite(made / "coins.tif", image)
    sm.segment(made / "coins.tif", SoftThreshold(), made / "seg.ome.zarr", workers=1,
               outputs=("labels", "probabilities"))  # fmt: skip
    # as a server's store records it: the image's name below its root, never its path
    unpacked = tmp_path / "unpacked"
    shutil.copytree(made / "seg.ome.zarr", unpacked / "seg.ome.zarr")
    group = zarr.open_group(str(unpacked / "seg.ome.zarr"), mode="r+")
    record = dict(group.attrs["scopeml"])
    assert record["image"]["path"] == str((made / "coins.tif").resolve())
    record["image"] = {"name": "plate/coins.tif"}
    group.attrs["scopeml"] = record
    shutil.rmtree(made)  # the machine it was segmented on

    out = tmp_path / "p.ome.zarr"
    args = ["post", str(unpacked / "seg.ome.zarr"), "-o", str(out), "-s", "crf:1", "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "records plate/coins.tif, which is not at that path" in err
    assert "nor beside the store as coins.tif; give it with --image" in err

    tifffile.imwrite(unpacked / "coins.tif", image)  # downloaded beside the store
    assert main(args) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert f"warning: crf: the image the store records, plate/coins.tif, is not at that " \
           f"path; using {unpacked / 'coins.tif'}" in err  # fmt: skip
    store = sm.Segmentation(unpacked / "seg.ome.zarr")
    prob = store.probabilities.read()[0, 0, :, 0]
    sigma = 0.05 * float(np.ptp(image))
    expected = dense_crf(prob, image.astype(np.float32), intensity_sigma=sigma, iterations=1)
    np.testing.assert_array_equal(open_image(out / "labels").read()[0, 0, 0, 0], expected)
    post = zarr.open_group(str(out), mode="r").attrs["scopeml"]["post"]
    assert post["image"] == str(unpacked / "coins.tif")

    # a file given with --image is taken as given, whatever lies beside the store
    other = tmp_path / "other.tif"
    tifffile.imwrite(other, image[:60])
    assert main([*args, "--overwrite", "--image", str(other)]) == 2
    assert "other.tif: image is" in capsys.readouterr().err
