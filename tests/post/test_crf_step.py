"""``post --step crf``: a segment store's probabilities and its image into dense CRF labels,
tile by tile equal to the whole image, then the other steps; bad input in one line."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidImageError, InvalidRequestError
from scopeml.io import open_image
from scopeml.model.spec import ModelSpec
from scopeml.post import PostStep, apply_steps, dense_crf, post_process_file
from scopeml.post.crf_tiled import CrfStep, split_crf


class SoftThreshold:
    """A blurry two-class model (background, coin): a logistic ramp around Otsu's threshold."""

    spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("background", "coin"), halo=(0, 0))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        coin = 1 / (1 + np.exp(-(batch.astype(np.float32) - 107) / 25))
        return np.concatenate([1 - coin, coin], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def coins(tmp_path_factory):
    """skimage's coins as a file, and its segment store with labels and probabilities."""
    from skimage import data

    folder = tmp_path_factory.mktemp("coins")
    image = data.coins()  # 303 × 384
    path = folder / "coins.ome.tif"
    tifffile.imwrite(path, image, metadata={"axes": "YX"})
    store = sm.segment(path, SoftThreshold(), folder / "seg.ome.zarr", workers=1,
                       outputs=("labels", "probabilities"))  # fmt: skip
    return path, store, image


def whole_crf(store, image: np.ndarray, iterations: int) -> np.ndarray:
    prob = store.probabilities.read()[0, 0, :, 0]
    sigma = 0.05 * float(np.ptp(image))  # the default contrast: 5 % of the image's range
    return dense_crf(prob, image.astype(np.float32), intensity_sigma=sigma, iterations=iterations)


def test_tiled_crf_equals_the_whole_image_and_then_the_steps_run(coins, tmp_path) -> None:
    _, store, image = coins
    expected = whole_crf(store, image, 2)
    argmax = store.labels.read()[0, 0, 0, 0]
    assert (expected != argmax).sum() > 100  # the CRF does something here
    assert min(image.shape) > 64 + 2 * CrfStep(2).halo  # several tiles, each with the halo
    written = post_process_file(store, tmp_path / "c.ome.zarr", ["crf:2"], tile_size=64)
    np.testing.assert_array_equal(open_image(written).read()[0, 0, 0, 0], expected)
    store_out = sm.Segmentation(written.parent)
    assert store_out.classes == ("background", "coin")
    post = store_out.path / "zarr.json"
    assert f'"changed_pixels": {int((expected != argmax).sum())}' in post.read_text()

    steps = ["crf:2", "fill_holes", "remove_small:30"]
    written = post_process_file(store / "labels", tmp_path / "s.ome.zarr", steps, tile_size=64)
    then = apply_steps(expected, [PostStep.parse(s) for s in steps[1:]], background=1)
    np.testing.assert_array_equal(open_image(written).read()[0, 0, 0, 0], then)


def test_the_command_line_runs_crf_with_the_recorded_image(coins, tmp_path, capsys) -> None:
    path, store, image = coins
    out = tmp_path / "p.ome.zarr"
    args = ["post", str(store), "-o", str(out), "-s", "crf:1", "--tile-size", "64", "-q"]
    assert main(args) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith(f"labels → {out}; crf:1: ")
    np.testing.assert_array_equal(
        open_image(out / "labels").read()[0, 0, 0, 0], whole_crf(store, image, 1)
    )
    # a wrong step order, a store without probabilities, a mismatched image: one line each
    assert main([*args[:4], "-s", "fill_holes", "-s", "crf", "--overwrite"]) == 2
    assert "crf must be the first step" in capsys.readouterr().err
    labels_only = sm.segment(path, SoftThreshold(), tmp_path / "l.ome.zarr", workers=1)
    assert main(["post", str(labels_only), "-o", str(tmp_path / "x.ome.zarr"), "-s", "crf"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--outputs labels,probabilities" in err
    other = tmp_path / "other.tif"
    tifffile.imwrite(other, image[:100])
    assert main([*args, "--overwrite", "--image", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other.tif: image is T×Z×Y×X 1×1×100×384" in err


def test_crf_steps_parse_and_check() -> None:
    assert split_crf(["crf:3", "opening"]) == (CrfStep(3), ["opening"])
    assert split_crf(["opening"]) == (None, ["opening"])
    with pytest.raises(InvalidRequestError, match=r"iterations must be 1\.\.20"):
        CrfStep.parse("crf:0")
    with pytest.raises(InvalidRequestError, match="known: closing, crf, fill_holes"):
        PostStep.parse("grow:2")


def test_four_channels_are_refused(coins, tmp_path) -> None:
    _, store, image = coins
    four = tmp_path / "four.ome.tif"
    tifffile.imwrite(four, np.stack([image] * 4), metadata={"axes": "CYX"})
    with pytest.raises(InvalidImageError, match="4 channels; the CRF's bilateral kernel"):
        post_process_file(store, tmp_path / "o.ome.zarr", ["crf"], image=four)


def test_a_grid_over_the_memory_bound_is_refused_before_any_work() -> None:
    from scopeml.io.image import Image
    from scopeml.post.crf_tiled import crf_tiled

    class Unread:  # refusing must not read a pixel
        dtype = np.dtype(np.float32)

        def __init__(self, channels: int) -> None:
            self.shape = (1, 1, channels, 1, 600, 600)

        def __getitem__(self, key):
            raise AssertionError("read")

    prob, rgb = Image(Unread(2)), Image(Unread(3))
    out = np.zeros((1, 1, 1, 1, 600, 600), np.uint8)
    with pytest.raises(
        InvalidRequestError, match=r"bilateral grid .* 600×600 pixels .*--tile-size"
    ):
        crf_tiled(prob, rgb, out, CrfStep(), tile_size=1024)
    assert not out.any()
