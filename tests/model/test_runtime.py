"""``load_model``: one session, channels-first at the boundary, the spec filled from the file."""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort
import pytest

from scopeml.errors import IncompatibleModelError, InvalidRequestError
from scopeml.model import Model, ModelMetadata, ModelType, load_model, write_container
from scopeml.model.runtime import choose_providers
from scopeml.model.testing import tiny_unet_onnx
from tests.model.model_builders import CPU, run_onnx, unet_metadata


def test_loaded_model_follows_the_protocol_and_matches_onnxruntime(czann):
    model = load_model(czann, providers=CPU)
    assert isinstance(model, Model)
    spec = model.spec
    assert (spec.spatial_dims, spec.in_channels, spec.classes) == (2, 1, ("c0", "c1"))
    assert (spec.halo, spec.tile_step, spec.tile_shape, spec.name) == (
        (24, 24),
        (4, 4),
        None,
        "tiny",
    )
    batch = np.random.default_rng(0).normal(size=(2, 1, 20, 12)).astype(np.float64)
    expected = run_onnx(
        tiny_unet_onnx().SerializeToString(), np.moveaxis(batch, 1, -1).astype(np.float32)
    )
    got = model.predict(batch)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, np.moveaxis(expected, -1, 1))
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)  # softmax over classes
    assert model.predict(np.zeros((0, 1, 8, 8), np.float32)).shape == (0, 2, 8, 8)


def test_one_session_is_reused(czann, monkeypatch):
    created = []
    original = ort.InferenceSession

    def counting(*args, **kwargs):
        created.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", counting)
    model = load_model(czann, providers=CPU, threads=1)
    assert model._session.get_session_options().intra_op_num_threads == 1
    for size in (8, 16, 32):
        model.predict(np.zeros((1, 1, size, size), np.float32))
    assert len(created) == 1


def test_3d_model_spec_and_prediction(tmp_path):
    graph = tiny_unet_onnx(spatial_dims=3, in_channels=2, n_classes=3, depth=1)
    meta = unet_metadata(
        in_channels=2,
        n_classes=3,
        spatial=(8, 32, 32),
        min_overlap=(4, 8, 8),
        scaling=(1e-7, 2e-7, 5e-7),
    )
    model = load_model(write_container(tmp_path / "m3.czann", graph, meta), providers=CPU)
    assert model.spec.spatial_dims == 3 and model.spec.halo == (4, 8, 8)
    assert model.spec.tile_step == (2, 2, 2)
    assert model.spec.pixel_size == (5e-7, 2e-7, 1e-7)
    batch = np.random.default_rng(1).normal(size=(1, 2, 4, 6, 8)).astype(np.float32)
    expected = run_onnx(graph.SerializeToString(), np.moveaxis(batch, 1, -1))
    np.testing.assert_array_equal(model.predict(batch), np.moveaxis(expected, -1, 1))


def test_fixed_graph_sets_tile_shape_and_refuses_other_sizes(tmp_path):
    graph = tiny_unet_onnx(tile_shape=(32, 32))
    model = load_model(
        write_container(tmp_path / "f.czann", graph, unet_metadata(spatial=(32, 32))), providers=CPU
    )
    assert model.spec.tile_shape == (32, 32)
    assert model.predict(np.zeros((3, 1, 32, 32), np.float32)).shape == (3, 2, 32, 32)
    with pytest.raises(
        IncompatibleModelError, match=r"spatial size \(16, 32\).*fixed to \(32, 32\)"
    ):
        model.predict(np.zeros((1, 1, 16, 32), np.float32))


def test_dynamic_graph_gives_no_tile_shape_whatever_input_shape_says(czann):
    # the metadata says 64×64, the graph is dynamic: the engine may pick any multiple of the step
    assert load_model(czann, providers=CPU).spec.tile_shape is None


def test_batch_errors_name_both_values(czann):
    model = load_model(czann, providers=CPU)
    with pytest.raises(IncompatibleModelError, match="3 channels; the model expects 1") as caught:
        model.predict(np.zeros((1, 3, 8, 8), np.float32))
    assert caught.value.path == str(czann)
    with pytest.raises(IncompatibleModelError, match="N×C×Y×X"):
        model.predict(np.zeros((1, 8, 8), np.float32))
    with pytest.raises(IncompatibleModelError, match="graph failed"):
        model.predict(np.zeros((1, 1, 6, 6), np.float32))  # not a multiple of the step


def test_graph_with_batch_fixed_to_one_runs_a_batch(tmp_path):
    graph = tiny_unet_onnx(tile_shape=(16, 16))
    graph.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    graph.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 1
    path = write_container(tmp_path / "b1.czann", graph, unet_metadata(spatial=(16, 16)))
    batch = np.random.default_rng(2).normal(size=(3, 1, 16, 16)).astype(np.float32)
    got = load_model(path, providers=CPU).predict(batch)
    expected = np.concatenate(
        [run_onnx(graph.SerializeToString(), np.moveaxis(b[None], 1, -1)) for b in batch]
    )
    np.testing.assert_array_equal(got, np.moveaxis(expected, -1, 1))


