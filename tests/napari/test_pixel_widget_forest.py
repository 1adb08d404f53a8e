"""Pixel classifier widget: the forest's max depth and min leaf size, set in the widget, shape
the trees trained; their defaults are the library's; a loaded model brings its own back."""

from __future__ import annotations

import inspect
import itertools

import scopeml as sm
from scopeml.synthetic import synthetic_nuclei

WAIT_MS = 180_000


def trained(qtbot, widget):
    widget.train()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert not widget.status.text().startswith("error"), widget.status.text()
    return widget.model


def tree_shapes(model) -> tuple[int, int]:
    """The deepest tree's depth and the most leaves a tree has."""
    arrays = model.forest.arrays()
    offsets = arrays["offsets"]
    leaves = [int((arrays["left"][lo:hi] == -1).sum()) for lo, hi in itertools.pairwise(offsets)]
    return int(arrays["depth"].max()), max(leaves)


def test_max_depth_and_min_leaf_reach_the_forest(viewer, qtbot, tmp_path):
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    pixels, truth = synthetic_nuclei((96, 96), channels=1, seed=11)
    viewer.add_image(pixels[0], name="nuclei")
    widget = PixelClassifierWidget(viewer)
    defaults = inspect.signature(sm.train_pixel_classifier).parameters
    assert widget.forest_options() == {
        name: defaults[name].default for name in ("n_estimators", "max_depth", "min_samples_leaf")
    }
    assert widget.max_depth.text() == "unlimited"
    scribbles = widget.scribbles()
    scribbles.data[::3, ::3] = (truth[::3, ::3] > 0) + 1
    widget.features.setCurrentText("gaussian_smoothing:1,3; laplacian_of_gaussian:1")
    widget.trees.setValue(6)
    free = trained(qtbot, widget)
    n = free.info["n_samples"]
    assert (free.info["max_depth"], free.info["min_samples_leaf"]) == (None, 1)

    widget.max_depth.setValue(3)
    widget.min_leaf.setValue(40)
    bounded = trained(qtbot, widget)
    assert (bounded.info["max_depth"], bounded.info["min_samples_leaf"]) == (3, 40)
    depth, leaves = tree_shapes(bounded)
    assert depth <= 3 < tree_shapes(free)[0]
    assert leaves <= min(2**3, n // 40) < tree_shapes(free)[1]

    widget.max_depth.setValue(0)  # unlimited again; the leaves alone bound the trees
    widget.min_leaf.setValue(n // 6)
    leafy = trained(qtbot, widget)
    assert leafy.info["max_depth"] is None and tree_shapes(leafy)[1] <= 6

    saved = bounded.save(tmp_path / "bounded.czseg")
    other = PixelClassifierWidget(viewer)
    other.load_model(saved)
    assert (other.max_depth.value(), other.min_leaf.value()) == (3, 40)
    assert other.forest_options()["max_depth"] == 3  # training again keeps them
