"""A czann's recorded normalisation is its spec's ``normalize`` (what ``ModelSpec`` promises),
shown by ``inspect_model``; the engine still applies it exactly once."""

from __future__ import annotations

import numpy as np

import scopeml as sm
from scopeml.model import read_container, write_container
from scopeml.model.registry import resolve_model
from scopeml.model.testing import tiny_unet_onnx
from scopeml.synthetic import synthetic_nuclei
from tests.model.model_builders import unet_metadata


def test_a_czann_spec_reports_the_normalisation_it_records(tmp_path):
    assert sm.open_model("nuclei").spec.normalize == "percentile:1,99.8"
    assert sm.inspect_model("nuclei")["engine"]["normalize"] == "percentile:1,99.8"
    own = write_container(tmp_path / "own.czann", tiny_unet_onnx(n_classes=2, seed=1),
                          unet_metadata(normalize="meanstd"))  # fmt: skip
    assert sm.open_model(own).spec.normalize == "meanstd"
    raw = write_container(tmp_path / "raw.czann", tiny_unet_onnx(n_classes=2, seed=1),
                          unet_metadata())  # fmt: skip
    assert sm.open_model(raw).spec.normalize is None  # raw values, as ZEN feeds a czann
    assert sm.inspect_model(raw)["engine"]["normalize"] is None


def test_the_builtin_model_is_normalised_once(tmp_path):
    """The built-in's probabilities equal those of a copy that records no normalisation, run
    with the same policy given: the recorded policy is applied once, not twice."""
    shipped = read_container(resolve_model("nuclei"))
    meta = shipped.metadata.model_copy(update={"normalize": None})
    bare = write_container(tmp_path / "bare.czann", shipped.onnx_bytes, meta)
    assert sm.open_model(bare).spec.normalize is None  # the object size keeps it from the twin
    image = synthetic_nuclei((160, 192), density=0.001, seed=3)[0].astype(np.uint16) * 40
    builtin = sm.segment(image, "nuclei", tmp_path / "a.ome.zarr", outputs=["probabilities"],
                         scale=1).probabilities.read()  # fmt: skip
    given = sm.segment(image, bare, tmp_path / "b.ome.zarr", outputs=["probabilities"],
                       scale=1, normalize="percentile:1,99.8").probabilities.read()  # fmt: skip
    assert builtin.std() > 0.05  # a real prediction, not a constant
    np.testing.assert_array_equal(builtin, given)