def test_regression_models_get_channel_names_and_classifiers_are_refused(tmp_path):
    meta = ModelMetadata(
        model_type=ModelType.REGRESSION, input_shape=(16, 16, 1), output_shape=(16, 16, 2)
    )
    path = write_container(tmp_path / "r.czann", tiny_unet_onnx(), meta)
    assert load_model(path, providers=CPU).spec.classes == ("intensity_0", "intensity_1")
    flat = ModelMetadata(
        model_type=ModelType.MULTI_CLASS_CLASSIFICATION,
        input_shape=(16, 16, 1),
        output_shape=(16, 16, 2),
        classes=("a", "b"),
    )
    path = write_container(tmp_path / "c.czann", tiny_unet_onnx(), flat)
    with pytest.raises(IncompatibleModelError, match="MultiClassClassification"):
        load_model(path, providers=CPU)


def test_provider_choice_and_cpu_fallback_warning(monkeypatch, caplog):
    from scopeml.model.runtime import _note_cpu_fallback

    _note_cpu_fallback.cache_clear()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with caplog.at_level(logging.INFO, logger="scopeml.model.runtime"):
        assert choose_providers() == ["CPUExecutionProvider"]
        assert choose_providers() == ["CPUExecutionProvider"]  # said once per process
    assert [r.getMessage() for r in caplog.records] == [
        "CUDAExecutionProvider is not available (ONNX Runtime has ['CPUExecutionProvider']); "
        "running on CPU"
    ]
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    caplog.clear()
    assert choose_providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert not caplog.records
    with pytest.raises(InvalidRequestError, match="TensorrtExecutionProvider"):
        choose_providers(["TensorrtExecutionProvider"])


@pytest.mark.gpu
@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers(),
    reason="needs onnxruntime-gpu with the CUDA provider",
)
def test_cuda_session_matches_cpu(czann):
    gpu, cpu = load_model(czann), load_model(czann, providers=CPU)
    assert gpu.providers[0] == "CUDAExecutionProvider"
    batch = np.random.default_rng(3).normal(size=(2, 1, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(gpu.predict(batch), cpu.predict(batch), atol=1e-4)


def test_the_declared_halo_makes_tiling_exact(czann):
    """The builder's MinOverlap covers the tiny U-Net's receptive field: 64-px tiles cut
    with that halo reproduce the whole image's prediction (16 px missed it by 0.03)."""
    model = load_model(czann, providers=CPU)
    (halo, _), size = model.spec.halo, 128
    image = np.random.default_rng(5).normal(0.3, 0.2, (1, 1, size, size)).astype(np.float32)
    whole, tiled, core = model.predict(image), np.zeros((1, 2, size, size), np.float32), 16
    for y0 in range(0, size, core):
        for x0 in range(0, size, core):
            a, b = max(y0 - halo, 0), max(x0 - halo, 0)
            out = model.predict(image[..., a : y0 + core + halo, b : x0 + core + halo])
            tiled[..., y0 : y0 + core, x0 : x0 + core] = out[..., y0 - a :, x0 - b :][
                ..., :core, :core
            ]
    np.testing.assert_array_equal(tiled, whole)


def test_release_memory_gives_the_arenas_memory_back_and_changes_no_result():
    """ONNX Runtime's arena kept a run's tensors for the next: the process stayed ~400 MB
    larger after one 1024² tile of ``nuclei`` (a server, 1 GB after a burst)."""
    import ctypes

    from scopeml import open_model

    def resident_mb() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096 / 2**20

    model = open_model("nuclei")
    tile = np.random.default_rng(0).random((1, 1, 1024, 1024)).astype(np.float32)
    before = resident_mb()
    first = model.predict(tile)
    held = resident_mb() - before
    model.release_memory()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    assert resident_mb() - before < held / 3, (held, resident_mb() - before)
    np.testing.assert_array_equal(model.predict(tile), first)


def test_memory_the_runtime_cannot_allocate_is_said_as_memory(tmp_path, capsys, monkeypatch):
    """ONNX Runtime's arena failing a 1.5 GB buffer (``--tile-size 4096`` under a memory limit)
    was a raw "BFCArena … Failed to allocate memory" message; it is a MemoryError now, which
    the command line says as memory, with smaller tiles as the way out."""
    import tifffile

    from scopeml.cli import main
    from scopeml.model.runtime import run_within_budget

    class Starved:
        def run(self, names, feeds, options):
            raise RuntimeError(
                "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned "
                "while running Conv node. Status Message: bfc_arena.cc:376 AllocateRawInternal "
                "Failed to allocate memory for requested buffer of size 1610612736"
            )

    feeds = {"input": np.zeros((1, 8, 8, 1), np.float32)}
    with pytest.raises(MemoryError, match=r"could not get 1,536 MB for a batch of \(1, 8, 8, 1\)"):
        run_within_budget(Starved(), None, feeds, time_budget=5.0)
    image = tmp_path / "img.tif"
    tifffile.imwrite(image, np.zeros((64, 64), np.uint16))
    import scopeml.model.runtime as runtime

    def starved(session, names, feeds, **kwargs):
        return run_within_budget(Starved(), names, feeds, **kwargs)

    monkeypatch.setattr(runtime, "run_within_budget", starved)
    code = main(["segment", str(image), "-m", "nuclei", "-o", str(tmp_path / "o.ome.zarr"),
                 "--scale", "1", "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "not enough memory" in err and "smaller tiles" in err, err
