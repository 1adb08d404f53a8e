"""Containers move both ways between scopeml and the real czmodel package."""

from __future__ import annotations

import numpy as np
import onnx
from czmodel.core.legacy_model_metadata import ModelMetadata as CzLegacyMetadata
from czmodel.core.model_metadata import ModelMetadata as CzMetadata
from czmodel.core.model_metadata import ModelType as CzModelType
from czmodel.core.util._extract_model import extract_czann_model, extract_czseg_model
from czmodel.core.util.model_packing import create_legacy_model_zip, create_model_zip
from czmodel.core.util.onnx_export import DefaultOnnxConverter

from scopeml.model import LegacyModelMetadata, convert_onnx, load_model, read_container
from scopeml.model.testing import tiny_unet_onnx, unet_receptive_halo
from tests.model.model_builders import CPU, MODEL_ID, run_onnx, unet_metadata


def _image(shape, seed=0):
    return np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32)


def test_czann_from_czmodel_loads_with_identical_metadata_and_predictions(tmp_path):
    graph = tiny_unet_onnx(in_channels=2, n_classes=3, depth=2, seed=3)
    onnx_file = tmp_path / "unet.onnx"
    onnx.save(graph, onnx_file)
    cz_meta = CzMetadata(
        model_type=CzModelType.MULTI_CLASS_SEMANTIC_SEGMENTATION,
        input_shape=[128, 128, 2],
        output_shape=[128, 128, 3],
        classes=["bg", "nucleus", "border"],
        model_name="from czmodel",
        min_overlap=[unet_receptive_halo(2)] * 2,
        scaling=(2e-7, 3e-7),
    )
    target = str(tmp_path / "cz.czann")
    DefaultOnnxConverter().convert(str(onnx_file), cz_meta, target)
    container = read_container(target)
    assert container.metadata.to_json_dict() == {**cz_meta.to_czann_dict(), "Scaling": [2e-7, 3e-7]}
    model = load_model(target, providers=CPU)
    spec = model.spec
    assert (spec.in_channels, spec.classes, spec.name) == (
        2,
        ("bg", "nucleus", "border"),
        "from czmodel",
    )
    assert spec.halo == (unet_receptive_halo(2),) * 2
    assert spec.tile_step == (4, 4) and spec.tile_shape is None
    assert spec.pixel_size == (3e-7, 2e-7)  # Scaling is x, y; the spec is (Y, X)
    batch = _image((3, 2, 24, 40))
    expected = run_onnx(graph.SerializeToString(), np.moveaxis(batch, 1, -1))
    got = model.predict(batch)
    assert got.dtype == np.float32 and got.shape == (3, 3, 24, 40)
    np.testing.assert_array_equal(got, np.moveaxis(expected, -1, 1))


def test_czann_written_by_create_model_zip_with_a_license(tmp_path):
    graph = tiny_unet_onnx(spatial_dims=3, tile_shape=(8, 16, 16))
    cz_meta = CzMetadata(
        model_type=CzModelType.SINGLE_CLASS_SEMANTIC_SEGMENTATION,
        input_shape=[8, 16, 16, 1],
        output_shape=[8, 16, 16, 2],
        classes=["a", "b"],
        min_overlap=[2, 4, 4],
    )
    license_file = tmp_path / "license.txt"
    license_file.write_text("MIT")
    create_model_zip(graph.SerializeToString(), cz_meta, str(tmp_path / "cz"), str(license_file))
    container = read_container(tmp_path / "cz.czann")
    assert container.license_bytes == b"MIT"
    model = load_model(container, providers=CPU)
    assert model.spec.spatial_dims == 3 and model.spec.tile_shape == (8, 16, 16)
    assert model.spec.halo == (2, 4, 4)
    batch = _image((1, 1, 8, 16, 16))
    expected = run_onnx(graph.SerializeToString(), np.moveaxis(batch, 1, -1))
    np.testing.assert_array_equal(model.predict(batch), np.moveaxis(expected, -1, 1))


def test_scopeml_czann_is_read_by_czmodel(tmp_path):
    ours = unet_metadata(in_channels=1, n_classes=2, scaling=(1e-7, 1e-7), min_overlap=(12, 16))
    path = convert_onnx(
        tiny_unet_onnx(),
        tmp_path / "ours.czann",
        classes=ours.classes,
        min_overlap=(12, 16),
        model_type=ours.model_type,
        name=ours.model_name,
        scaling=ours.scaling,
        tile_shape=(64, 64),
        model_id=MODEL_ID,
    )
    cz_meta, model_file = extract_czann_model(str(path), tmp_path / "extracted")
    assert cz_meta.model_type.value == ours.model_type.value
    assert cz_meta.model_id == MODEL_ID
    assert cz_meta.input_shape == [64, 64, 1] and cz_meta.output_shape == [64, 64, 2]
    assert cz_meta.classes == ["c0", "c1"] and cz_meta.min_overlap == [12, 16]
    assert cz_meta.model_name == "tiny" and cz_meta.scaling == (1e-7, 1e-7)
    as_json = {**cz_meta.to_czann_dict(), "Scaling": list(cz_meta.scaling)}
    assert as_json == read_container(path).metadata.to_json_dict()
    assert onnx.load(model_file) == tiny_unet_onnx()


def test_legacy_czmodel_both_ways(tmp_path):
    graph = tiny_unet_onnx(tile_shape=(64, 64), seed=5)  # a core beyond the 24 px border
    cz_meta = CzLegacyMetadata(
        name="legacy",
        classes=["bg", "fg"],
        pixel_types="Gray16",
        color_handling="ConvertToMonochrome",
        border_size=24,
        model_id=MODEL_ID,
    )
    create_legacy_model_zip(graph.SerializeToString(), cz_meta, str(tmp_path / "cz"))
    container = read_container(tmp_path / "cz.czmodel")
    meta = container.metadata
    assert isinstance(meta, LegacyModelMetadata)
    assert (str(meta.model_id), meta.name, meta.classes, meta.border_size) == (
        MODEL_ID,
        "legacy",
        ("bg", "fg"),
        24,
    )
    assert meta.pixel_types == ("Gray16",) and meta.color_handling == "ConvertToMonochrome"
    assert meta.colors == tuple(tuple(cls.color) for cls in cz_meta.classes)
    model = load_model(container, providers=CPU)
    batch = _image((2, 1, 64, 64))
    expected = run_onnx(graph.SerializeToString(), np.moveaxis(batch, 1, -1))
    np.testing.assert_array_equal(model.predict(batch), np.moveaxis(expected, -1, 1))

    ours = convert_onnx(
        graph,
        tmp_path / "ours.czseg",
        classes=["bg", "fg"],
        min_overlap=24,
        legacy=True,
        name="mine",
        model_id=MODEL_ID,
    )
    back, model_file = extract_czseg_model(str(ours), tmp_path / "extracted")
    assert back.classes == cz_meta.classes  # names and colours
    assert int(back.border_size) == 24 and back.color_handling == "ConvertToMonochrome"
    assert back.pixel_types == ["Gray32Float"]
    assert onnx.load(model_file) == graph
