"""Regression models (czann ``Type`` ``Regression``): the engine writes their output image.

The example model is a denoiser trained here: a 5×5 linear filter learnt by least squares from
synthetic noisy/clean pairs, written as an ONNX ``Conv`` in a czann container.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import zarr
from onnx import TensorProto, helper, numpy_helper
from scipy import ndimage

from scopeml.api import segment
from scopeml.errors import IncompatibleModelError, InvalidRequestError
from scopeml.io import open_image
from scopeml.io.image import Image
from scopeml.model import ModelMetadata, open_model, write_container

RADIUS = 2  # the filter is (2 * RADIUS + 1)², so its receptive field needs a halo of RADIUS


def clean_image(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Smooth blobs: what a denoiser should give back."""
    return ndimage.gaussian_filter(rng.random(shape), 3.0).astype(np.float32) * 10


def train_denoiser(rng: np.random.Generator) -> np.ndarray:
    """Least-squares filter that maps noisy images to clean ones (real training, tiny)."""
    rows, targets = [], []
    for _ in range(4):
        clean = clean_image(rng, (64, 64))
        noisy = clean + rng.normal(0, 0.5, clean.shape).astype(np.float32)
        padded = np.pad(noisy, RADIUS)
        size = 2 * RADIUS + 1
        windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
        rows.append(windows.reshape(-1, size * size))
        targets.append(clean.ravel())
    weights, *_ = np.linalg.lstsq(np.concatenate(rows), np.concatenate(targets), rcond=None)
    return weights.reshape(size, size).astype(np.float32)


def denoiser_onnx(weights: np.ndarray) -> onnx.ModelProto:
    """NHWC in, NHWC out: Transpose → Conv (zero padding, as at the image edge) → Transpose."""
    size = weights.shape[0]
    kernel = numpy_helper.from_array(weights.reshape(1, 1, size, size), "kernel")
    nodes = [
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "kernel"], ["conv"], pads=[RADIUS] * 4),
        helper.make_node("Transpose", ["conv"], ["output"], perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "denoiser",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, None, None, 1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, None, None, 1])],
        [kernel],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def denoiser(tmp_path_factory):
    weights = train_denoiser(np.random.default_rng(0))
    meta = ModelMetadata(
        model_type="Regression",
        input_shape=(64, 64, 1),
        output_shape=(64, 64, 1),
        classes=("denoised",),
        min_overlap=(RADIUS, RADIUS),
        model_name="denoiser",
    )
    path = tmp_path_factory.mktemp("model") / "denoiser.czann"
    return write_container(path, denoiser_onnx(weights), meta), weights


