"""Deep features: VGG layout and conversion, graph taps, exact tiling, the classifier's network
pin, bad input."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from scopeml.errors import InvalidContainerError, InvalidRequestError
from scopeml.features import _vgg, compute_features, parse_features
from scopeml.features._network import network_bytes
from scopeml.features.deep import DeepFeatures, parse_deep_features
from scopeml.pixel._blocks import iter_blocks

NUCLEI_CZANN = "src/scopeml/data/nuclei.czann"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SCOPEML_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _tiled(fs, image, block):
    """Features block by block (origins on the step, halo as declared), cores pasted."""
    whole = fs.compute(image)
    out = np.full_like(whole, np.nan)
    for read, core in iter_blocks(image.shape[1:], block, fs.halo):
        assert all(r.start % fs.step == 0 for r in read)
        part = fs.compute(image[(slice(None), *read)])
        target = tuple(
            slice(r.start + c.start, r.start + c.stop) for r, c in zip(read, core, strict=True)
        )
        out[(slice(None), *target)] = part[(slice(None), *core)]
    return whole, out


def test_vgg_layout_matches_torchvision_keys():
    torch = pytest.importorskip("torch")
    module = _vgg.vgg_torch("vgg19")
    keys = list(module.state_dict())
    # torchvision.models.vgg19().features: convs at these Sequential indices (cfg "E")
    convs = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert keys == [f"features.{i}.{p}" for i in convs for p in ("weight", "bias")]
    assert isinstance(module.features[4], torch.nn.MaxPool2d)
    assert _vgg.layer_names("vgg16")["conv5_3"] == 29  # ReLU after features.28


def test_onnx_graph_equals_torch_forward():
    torch = pytest.importorskip("torch")
    module = _vgg.vgg_torch("vgg16")  # weights=None initialisation
    state = {k: v.numpy() for k, v in module.state_dict().items()}
    taps = {"conv1_2": 3, "conv3_2": 13}
    import onnxruntime

    session = onnxruntime.InferenceSession(_vgg.vgg_onnx("vgg16", state, taps))
    x = np.random.default_rng(1).standard_normal((1, 3, 40, 36)).astype(np.float32)
    ours = session.run(list(taps), {"image": x})
    with torch.no_grad():
        t = torch.from_numpy(x)
        expected = {}
        for i, layer in enumerate(module.features[:14]):
            t = layer(t)
            expected[i] = t.clone()
    for (_, i), got in zip(taps.items(), ours, strict=True):
        want = expected[i].numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_weight_conversion_is_checked_and_leaves_no_pickle(tmp_path):
    torch = pytest.importorskip("torch")
    pth = tmp_path / "vgg16-x.pth"
    torch.save(_vgg.vgg_torch("vgg16").state_dict(), pth)
    digest = hashlib.sha256(pth.read_bytes()).hexdigest()
    with pytest.raises(InvalidRequestError, match="SHA-256"):
        _vgg._convert(pth, tmp_path / "a.npz", expected="00000000")
    assert not pth.exists()  # a file with the wrong hash is removed
    torch.save(_vgg.vgg_torch("vgg16").state_dict(), pth)
    digest = hashlib.sha256(pth.read_bytes()).hexdigest()
    _vgg._convert(pth, tmp_path / "vgg16.npz", expected=digest[:8])
    assert not pth.exists()
    with np.load(tmp_path / "vgg16.npz", allow_pickle=False) as data:
        assert data["features.0.weight"].shape == (64, 3, 3, 3)


def test_presets_and_shapes():
    fs = parse_deep_features("vgg19-random-448+basic25")
    assert [t.name for t in fs.net.taps] == ["conv1_2", "conv2_2", "conv3_2"]
    assert [t.channels for t in fs.net.taps] == [64, 128, 256]
    assert fs.n_features(1, 2) == 448 + 25 and len(fs.names(1, 2)) == 473
    assert fs.n_features(2, 2) == 2 * 448 + 50  # grey channels fed one by one
    assert parse_deep_features("vgg19-random-50").n_features(3, 2) == 50
    x = np.random.default_rng(0).random((1, 37, 30), dtype=np.float32)
    fitted = fs.fit([x])
    assert compute_features(x, fitted).shape == (473, 37, 30)
    assert parse_features("basic25").name == "basic25"  # filter presets unaffected


@pytest.mark.parametrize(
    "spec",
    [
        "vgg19-random-448",
        "vgg19-random-64@1,2,4",
        "vgg19-random-50@1,2+gaussian_smoothing:1,5",
        f"{NUCLEI_CZANN}:/net/down.1/down.1.3/Relu_output_0",
    ],
)
def test_tiled_equals_whole(spec):
    image = np.random.default_rng(2).random((2, 150, 133), dtype=np.float32) * 1000
    fs = parse_features(spec).fit([image])
    whole, tiled = _tiled(fs, image, fs.step * max(1, 32 // fs.step))
    # bit for bit here; the documented bound is TILING_RTOL of each map's largest magnitude
    np.testing.assert_array_equal(tiled, whole)


def test_unknown_layer_lists_real_ones():
    with pytest.raises(InvalidRequestError, match=r"conv1_1.*conv1_2"):
        parse_features("vgg19-random:conv9_9").n_features(1, 2)
    with pytest.raises(InvalidRequestError, match=r"nuclei.czann.*down\.0"):
        parse_features(f"{NUCLEI_CZANN}:nope").n_features(1, 2)


def test_not_onnx_and_missing_file(tmp_path):
    bad = tmp_path / "net.onnx"
    bad.write_bytes(b"not a graph")
    with pytest.raises(InvalidContainerError, match=r"net\.onnx.*not a valid ONNX"):
        parse_features(f"{bad}:x").n_features(1, 2)
    with pytest.raises(InvalidRequestError, match="does not exist"):
        parse_features(f"{tmp_path / 'gone.onnx'}:x").n_features(1, 2)


def test_classifier_pins_network(tmp_path):
    from scopeml.pixel import load_classifier, save_classifier, train_classifier
    from scopeml.synthetic import synthetic_nuclei

    onnx_file = tmp_path / "net.onnx"
    data, _ = network_bytes("vgg19-random", ("conv2_2",), seed=3)
    onnx_file.write_bytes(data)
    image, truth = synthetic_nuclei((96, 96), seed=0)
    labels = np.where(np.random.default_rng(0).random(truth.shape) < 0.05, (truth > 0) + 1, 0)
    clf = train_classifier(
        image, labels, features=f"{onnx_file}:conv1_2,conv2_2", n_estimators=4, seed=0
    )
    assert clf.spec.tile_step == (2, 2) and clf.features.sha256 == hashlib.sha256(data).hexdigest()
    path = save_classifier(clf, tmp_path / "deep.czseg", embed_network=False)
    loaded = load_classifier(path)
    np.testing.assert_array_equal(loaded.predict_labels(image), clf.predict_labels(image))
    assert loaded.features.input_range == clf.features.input_range

    other, _ = network_bytes("vgg19-random", ("conv2_2",), seed=4)
    onnx_file.write_bytes(other)
    with pytest.raises(InvalidContainerError, match=r"deep.czseg.*trained with"):
        load_classifier(path)
    onnx_file.unlink()
    with pytest.raises(InvalidContainerError, match=r"deep\.czseg.*network net\.onnx not found"):
        load_classifier(path)


def test_deep_features_are_frozen_and_round_trip():
    x = np.random.default_rng(0).random((1, 24, 24), dtype=np.float32)
    fs = parse_deep_features("vgg19-random-64@1,2").fit([x])
    again = DeepFeatures.from_dict(fs.to_dict())
    np.testing.assert_array_equal(again.compute(x), fs.compute(x))
    with pytest.raises(InvalidRequestError, match="power of 2"):
        parse_deep_features("vgg19-random-64@3")


def test_builtin_cache_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOPEML_CACHE", str(tmp_path))
    data, path = network_bytes("vgg16-random", ("conv1_2",))
    assert path.parent == tmp_path / "networks"
    shutil.copy(path, tmp_path / "copy.onnx")
    again, _ = network_bytes("vgg16-random", ("conv1_2",))
    assert again == data == (tmp_path / "copy.onnx").read_bytes()


def test_cli_bad_network_exits_2(tmp_path, capsys):
    import tifffile

    from scopeml.cli import main
    from scopeml.synthetic import synthetic_nuclei

    image, truth = synthetic_nuclei((64, 64), seed=0)
    tifffile.imwrite(tmp_path / "im.tif", image.astype(np.float32))
    tifffile.imwrite(tmp_path / "lab.tif", ((truth > 0) + 1).astype(np.uint8))
    bad = tmp_path / "net.onnx"
    bad.write_bytes(b"not a graph")
    args = ["pixel", "train", str(tmp_path / "im.tif"), str(tmp_path / "lab.tif")]
    for spec, problem in ((f"{bad}:x", "not a valid ONNX"), (f"{NUCLEI_CZANN}:nope", "not in")):
        code = main([*args, "-o", str(tmp_path / "m.czseg"), "--features", spec])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and problem in err
        assert ("net.onnx" in err) if spec.startswith(str(bad)) else ("nuclei.czann" in err)


def test_engine_tiles_a_deep_classifier_exactly(tmp_path):
    """Tiles on the network's stride grid with its halo: tiled probabilities == whole image."""
    from scopeml import api
    from scopeml.io import Image, open_image
    from scopeml.pixel import train_classifier
    from scopeml.synthetic import synthetic_textures

    image, truth = synthetic_textures((120, 104), seed=0)
    labels = np.where(np.random.default_rng(0).random(truth.shape) < 0.03, truth, 0)
    clf = train_classifier(image, labels, features="vgg19-random-50@1,2", n_estimators=4)
    assert clf.spec.tile_step == (8, 8) and clf.spec.halo[0] % 8 == 0
    whole = clf.predict(image[None])[0]
    out = api.segment(
        Image(image[None, None, :, None]), clf, tmp_path / "out.ome.zarr",
        outputs=("labels", "probabilities"), tile_size=40,
    )  # fmt: skip
    np.testing.assert_array_equal(open_image(out / "probabilities").read()[0, 0, :, 0], whole)
    np.testing.assert_array_equal(
        open_image(out / "labels").read()[0, 0, 0, 0], clf.predict_labels(image)
    )


