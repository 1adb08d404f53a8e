"""A threshold segmenter's ``factor``, ``minimum`` and ``maximum`` (CellProfiler's correction
factor and bounds): the automatic level adjusted, the same tiled and whole, pooled and per
parent; a blank image gets no objects under a minimum (it gave 96 "nuclei" of noise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.filters import threshold_otsu

from scopeml.analysis import load_settings, run_analysis
from scopeml.analysis.parent_threshold import parent_levels
from scopeml.analysis.segment import threshold_mask
from scopeml.analysis.settings import ThresholdSegmenter
from scopeml.analysis.tiled import threshold_tiled
from scopeml.errors import ScopeMLError
from scopeml.synthetic import realistic_nuclei
from tests.analysis.conftest import write_image


def plane() -> np.ndarray:
    return realistic_nuclei((128, 128), seed=2)[0][0].astype(np.uint16)


def test_the_level_is_multiplied_and_bounded_whole_and_tiled():
    image = plane()
    otsu = threshold_otsu(image)
    for seg, level in (
        (ThresholdSegmenter(channel="a", factor=1.5), 1.5 * otsu),
        (ThresholdSegmenter(channel="a", maximum=otsu / 2), otsu / 2),
        (ThresholdSegmenter(channel="a", factor=0.5, minimum=otsu), otsu),
    ):
        whole = threshold_mask(image, seg)
        np.testing.assert_array_equal(whole, image > level)
        tiled, found = threshold_tiled(image, None, "otsu", tile_size=37, adjust=seg.adjusted)
        assert found == pytest.approx(level)
        np.testing.assert_array_equal(tiled[...], whole)


def test_per_parent_levels_are_adjusted_each():
    image = plane()
    parents = np.zeros(image.shape, np.int32)
    parents[:, :64], parents[:, 64:] = 1, 2
    seg = ThresholdSegmenter(channel="a", scope="per_parent", factor=1.2)
    levels = 1.2 * parent_levels(image, parents, "otsu", tile_size=128)
    expected = image > levels[parents]
    np.testing.assert_array_equal(threshold_mask(image, seg, parents), expected)


def test_a_blank_image_gets_no_objects_under_a_minimum(tmp_path: Path):
    noise = np.random.default_rng(0).integers(0, 5, (1, 64, 64)).astype(np.uint16)
    image = write_image(tmp_path / "blank.ome.tif", noise)
    text = (
        "version: 1\nchannels: [DAPI]\nclasses:\n  - name: nucleus\n    segmenter: "
        "{kind: threshold, channel: DAPI, method: otsu%s}\n"
    )
    for extra, found in (("", True), (", minimum: 50", False)):
        settings = tmp_path / f"s{len(extra)}.yaml"
        settings.write_text(text % extra)
        result = run_analysis(load_settings(settings), [image], tmp_path / f"out{len(extra)}")
        assert (result.counts["blank"]["nucleus"] > 0) is found


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"method": "fixed", "value": 3, "factor": 2}, "adjust automatic thresholds"),
        ({"minimum": 10, "maximum": 5}, "'minimum' 10.0 is above 'maximum' 5.0"),
        ({"factor": 0}, "greater than 0"),
    ],
)
def test_bad_adjustments_are_refused(fields, message):
    with pytest.raises((ScopeMLError, ValueError), match=message):
        ThresholdSegmenter(channel="a", **fields)
