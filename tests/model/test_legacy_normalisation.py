"""A legacy container records no normalisation or object size: converting one back to a czann
restores the built-in model's (its graph) or says, in one line, that a normalisation the model
may need is not known; a legacy copy of a built-in runs as the built-in, with a warning."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import scopeml as sm
from scopeml.cli import main
from scopeml.io.image import Image
from scopeml.model import read_container, write_container
from scopeml.model.convert import convert_container
from scopeml.model.registry import resolve_model
from scopeml.model.testing import tiny_unet_onnx
from scopeml.synthetic import synthetic_nuclei
from tests.model.model_builders import unet_metadata


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def _nuclei_count(model, pixels, out) -> int:
    """Connected nucleus regions (label 2: background 1, nucleus 2, boundary 3)."""
    seg = sm.segment(Image(pixels[None, None, None]), model, out, outputs=["labels"])
    return ndimage.label(seg.labels.read() == 2)[1]


def test_nuclei_round_trip_gets_its_normalisation_back(tmp_path, capsys):
    legacy, back = tmp_path / "nuclei.czseg", tmp_path / "back.czann"
    assert main(["model", "convert", "nuclei", "-o", str(legacy)]) == 0
    capsys.readouterr()
    assert main(["model", "convert", str(legacy), "-o", str(back)]) == 0
    captured = capsys.readouterr()
    lines = _warnings(captured.err)
    assert len(lines) == 1 and "built-in nuclei" in lines[0]
    assert "percentile:1,99.8 and object size are restored" in lines[0]
    assert "--normalize" in lines[0]
    restored = read_container(back).metadata
    shipped = read_container(resolve_model("nuclei")).metadata
    assert restored.normalize == "percentile:1,99.8"
    assert restored.model_extra == shipped.model_extra  # the object size scale auto works from
    assert shipped.model_extra["ScopeMLObjectDiameter"] == 20.0
    # The same nuclei as the shipped model (the legacy one, on raw counts, finds others)
    image, truth = synthetic_nuclei((256, 256), density=0.0006, cluster_fraction=0.0,
                                    overlap=False, seed=5)  # fmt: skip
    pixels = image.astype(np.float32)
    want = _nuclei_count(resolve_model("nuclei"), pixels, tmp_path / "a.ome.zarr")
    assert abs(want - truth.max()) <= 2
    assert _nuclei_count(back, pixels, tmp_path / "b.ome.zarr") == want
    # the legacy copy itself runs as the built-in (on raw counts it found others), and says so
    said = r"nuclei.czseg: the graph is scopeml's built-in nuclei model, so its normalisation"
    with pytest.warns(UserWarning, match=said):
        assert _nuclei_count(legacy, pixels, tmp_path / "c.ome.zarr") == want
    # --normalize chooses another; the object size is restored still (it was dropped)
    assert main(["model", "convert", str(legacy), "-o", str(tmp_path / "none.czann"),
                 "--normalize", "none"]) == 0  # fmt: skip
    assert _warnings(capsys.readouterr().err) == [
        "warning: nuclei.czseg: the graph is scopeml's built-in nuclei model; its object size "
        "is restored"
    ]
    chosen = read_container(tmp_path / "none.czann").metadata
    assert chosen.normalize in (None, "none")
    assert chosen.model_extra == shipped.model_extra


def test_a_czann_converted_to_a_czann_keeps_its_object_size(tmp_path):
    copy = convert_container(resolve_model("nuclei"), tmp_path / "copy.czann")
    shipped = read_container(resolve_model("nuclei")).metadata
    assert read_container(copy).metadata.model_extra == shipped.model_extra
    seg = sm.segment(np.zeros((64, 64), np.uint16), copy, tmp_path / "s.ome.zarr")
    assert seg.auto_scale is not None  # scale auto ran, from the kept diameter


def test_a_foreign_legacy_model_says_its_normalisation_is_not_known(tmp_path):
    meta = unet_metadata(n_classes=2, classes=("bg", "fg"))
    czann = write_container(tmp_path / "own.czann", tiny_unet_onnx(n_classes=2, seed=1), meta)
    legacy = convert_container(czann, tmp_path / "own.czseg", spatial=(64, 64))
    with pytest.warns(UserWarning, match="records no normalisation") as caught:
        back = convert_container(legacy, tmp_path / "back.czann")
    assert len(caught) == 1 and "--normalize" in str(caught[0].message)
    assert "\n" not in str(caught[0].message)
    assert read_container(back).metadata.normalize is None
    back = convert_container(legacy, tmp_path / "given.czann", normalize="percentile:1,99.8")
    assert read_container(back).metadata.normalize == "percentile:1,99.8"


def test_a_czmodel_output_is_reported_as_czmodel(tmp_path, capsys):
    meta = unet_metadata(n_classes=2, classes=("bg", "fg"))
    czann = write_container(tmp_path / "own.czann", tiny_unet_onnx(n_classes=2, seed=1), meta)
    code = main(["model", "convert", str(czann), "-o", str(tmp_path / "own.czmodel"),
                 "--spatial", "64x64"])  # fmt: skip
    assert code == 0 and "(czmodel, input 64×64)" in capsys.readouterr().out
    code = main(["model", "convert", str(czann), "-o", str(tmp_path / "own.czseg"),
                 "--spatial", "64x64"])  # fmt: skip
    assert code == 0 and "(czseg, input 64×64)" in capsys.readouterr().out


def test_a_czann_of_the_built_in_graph_that_records_nothing_runs_as_the_built_in(tmp_path):
    """The nuclei graph packed into a czann by czmodel (no ScopeML keys) ran on raw
    intensities without a word: 18,345 label pixels differed from ``nuclei``."""
    from scopeml.model import ModelMetadata

    shipped = read_container(resolve_model("nuclei"))
    plain = {k: v for k, v in shipped.metadata.model_dump(by_alias=True).items()
             if not k.startswith("ScopeML")}  # fmt: skip
    packed = write_container(tmp_path / "packed.czann", shipped.onnx_bytes,
                             ModelMetadata.model_validate(plain))  # fmt: skip
    image, _ = synthetic_nuclei((160, 160), density=0.0006, cluster_fraction=0.0, seed=5)
    pixels = image.astype(np.float32) * 7 + 300  # not the range the graph was trained on
    want = sm.segment(Image(pixels[None, None, None]), "nuclei", tmp_path / "a.ome.zarr")
    said = r"packed.czann: the graph is scopeml's built-in nuclei model, so its normalisation"
    with pytest.warns(UserWarning, match=f"{said} .* which this czann does not record"):
        got = sm.segment(Image(pixels[None, None, None]), packed, tmp_path / "b.ome.zarr")
    np.testing.assert_array_equal(got.labels.read(), want.labels.read())
