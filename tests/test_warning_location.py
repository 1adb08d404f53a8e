"""Warnings about the user's input name the line of the user's code that called scopeml."""

from __future__ import annotations

import warnings

import numpy as np

import scopeml as sm


def _caught(call) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [w for w in caught if issubclass(w.category, UserWarning)]


def test_measure_warning_points_at_the_caller() -> None:
    labels = np.zeros((32, 32), np.uint16)
    labels[4:10, 4:10], labels[20:26, 20:26] = 1, 2
    image = np.ones((32, 32), np.float32)
    image[5, 5] = np.nan
    caught = _caught(lambda: sm.measure_objects(labels, image))
    assert caught and "NaN" in str(caught[0].message)
    assert all(w.filename == __file__ for w in caught), [w.filename for w in caught]


def test_segment_warning_points_at_the_caller(tmp_path) -> None:
    image = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)
    image[10:20, 10:20] = np.nan
    caught = _caught(lambda: sm.segment(image, "nuclei", tmp_path / "s.ome.zarr", scale=1))
    assert any("NaN" in str(w.message) for w in caught)
    assert all(w.filename == __file__ for w in caught), [w.filename for w in caught]


def test_analyze_warning_from_inside_a_with_points_at_the_caller(tmp_path) -> None:
    """A warning given while an image is opened in a ``with`` (a generator context manager)
    names the caller, not ``contextlib``."""
    import tifffile

    image = np.zeros((32, 32), np.uint8)
    image[4:12, 4:12] = 50
    tifffile.imwrite(tmp_path / "a.tif", image)
    segmenter = {"kind": "threshold", "channel": "DNA", "method": "fixed", "value": 5}
    settings = {"version": 1, "channels": ["DNA"], "classes": [{"name": "nucleus",
                "segmenter": segmenter}]}  # fmt: skip
    caught = _caught(lambda: sm.analyze(settings, [tmp_path / "a.tif"], tmp_path / "results"))
    assert any("names no channels: read C0 as DNA" in str(w.message) for w in caught)
    assert all(w.filename == __file__ for w in caught), [w.filename for w in caught]
