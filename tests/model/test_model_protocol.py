"""Conformance suite of the Model protocol: every kind of model the engine runs obeys one contract.

Each case is a model as the engine gets it: a czann and a legacy container opened through the
model registry, 2-D and 3-D pixel classifiers, the engine's test doubles, and a czann served by
``scopeml serve`` (the client's ``RemoteModel``). The suite checks the spec, the ``predict``
shape and dtype contract ``N×C×(Z×)Y×X → N×K×(Z×)Y×X float32``, determinism,
``predict_index == argmax`` where offered, and that the engine's tiled run equals the model on
the whole image. The object classifier is not a pixel model; its own contract is checked at the
end (same registry, rows in, one probability per class out).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scopeml.api import segment
from scopeml.io.image import Image
from scopeml.model import convert_onnx
from scopeml.model.registry import open_model
from scopeml.model.spec import Model, ModelSpec
from scopeml.model.testing import tiny_unet_onnx, unet_receptive_halo
from scopeml.synthetic import synthetic_nuclei
from scopeml.tiling.kernel import pad_to
from tests.tiling.engine_doubles import unet_double


def _czann(tmp: Path) -> Model:
    graph = tiny_unet_onnx(in_channels=2, n_classes=3, depth=2, seed=3)
    path = convert_onnx(
        graph, tmp / "m.czann", classes=["a", "b", "c"], min_overlap=unet_receptive_halo(2)
    )
    return open_model(path, workers=1)


def _legacy(tmp: Path) -> Model:
    graph = tiny_unet_onnx(in_channels=1, n_classes=2, depth=2, seed=4)
    path = convert_onnx(
        graph, tmp / "m.czseg", classes=["bg", "fg"], min_overlap=8, spatial=(48, 48), legacy=True
    )
    return open_model(path)


def _pixel_classifier(tmp: Path) -> Model:
    from scopeml.pixel import train_classifier

    image, truth = synthetic_nuclei((48, 48), density=0.004, channels=2, seed=1)
    sparse = np.zeros_like(truth, np.uint8)
    sparse[::4, ::4] = np.where(truth[::4, ::4] > 0, 2, 1)
    model = train_classifier(
        image, sparse, features="gaussian_smoothing:1,2;hessian_of_gaussian_eigenvalues:1",
        n_estimators=4, seed=0,
    )  # fmt: skip
    return open_model(model.save(tmp / "px.czseg"))


def _pixel_classifier_3d(tmp: Path) -> Model:
    from scopeml.pixel import train_classifier

    image, truth = synthetic_nuclei((12, 32, 32), density=0.002, radius=(3, 5), seed=2)
    sparse = np.zeros_like(truth, np.uint8)
    sparse[:, ::3, ::3] = np.where(truth[:, ::3, ::3] > 0, 2, 1)
    model = train_classifier(image, sparse, features="gaussian_smoothing:1", n_estimators=3)
    return open_model(model.save(tmp / "px3.czseg"))


def _remote(tmp: Path, request: pytest.FixtureRequest) -> Model:
    """A czann served by a real ``scopeml serve`` process, predicted over HTTP."""
    from scopeml.client import Client
    from scopeml.server.database import Database
    from tests.server.conftest import ServerProcess, make_container

    database = Database(tmp / "scopeml.db")
    token = database.create_token("conformance")
    database.close()
    server = ServerProcess(tmp).start()
    request.addfinalizer(server.stop)
    client = Client(server.url, token)
    request.addfinalizer(client.close)
    model_id = client.upload_model(make_container(tmp / "m.czann", in_channels=2))["id"]
    return client.model(model_id)


CASES: dict[str, Callable[..., Model]] = {
    "czann": _czann,
    "legacy-fixed-tile": _legacy,
    "pixel-classifier": _pixel_classifier,
    "pixel-classifier-3d": _pixel_classifier_3d,
    "double-2d": lambda tmp: unet_double(in_channels=2, n_classes=3, depth=2),
    "double-3d": lambda tmp: unet_double(n_classes=2, depth=1, spatial_dims=3, seed=1),
    "remote": _remote,
}


@pytest.fixture(params=sorted(CASES), scope="module")
def model(request, tmp_path_factory) -> Model:
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "remote":
        return _remote(folder, request)
    return CASES[request.param](folder)


def _batch(spec: ModelSpec, n: int = 2, seed: int = 0) -> np.ndarray:
    """A batch the model accepts: its fixed tile, or a few steps per axis (unequal sizes)."""
    if spec.tile_shape is not None:
        spatial = spec.tile_shape
    else:
        sizes = (5, 4, 3)[-spec.spatial_dims :]
        spatial = tuple(max(s * k, 12) for s, k in zip(spec.tile_step, sizes, strict=True))
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1000, (n, spec.in_channels, *spatial)).astype(np.float32)


def test_spec_fields_are_valid(model):
    spec = model.spec
    assert isinstance(model, Model) and isinstance(spec, ModelSpec)
    assert spec.spatial_dims in (2, 3) and spec.in_channels >= 1
    assert len(spec.classes) >= 2 and len(set(spec.classes)) == len(spec.classes)
    assert all(isinstance(name, str) and name for name in spec.classes)
    assert len(spec.halo) == len(spec.tile_step) == spec.spatial_dims
    assert min(spec.halo) >= 0 and min(spec.tile_step) >= 1
    if spec.tile_shape is not None:
        assert all(t % s == 0 for t, s in zip(spec.tile_shape, spec.tile_step, strict=True))


def test_predict_shape_and_dtype_contract(model):
    batch = _batch(model.spec)
    out = model.predict(batch)
    assert out.dtype == np.float32
    assert out.shape == (batch.shape[0], len(model.spec.classes), *batch.shape[2:])
    assert np.all(np.isfinite(out))
    one = model.predict(batch[1:])  # items of a batch do not influence each other
    np.testing.assert_allclose(one[0], out[1], rtol=1e-5, atol=1e-6)


def test_predict_is_deterministic(model):
    batch = _batch(model.spec, seed=5)
    np.testing.assert_array_equal(model.predict(batch), model.predict(batch.copy()))


def test_predict_index_is_argmax_where_offered(model):
    if not hasattr(model, "predict_index"):
        pytest.skip(f"{type(model).__name__} offers no predict_index")
    batch = _batch(model.spec, seed=6)
    index = model.predict_index(batch)
    assert index.shape == (batch.shape[0], *batch.shape[2:])
    np.testing.assert_array_equal(index, model.predict(batch).argmax(axis=1))


def test_tiled_equals_whole_image_through_the_engine(model, tmp_path):
    spec = model.spec
    spatial = (40, 44) if spec.spatial_dims == 2 else (10, 20, 22)
    if spec.tile_shape is not None:  # a fixed input: an image inside one tile, padded
        spatial = tuple(n - 5 for n in spec.tile_shape)
    rng = np.random.default_rng(7)
    pixels = rng.uniform(0, 1000, (spec.in_channels, *spatial)).astype(np.float32)
    six_d = pixels.reshape(1, 1, spec.in_channels, *((1,) * (3 - spec.spatial_dims)), *spatial)
    step = spec.tile_step
    tile = tuple(max(2 * s, 8 // s * s) for s in step)
    seg = segment(Image(six_d), model, tmp_path / "o.ome.zarr", outputs=["probabilities"],
                  tile_size=tile, workers=2)  # fmt: skip
    tiled = seg.probabilities.read()[0, 0]  # K×Z×Y×X
    target = spec.tile_shape or tuple(-(-n // s) * s for n, s in zip(spatial, step, strict=True))
    whole = model.predict(pad_to(pixels, target)[None])[0]
    whole = whole[(slice(None), *(slice(0, n) for n in spatial))]
    np.testing.assert_allclose(tiled.reshape(whole.shape), whole, rtol=1e-5, atol=1e-5)


def test_object_classifier_contract(tmp_path):
    from scopeml.objects import ObjectClassifier

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"area": rng.uniform(1, 100, 60), "t": np.arange(60) % 2})
    table["kind"] = np.where(table["area"] > 50, "big", "small")
    path = ObjectClassifier.train(table, "kind", n_estimators=5).save(tmp_path / "o.zip")
    classifier = open_model(path)
    assert isinstance(classifier, ObjectClassifier) and classifier.features == ("area",)
    proba = classifier.predict_proba(table)
    assert proba.shape == (60, 2) and np.allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(proba, classifier.predict_proba(table.copy()))
    assert list(classifier.predict(table)) == [classifier.classes[i] for i in proba.argmax(1)]