def test_imagenet_weights_come_from_torchvisions_table_an_address_or_a_copied_file(
    tmp_path, monkeypatch
):
    """No download address is written into scopeml: without torchvision's table or
    ``SCOPEML_WEIGHTS_URL`` the error says what to copy where; a fetched file is hash-checked."""
    monkeypatch.delenv("SCOPEML_WEIGHTS_URL", raising=False)
    try:
        from torchvision import models  # noqa: F401

        has_torchvision = True
    except Exception:
        has_torchvision = False
    if not has_torchvision:
        with pytest.raises(InvalidRequestError, match=r"copy torchvision's vgg19-dcbb9e9d\.pth"):
            _vgg.imagenet_state_dict("vgg19", cache=tmp_path / "empty")
    served = tmp_path / "served"
    served.mkdir()
    (served / "vgg19-dcbb9e9d.pth").write_bytes(b"not the weights")
    monkeypatch.setenv("SCOPEML_WEIGHTS_URL", served.as_uri())
    with pytest.raises(InvalidRequestError, match=r"SHA-256 starts \w{8}, expected dcbb9e9d"):
        _vgg.imagenet_state_dict("vgg19", cache=tmp_path / "cache")
    assert not (tmp_path / "cache" / "vgg19-dcbb9e9d.pth").exists()  # a bad file is not kept
    monkeypatch.setenv("SCOPEML_WEIGHTS_URL", (tmp_path / "nowhere").as_uri())
    with pytest.raises(InvalidRequestError, match="cannot fetch vgg19 ImageNet weights"):
        _vgg.imagenet_state_dict("vgg19", cache=tmp_path / "cache")