def noisy_pair(seed: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    clean = clean_image(rng, shape)
    return clean, clean + rng.normal(0, 0.5, shape).astype(np.float32)


def read(path, name):
    return np.asarray(zarr.open_array(str(path / name / "0"), mode="r")[...])


def test_trained_denoiser_removes_noise(denoiser):
    path, weights = denoiser
    clean, noisy = noisy_pair(1, (96, 96))  # an image the training never saw
    model = open_model(path)
    assert model.spec.extra["model_type"] == "Regression"
    out = model.predict(noisy[None, None])[0, 0]
    np.testing.assert_allclose(out, ndimage.correlate(noisy, weights, mode="constant"), atol=1e-4)
    inner = (slice(RADIUS, -RADIUS),) * 2
    error_before = np.abs(noisy - clean)[inner].mean()
    error_after = np.abs(out - clean)[inner].mean()
    assert error_after < 0.5 * error_before


def test_tiled_image_output_equals_whole_image(denoiser, tmp_path):
    path, _ = denoiser
    _, noisy = noisy_pair(2, (150, 133))
    pixels = noisy.reshape(1, 1, 1, 1, 150, 133)
    image = Image(pixels, pixel_sizes={"Y": 0.5, "X": 0.5}, channel_names=("DAPI",))
    seg = segment(image, path, tmp_path / "out.ome.zarr", tile_size=32)
    assert seg.outputs == ("image",)  # the default labels become the image of a regression
    written = read(seg, "image")
    assert written.dtype == np.float32 and written.shape == (1, 150, 133)  # C Y X
    whole = open_model(path).predict(noisy[None, None])[0]
    np.testing.assert_array_equal(written, whole)
    opened = open_image(seg.path / "image")
    assert opened.channel_names == ("denoised",)
    assert opened.pixel_sizes["Y"] == pytest.approx(0.5)
    assert opened.pixel_sizes["X"] == pytest.approx(0.5)


def test_time_points_float16_and_ome_tiff(denoiser, tmp_path):
    path, _ = denoiser
    frames = np.stack([noisy_pair(seed, (70, 80))[1] for seed in (3, 4)])
    image = Image(frames.reshape(1, 2, 1, 1, 70, 80))
    model = open_model(path)
    expected = np.stack([model.predict(frame[None, None])[0] for frame in frames])
    half = segment(image, path, tmp_path / "h.ome.zarr", probability_dtype="float16", tile_size=32)
    written = read(half, "image")
    assert written.dtype == np.float16 and written.shape == (2, 1, 70, 80)  # T C Y X
    np.testing.assert_array_equal(written, expected.astype(np.float16))
    segment(image, path, tmp_path / "f.ome.zarr", tile_size=32, ome_tiff=True)
    tiff = open_image(tmp_path / "f.image.ome.tiff")
    np.testing.assert_array_equal(tiff.read()[0, :, 0, 0], expected[:, 0])
    with pytest.raises(InvalidRequestError, match="no float16"):
        segment(image, path, tmp_path / "x.ome.zarr", probability_dtype="float16", ome_tiff=True)


def test_blend_mode_is_continuous_and_close(denoiser, tmp_path):
    path, _ = denoiser
    _, noisy = noisy_pair(5, (128, 128))
    image = Image(noisy.reshape(1, 1, 1, 1, 128, 128))
    seg = segment(image, path, tmp_path / "b.ome.zarr", tile_size=32, blend=True)
    blended = read(seg, "image")[0]
    whole = open_model(path).predict(noisy[None, None])[0, 0]
    # windows see zero padding at their own borders; the Gaussian weights make that small
    difference = np.abs(blended - whole)
    assert difference.max() < 0.05 * np.abs(whole).max() and difference.mean() < 1e-3
    # continuous: no jump between neighbouring pixels larger than the model's own
    assert np.abs(np.diff(blended, axis=0)).max() <= np.abs(np.diff(whole, axis=0)).max() + 1e-3


def test_regression_refuses_class_outputs_and_uint8(denoiser, tmp_path):
    path, _ = denoiser
    image = Image(np.zeros((1, 1, 1, 1, 16, 16), np.float32))
    with pytest.raises(IncompatibleModelError, match="writes an image, not confidence"):
        segment(image, path, tmp_path / "a.ome.zarr", outputs=["confidence"])
    with pytest.raises(InvalidRequestError, match="float32 or float16"):
        segment(image, path, tmp_path / "b.ome.zarr", probability_dtype="uint8")
    assert not (tmp_path / "a.ome.zarr").exists()
    # a class threshold was taken and ignored: the image written as without it
    with pytest.raises(IncompatibleModelError, match=r"min_confidence .* does not apply"):
        segment(image, path, tmp_path / "c.ome.zarr", min_confidence=0.5)
    assert not (tmp_path / "c.ome.zarr").exists()
    from scopeml.api import predict_region

    with pytest.raises(IncompatibleModelError, match=r"min_confidence .* does not apply"):
        predict_region(image, path, min_confidence=0.5)


def test_segmentation_model_cannot_write_an_image(tmp_path):
    image = Image(np.zeros((1, 1, 1, 1, 16, 16), np.float32))
    with pytest.raises(IncompatibleModelError, match="only Regression models"):
        segment(image, "nuclei", tmp_path / "a.ome.zarr", outputs=["image"])


def test_predict_region_and_model_run_give_the_regression_image(denoiser, tmp_path):
    from scopeml.api import predict_region
    from scopeml.cli import main

    path, weights = denoiser
    _, noisy = noisy_pair(6, (90, 70))
    expected = ndimage.correlate(noisy, weights, mode="constant")
    whole = predict_region(noisy, path)  # the default labels become the image, as in segment
    assert whole.shape == (1, 90, 70) and whole.dtype == np.float32
    np.testing.assert_allclose(whole[0], expected, atol=1e-4)
    part = predict_region(noisy, path, {"Y": (10, 40)}, outputs="image")
    np.testing.assert_array_equal(part, whole[:, 10:40])
    with pytest.raises(IncompatibleModelError, match="writes an image, not probabilities"):
        predict_region(noisy, path, outputs="probabilities")
    np.save(tmp_path / "noisy.npy", noisy)
    out = tmp_path / "run.npy"
    assert main(["model", "run", str(path), str(tmp_path / "noisy.npy"), "-o", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out), whole)
    assert main(["model", "run", str(path), str(tmp_path / "noisy.npy"), "-o",
                 str(tmp_path / "l.npy"), "--labels"]) == 2  # fmt: skip
    assert not (tmp_path / "l.npy").exists()


def test_no_objects_are_made_from_a_regression_image(denoiser, tmp_path):
    """Instances and a measure table are refused before the model runs: labels asked for
    them would silently become the image (and fail after the run, naming the store)."""
    from scopeml.api import predict_region

    path, _ = denoiser
    image = Image(noisy_pair(7, (40, 40))[1].reshape(1, 1, 1, 1, 40, 40))
    for kwargs, asked in (({"outputs": ["instances"]}, "no instances"),
                          ({"measure": tmp_path / "t.csv"}, "no measure table")):  # fmt: skip
        with pytest.raises(IncompatibleModelError, match=f"not classes to make objects.*{asked}"):
            segment(image, path, tmp_path / "o.ome.zarr", **kwargs)
        assert not (tmp_path / "o.ome.zarr").exists() and not (tmp_path / "t.csv").exists()
    with pytest.raises(IncompatibleModelError, match="no instances"):
        predict_region(image, path, outputs="instances")


def test_a_regression_store_records_its_image_and_its_ome_tiff_is_not_replaced(
    denoiser, tmp_path, capsys
):
    """The run records the image it wrote (``info`` said a finished run lacked labels), and
    an OME-TIFF copy already there is refused before the run (it was kept, stale, and the
    run said it wrote it)."""
    from scopeml.cli import main

    path, _ = denoiser
    image = Image(noisy_pair(8, (40, 40))[1].reshape(1, 1, 1, 1, 40, 40))
    seg = segment(image, path, tmp_path / "r.ome.zarr")
    assert main(["info", str(seg.path)]) == 0
    assert "missing" not in capsys.readouterr().out
    (tmp_path / "t.image.ome.tiff").write_text("mine")
    with pytest.raises(InvalidRequestError, match=r"t\.image\.ome\.tiff: output exists"):
        segment(image, path, tmp_path / "t.ome.zarr", ome_tiff=True)
    assert (tmp_path / "t.image.ome.tiff").read_text() == "mine"
