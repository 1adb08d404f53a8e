"""A ``segment`` store reopens in napari: the whole ``OUT.ome.zarr`` or one output's sub-folder;
labels, mask and instances as Labels layers (class names where the store has them),
probabilities and confidence as images, each equal to the store's pixels, in the image's µm."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from tests.napari.conftest import sample_classifier


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real ``sm.segment`` store with every output: a small pixel classifier on the demo."""

    folder = tmp_path_factory.mktemp("store")
    image, model = sample_classifier(
        folder / "cells.ome.zarr", size=256, block=256, seed=11, every=7, n_estimators=8,
        features="gaussian_smoothing:1,3.5",
    )  # fmt: skip
    seg = sm.segment(
        image, model, folder / "cells.seg.ome.zarr", extract_class="nucleus",
        outputs=("labels", "probabilities", "confidence", "mask", "instances"),
    )  # fmt: skip
    return image, seg


def plane(layer) -> np.ndarray:
    return np.asarray(layer.data[0] if layer.multiscale else layer.data)


def test_the_whole_store_opens_as_its_outputs(viewer, store):
    from napari.layers import Image, Labels

    image, seg = store
    layers = viewer.open(str(seg.path), plugin="scopeml")
    kinds = {layer.name: type(layer) for layer in layers}
    assert kinds == {
        "cells.seg background probability": Image,
        "cells.seg nucleus probability": Image,
        "cells.seg confidence": Image,
        "cells.seg labels": Labels,
        "cells.seg mask": Labels,
        "cells.seg instances": Labels,
    }
    by_name = {layer.name: layer for layer in layers}
    labels = by_name["cells.seg labels"]
    np.testing.assert_array_equal(plane(labels), seg.labels.read()[0, 0, 0, 0])
    assert list(labels.features["class"]) == ["background", "nucleus"]
    assert list(labels.features["index"]) == [1, 2]  # class k is label k + 1
    background, nucleus = labels.colormap.map(np.array([1, 2]))
    assert background[-1] == 0  # clear over the image
    from scopeml.palette import PALETTE  # nucleus as a classifier's 2nd class shows

    np.testing.assert_allclose(
        nucleus, [*(int(PALETTE[1][i : i + 2], 16) / 255 for i in (1, 3, 5)), 1]
    )
    mask = by_name["cells.seg mask"]
    assert list(mask.features["class"]) == ["nucleus"]
    np.testing.assert_array_equal(plane(mask), seg.mask.read()[0, 0, 0, 0])
    instances = plane(by_name["cells.seg instances"])
    np.testing.assert_array_equal(instances, seg.instances.read()[0, 0, 0, 0])
    assert instances.max() > 10  # many nuclei, one id each
    probability = by_name["cells.seg nucleus probability"]
    np.testing.assert_allclose(plane(probability), seg.probabilities.read()[0, 0, 1, 0])
    assert tuple(probability.contrast_limits) == (0, 1)
    np.testing.assert_allclose(
        plane(by_name["cells.seg confidence"]), seg.confidence.read()[0, 0, 0, 0]
    )
    with sm.open_image(image) as pixels:
        expected_scale = (pixels.pixel_sizes["Y"], pixels.pixel_sizes["X"])
    for layer in layers:
        assert tuple(layer.scale) == pytest.approx(expected_scale), layer.name
    viewer.open(str(image), plugin="scopeml")  # the image under them, in the same units
    assert viewer.layers.extent.units is not None  # no "Inconsistent units across layers"
    # the class under the cursor: napari's status shows the class name of a nucleus pixel
    y, x = np.argwhere(plane(labels) == 2)[0]
    position = (y * expected_scale[0], x * expected_scale[1])
    assert "class: nucleus" in labels._get_properties(position, world=True)


@pytest.mark.parametrize(
    ("output", "kind", "names"),
    [
        ("labels", "Labels", ["cells.seg labels"]),
        ("instances", "Labels", ["cells.seg instances"]),
        ("probabilities", "Image",
         ["cells.seg background probability", "cells.seg nucleus probability"]),
    ],
)  # fmt: skip
def test_one_output_folder_opens_alone(viewer, store, output, kind, names):
    import npe2

    _, seg = store
    folder = seg.path / output
    # npe2 offers the folder (not named *.zarr) to scopeml's reader, which takes it
    readers = npe2.PluginManager.instance().iter_compatible_readers([str(folder)])
    assert "scopeml.get_image_reader" in {reader.command for reader in readers}
    layers = viewer.open(str(folder), plugin="scopeml")
    assert [layer.name for layer in layers] == names
    assert {type(layer).__name__ for layer in layers} == {kind}


def test_an_objects_store_opens_as_labels(viewer, store, tmp_path):
    from napari.layers import Labels

    _, seg = store
    objects = sm.label_objects(seg, tmp_path / "cells.objects.ome.zarr", class_="nucleus")
    (layer,) = viewer.open(str(objects.path), plugin="scopeml")
    assert isinstance(layer, Labels) and layer.name == "cells.objects"
    np.testing.assert_array_equal(plane(layer), objects.read()[0, 0, 0, 0])


def test_a_new_widget_starts_on_the_image_not_on_a_stores_outputs(viewer, store):
    from scopeml.napari.objects_widget import ObjectsWidget
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    image, seg = store
    opened = viewer.open(str(image), plugin="scopeml")  # one layer per channel
    viewer.open(str(seg.path), plugin="scopeml")  # confidence, probabilities above it
    viewer.layers.selection.clear()
    for widget in (ObjectsWidget(viewer), PixelClassifierWidget(viewer)):
        assert widget.image_choice.layer() is opened[-1]
