from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from scopeml.model import load_model, read_container
from scopeml.model.runtime import session_bytes
from scopeml.model.spec import recorded_normalize
from scopeml.train.export import export_onnx, onnx_probabilities, save_czann
from scopeml.train.loop import TrainConfig, train_unet
from scopeml.train.unet import ChannelsLastClassifier, Normalize, UNet, receptive_halo


@pytest.fixture(scope="module")
def trained(nuclei_pair) -> ChannelsLastClassifier:
    image, labels = nuclei_pair
    config = TrainConfig(depth=2, width=4, patch_size=32, batch_size=4, epochs=2,
                         steps_per_epoch=4, val_fraction=0.0)  # fmt: skip
    return train_unet([image], [labels], config, progress=False).classifier()


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_onnx_equals_torch(spatial_dims: int) -> None:
    torch.manual_seed(1)
    net = UNet(2, 3, depth=2, width=4, spatial_dims=spatial_dims)
    classifier = ChannelsLastClassifier(net, Normalize([100, 50], [30, 10], spatial_dims)).eval()
    rng = np.random.default_rng(0)
    # other batch and spatial sizes than the export example: the axes are dynamic
    x = rng.normal(80, 30, (2, *(8,) * (spatial_dims - 2), 32, 24, 2)).astype(np.float32)
    expected = classifier(torch.from_numpy(x)).detach().numpy()
    graph = export_onnx(classifier)
    np.testing.assert_allclose(onnx_probabilities(graph, x), expected, atol=1e-4)
    assert session_bytes(graph) is graph  # exported with the softmax over the last axis


def test_normalisation_is_inside_the_graph() -> None:
    torch.manual_seed(2)
    net = UNet(1, 2, depth=1, width=4)
    x = np.random.default_rng(0).normal(size=(1, 16, 16, 1)).astype(np.float32)
    plain = onnx_probabilities(export_onnx(ChannelsLastClassifier(net, Normalize([0], [1]))), x)
    shifted = ChannelsLastClassifier(net, Normalize([1000], [20]))
    np.testing.assert_allclose(
        onnx_probabilities(export_onnx(shifted), x * 20 + 1000), plain, atol=1e-5
    )


def test_container_round_trip(trained, nuclei_pair, tmp_path) -> None:
    path = save_czann(trained, tmp_path / "nuclei.czann", classes=("background", "nucleus"))
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("model.json"))
    assert meta["MinOverlap"] == [receptive_halo(2)] * 2
    assert meta["Classes"] == ["background", "nucleus"]
    assert read_container(path).metadata.min_overlap == (24, 24)
    model = load_model(path, providers=["CPUExecutionProvider"])
    assert model.spec.halo == (24, 24) and model.spec.in_channels == 1
    image, _ = nuclei_pair
    probabilities = model.predict(image[None])
    expected = trained(torch.from_numpy(np.moveaxis(image, 0, -1)[None])).detach().numpy()
    np.testing.assert_allclose(probabilities, np.moveaxis(expected, -1, 1), atol=1e-4)


def test_container_tiled_equals_whole(trained, tmp_path) -> None:
    # explicit clip-not-pad tiling through load_model().predict with the container's halo
    model = load_model(save_czann(trained, tmp_path / "m.czann", classes=("bg", "fg")))
    (halo, _), (step, _) = model.spec.halo, model.spec.tile_step
    image = np.random.default_rng(5).normal(3000, 800, (1, 1, 120, 136)).astype(np.float32)
    whole = model.predict(image)
    tiled = np.zeros_like(whole)
    core = 5 * step
    for y0 in range(0, 120, core):
        for x0 in range(0, 136, core):
            a, b = max(y0 - halo, 0), max(x0 - halo, 0)
            c, d = min(y0 + core + halo, 120), min(x0 + core + halo, 136)
            out = model.predict(image[..., a:c, b:d])
            y1, x1 = min(y0 + core, 120), min(x0 + core, 136)
            tiled[..., y0:y1, x0:x1] = out[..., y0 - a : y1 - a, x0 - b : x1 - b]
    np.testing.assert_array_equal(tiled, whole)  # exact tiling: bit for bit


def test_save_czann_checks_tile_shape(trained, tmp_path) -> None:
    with pytest.raises(ValueError, match="multiple of 2\\*\\*depth = 4"):
        save_czann(trained, tmp_path / "m.czann", classes=("bg", "fg"), tile_shape=30)
    assert not (tmp_path / "m.czann").exists()


def test_3d_container(tmp_path) -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, (1, 16, 32, 32)).astype(np.float32)
    image[:, 4:12, 8:20, 8:24] += 50
    labels = (image[0] > 125).astype(np.int64)
    config = TrainConfig(depth=1, width=2, spatial_dims=3, patch_size=16, batch_size=2,
                         epochs=1, steps_per_epoch=2, val_fraction=0.0)  # fmt: skip
    result = train_unet([image], [labels], config, progress=False)
    path = save_czann(result.classifier(), tmp_path / "m3.czann", classes=result.classes)
    model = load_model(path)
    assert model.spec.spatial_dims == 3 and model.spec.halo == (10, 10, 10)
    expected = result.classifier()(torch.from_numpy(np.moveaxis(image, 0, -1)[None]))
    np.testing.assert_allclose(
        model.predict(image[None]), np.moveaxis(expected.detach().numpy(), -1, 1), atol=1e-4
    )


def test_a_trained_result_saves_a_czann_with_its_classes_and_normalisation(nuclei_pair, tmp_path):
    import scopeml as sm

    image, labels = nuclei_pair
    config = sm.TrainConfig(depth=2, width=4, patch_size=32, batch_size=4, epochs=1,
                            steps_per_epoch=2, normalize="percentile:1,99.8")  # fmt: skip
    result = sm.train_unet([image] * 2, [labels] * 2, config, classes=["bg", "nucleus"])
    path = result.save(tmp_path / "mine.czann", name="my nuclei")
    model = sm.open_model(path)
    assert model.spec.classes == ("bg", "nucleus") and model.metadata.model_name == "my nuclei"
    assert recorded_normalize(model) == "percentile:1,99.8"  # recorded: segment applies it
    np.testing.assert_array_equal(
        sm.predict_region(image, path),
        sm.predict_region(image, save_czann(result.classifier(), tmp_path / "same.czann",
                                            classes=result.classes,
                                            normalize=result.normalize_policy)),
    )  # fmt: skip
