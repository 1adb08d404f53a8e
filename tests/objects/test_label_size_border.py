"""Labelling drops objects larger than ``max_size`` and those the image's edge cuts
(``remove_border``), by their whole size and extent across tiles: tiled equals whole-image,
which equals scikit-image's labelling with the same objects taken out."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label, regionprops
from skimage.segmentation import clear_border

from scopeml.errors import InvalidRequestError
from scopeml.objects import label_instances, label_instances_tiled
from scopeml.synthetic import synthetic_nuclei
from tests.objects.test_split import in_raster_order


def reference(mask: np.ndarray, min_size: int, max_size: int | None, border: bool) -> np.ndarray:
    """scikit-image: label, clear the border, drop by area, renumber (2-D)."""
    out = label(mask, connectivity=1)
    if border:
        out = clear_border(out)
    for region in regionprops(out):
        if region.area < min_size or (max_size is not None and region.area > max_size):
            out[out == region.label] = 0
    return in_raster_order(out)


@pytest.mark.parametrize(
    ("min_size", "max_size", "border"), [(0, 300, False), (0, None, True), (60, 500, True)]
)
def test_tiled_and_whole_equal_scikit_image(tmp_path, min_size, max_size, border):
    _, truth = synthetic_nuclei(
        (150, 170), density=0.003, radius=(3, 8), cluster_fraction=0.3, seed=11
    )
    mask = truth > 0
    expected = reference(mask, min_size, max_size, border)
    assert 0 < expected.max() < label(mask, connectivity=1).max()  # some objects were dropped
    whole = label_instances(mask, min_size=min_size, max_size=max_size, remove_border=border)
    np.testing.assert_array_equal(whole, expected)
    tiled = label_instances_tiled(
        mask, tmp_path / "o.zarr", tile_size=(23, 31), min_size=min_size, max_size=max_size,
        remove_border=border,
    )  # fmt: skip
    np.testing.assert_array_equal(tiled[...], expected)  # objects crossing tiles measured whole
    assert tiled.attrs["n_objects"] == expected.max()


def test_border_in_a_z_stack_is_y_and_x_only(tmp_path):
    """A Z stack's first and last planes are no edge (a thin stack cuts every nucleus there)."""
    mask = np.zeros((3, 12, 12), bool)
    mask[:, 4:8, 4:8] = True  # through every plane, away from Y/X edges
    mask[1, 0:3, 5:7] = True  # on the Y edge
    out = label_instances_tiled(mask, tmp_path / "z.zarr", tile_size=(2, 5, 5), remove_border=True)
    assert out.attrs["n_objects"] == 1
    np.testing.assert_array_equal(
        out[...] > 0, np.pad(np.ones((3, 4, 4), bool), ((0, 0), (4, 4), (4, 4)))
    )


def test_max_size_below_min_size_is_refused():
    with pytest.raises(InvalidRequestError, match="the max size 5 is below the min size 10"):
        label_instances(np.ones((4, 4), bool), min_size=10, max_size=5)
    with pytest.raises(InvalidRequestError, match="the max size must be a whole number"):
        label_instances(np.ones((4, 4), bool), max_size=-1)


def test_cli_and_facade(tmp_path):
    import tifffile
    from typer.testing import CliRunner

    import scopeml as sm
    from scopeml.cli import app

    _, truth = synthetic_nuclei((120, 140), density=0.003, radius=(3, 8), seed=5)
    mask = (truth > 0).astype(np.uint8)
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    expected = reference(mask > 0, 0, 250, True)
    result = CliRunner().invoke(app, ["objects", "label", str(tmp_path / "mask.tif"), "-o",
                                      str(tmp_path / "o.ome.zarr"), "--max-size", "250",
                                      "--remove-border", "-q"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{expected.max()} objects" in result.output
    objects = sm.label_objects(mask, tmp_path / "p.ome.zarr", max_size=250, remove_border=True)
    np.testing.assert_array_equal(objects.read()[0, 0, 0, 0], expected)
