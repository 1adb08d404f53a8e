"""``scopeml model inspect|validate|convert|run`` through ``scopeml.cli.main``."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import onnx
import pytest
import tifffile

from scopeml.cli import main
from scopeml.model import load_model, read_container
from scopeml.model.testing import tiny_unet_onnx
from tests.model.model_builders import CPU, run_onnx


@pytest.mark.parametrize("command", ["inspect", "validate", "convert", "run"])
def test_every_command_has_help(command, capsys):
    assert main(["model", command, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_inspect_text_and_json(czann, capsys):
    assert main(["model", "inspect", str(czann)]) == 0
    text = capsys.readouterr().out
    assert "czann" in text and "MinOverlap: [24, 24]" in text
    assert "halo [24, 24], tile step [4, 4], tile shape dynamic" in text
    assert main(["model", "inspect", str(czann), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["metadata"]["Classes"] == ["c0", "c1"]
    assert described["graph"]["input_shape"] == ["N", "?", "?", 1]
    assert described["graph"]["ops"]["Conv"] == 11
    assert described["engine"]["tile_shape"] is None


def test_inspect_a_pixel_classifier_says_its_engine_in_words(tmp_path, capsys):
    import scopeml as sm

    image = np.zeros((1, 24, 24), np.float32)
    image[:, 6:18, 6:18] = 10
    scribbles = np.zeros((24, 24), np.uint8)
    scribbles[0, :], scribbles[12, 10:14] = 1, 2
    model = sm.train_pixel_classifier(image, scribbles, features="gaussian_smoothing:1",
                                      n_estimators=2)  # fmt: skip
    path = model.save(tmp_path / "px.czseg")
    assert main(["model", "inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "  engine: 1 channels in, classes ['class 1', 'class 2'], halo" in text, text
    assert "{" not in text  # no raw dict


def test_validate_valid_and_invalid(czann, tmp_path, capsys):
    assert main(["model", "validate", str(czann)]) == 0
    assert "valid czann" in capsys.readouterr().out
    broken = tmp_path / "broken.czann"
    with zipfile.ZipFile(czann) as source, zipfile.ZipFile(broken, "w") as target:
        meta = json.loads(source.read("model.json"))
        target.writestr("model.json", json.dumps({**meta, "Classes": ["only"]}))
        target.writestr("model.model", source.read("model.model"))
    assert main(["model", "validate", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {broken}: ") and "Classes has 1 names" in err
    assert main(["model", "validate", str(tmp_path / "missing.czann")]) == 2
    assert "no such model file" in capsys.readouterr().err.lower()


def test_validate_warns_of_an_overlap_leaving_zens_tiles_no_interior(czann, tmp_path, capsys):
    """MinOverlap 5000 on InputShape 256 validated silently: ZEN's tiles make no progress."""
    wide = tmp_path / "wide.czann"
    with zipfile.ZipFile(czann) as source, zipfile.ZipFile(wide, "w") as target:
        meta = json.loads(source.read("model.json"))
        target.writestr("model.json", json.dumps({**meta, "MinOverlap": [5000, 5000]}))
        target.writestr("model.model", source.read("model.model"))
    assert main(["model", "validate", str(wide)]) == 0
    out = capsys.readouterr().out
    shape = [*meta["InputShape"][:2]]
    assert f"MinOverlap [5000, 5000] leaves no tile interior in InputShape {shape}" in out
    assert main(["model", "validate", str(czann)]) == 0
    assert "no tile interior" not in capsys.readouterr().out


def test_convert_onnx_and_run_it(tmp_path, capsys):
    onnx_file = tmp_path / "unet.onnx"
    onnx.save(tiny_unet_onnx(in_channels=3, n_classes=2, seed=7), onnx_file)
    out = tmp_path / "unet.czann"
    code = main(
        [
            "model",
            "convert",
            str(onnx_file),
            "-o",
            str(out),
            "--classes",
            "bg,cell",
            "--min-overlap",
            "16",
            "--name",
            "cli",
            "--scaling",
            "2e-7,2e-7",
            "--preprocess",
            "rgb2bgr,scale:255",
            "--spatial",
            "dynamic",
        ]
    )
    assert code == 0, capsys.readouterr().err
    meta = read_container(out).metadata
    assert (meta.classes, meta.min_overlap, meta.model_name) == (("bg", "cell"), (16, 16), "cli")
    # run on an RGB PNG-like array of odd size: zero-padded to the step, cropped back
    rgb = np.random.default_rng(0).integers(0, 255, (21, 30, 3), dtype=np.uint8)
    image = tmp_path / "rgb.npy"
    np.save(image, rgb)
    probabilities = tmp_path / "p.npy"
    assert main(["model", "run", str(out), str(image), "-o", str(probabilities)]) == 0
    got = np.load(probabilities)
    assert got.shape == (2, 21, 30) and got.dtype == np.float32
    whole = load_model(out, providers=CPU).predict(
        np.pad(
            np.moveaxis(rgb, -1, 0)[None].astype(np.float32),
            [(0, 0), (0, 0), (0, 3), (0, 2)],  # zeros, as the engine pads its tiles
        )
    )
    np.testing.assert_array_equal(got, whole[0, :, :21, :30])
    labels = tmp_path / "labels.tif"
    assert main(["model", "run", str(out), str(image), "-o", str(labels), "--labels"]) == 0
    np.testing.assert_array_equal(tifffile.imread(labels), np.argmax(got, axis=0) + 1)


def test_run_reads_tiff_and_png(czann, tmp_path, capsys):
    from skimage import io as skio

    gray = np.random.default_rng(1).integers(0, 255, (16, 24), dtype=np.uint8)
    expected = run_onnx(
        tiny_unet_onnx().SerializeToString(), gray[None, :, :, None].astype(np.float32)
    )
    for name, write in (("g.tif", tifffile.imwrite), ("g.png", skio.imsave)):
        write(tmp_path / name, gray)
        out = ["-o", str(tmp_path / "o.npy"), "--overwrite"]
        assert main(["model", "run", str(czann), str(tmp_path / name), *out]) == 0
        np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), np.moveaxis(expected[0], -1, 0))


def test_run_errors(czann, tmp_path, capsys):
    rgb = tmp_path / "rgb.npy"
    np.save(rgb, np.zeros((8, 8, 3), np.float32))
    assert main(["model", "run", str(czann), str(rgb), "-o", str(tmp_path / "o.npy")]) == 2
    assert "the model expects 1 channel" in capsys.readouterr().err
    assert main(["model", "run", str(czann), str(rgb), "-o", str(tmp_path / "o.png")]) == 2
    assert ".npy, .tif or .tiff" in capsys.readouterr().err
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert main(["model", "run", str(czann), str(objects), "-o", str(tmp_path / "o.npy")]) == 2
    assert f"error: {objects}: cannot read the image" in capsys.readouterr().err
    assert not (tmp_path / "o.npy").exists()


def test_convert_refuses_pickles_and_bad_options(tmp_path, capsys):
    pickled = tmp_path / "model.pt"
    pickled.write_bytes(b"\x80\x04K\x01.")
    args = ["model", "convert", str(pickled), "-o", str(tmp_path / "o.czann"), "--classes", "a,b"]
    assert main(args) == 2
    assert "pickled PyTorch files are not loaded" in capsys.readouterr().err
    onnx_file = tmp_path / "unet.onnx"
    onnx.save(tiny_unet_onnx(), onnx_file)
    base = ["model", "convert", str(onnx_file), "-o", str(tmp_path / "o.czann")]
    for extra, message in [
        (["--classes", "a,b", "--type", "Magic"], "unknown --type"),
        (["--classes", "a,b", "--min-overlap", "x"], "--min-overlap needs integers"),
        (["--classes", "a,b,c"], "3 classes given; the graph outputs 2"),
        (["--classes", "a,b", "--spatial", "12"], "1 entries|2 sizes"),
        (["--classes", "a,b", "--legacy"], "fixed spatial sizes"),
    ]:
        assert main(base + extra) == 2
        assert __import__("re").search(message, capsys.readouterr().err)
    assert not (tmp_path / "o.czann").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_convert_channels_first_onnx_legacy(tmp_path, capsys):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Softmax(1))
    onnx_file = tmp_path / "nchw.onnx"
    torch.onnx.export(
        net,
        (torch.zeros(1, 1, 32, 32),),
        str(onnx_file),
        dynamo=False,
        input_names=["x"],
        output_names=["y"],
    )
    out = tmp_path / "nchw.czseg"
    args = [
        "model",
        "convert",
        str(onnx_file),
        "-o",
        str(out),
        "--classes",
        "bg,fg",
        "--min-overlap",
        "2",
        "--channels-first",
        "--legacy",
    ]
    assert main(args) == 0, capsys.readouterr().err
    model = load_model(out, providers=CPU)
    batch = np.random.default_rng(2).normal(size=(1, 1, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(model.predict(batch), expected, atol=1e-5)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_convert_a_torch_export_program(tmp_path, capsys):
    import torch

    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1),
        torch.nn.MaxPool2d(2),
        torch.nn.Upsample(scale_factor=2),
        torch.nn.Softmax(1),
    )
    program = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(1, 2, 32, 32),)), str(program))
    out = tmp_path / "net.czann"
    args = ["model", "convert", str(program), "-o", str(out), "--classes", "a,b,c"]
    assert main(args) == 0, capsys.readouterr().err
    model = load_model(out, providers=CPU)
    assert model.spec.tile_shape == (32, 32) and model.spec.tile_step == (2, 2)
    batch = np.random.default_rng(3).normal(size=(2, 2, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(model.predict(batch), expected, atol=1e-5)


def test_outputs_never_replace_inputs_or_folders(czann, tmp_path, capsys):
    graph = tmp_path / "unet.onnx"
    onnx.save(tiny_unet_onnx(in_channels=1, n_classes=2), graph)
    image = tmp_path / "img.tif"
    tifffile.imwrite(image, np.zeros((16, 16), np.uint16))
    before = graph.read_bytes(), image.read_bytes()
    assert main(["model", "convert", str(graph), "-o", str(graph), "--classes", "a,b"]) == 2
    assert main(["model", "run", str(czann), str(image), "-o", str(image)]) == 2
    assert capsys.readouterr().err.count("would replace the input") == 2
    assert (graph.read_bytes(), image.read_bytes()) == before
    folder = tmp_path / "out.czann"
    folder.mkdir()
    assert main(["model", "convert", str(graph), "-o", str(folder), "--classes", "a,b"]) == 2
    assert "is a folder" in capsys.readouterr().err
    license_file = tmp_path / "model.json"
    license_file.write_text("{}")
    args = ["--classes", "a,b", "--license", str(license_file)]
    assert main(["model", "convert", str(graph), "-o", str(tmp_path / "m.czann"), *args]) == 2
    assert "may not be named 'model.json'" in capsys.readouterr().err
    assert not (tmp_path / "m.czann").exists()
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_validate_refuses_a_legacy_border_without_a_core_and_other_channels(tmp_path, capsys):
    """A BorderSize that leaves a fixed tile no core passed validation and failed in segment;
    an XML listing channels the graph does not take passed silently, then with a warning."""
    from scopeml.model import LegacyModelMetadata, write_container

    graph = tiny_unet_onnx(tile_shape=(64, 64))
    wide = LegacyModelMetadata(name="wide", classes=("bg", "fg"), border_size=30)
    path = write_container(tmp_path / "wide.czseg", graph, wide, legacy=True)
    assert main(["model", "validate", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: model input size 64 along Y leaves no core around a halo of 32 (30 "
        "rounded up to the step 4) on each side\n"
    )
    three = LegacyModelMetadata(name="three", classes=("bg", "fg"), border_size=8,
                                pixel_types=("Gray8",) * 3)  # fmt: skip
    path = write_container(tmp_path / "three.czseg", graph, three, legacy=True)
    assert main(["model", "validate", str(path)]) == 2  # an error now, as a czann's is
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and "the XML lists 3 channels" in err, err
    assert "the graph takes 1" in err


def test_converting_a_damaged_container_names_the_file_not_an_option(czann, tmp_path, capsys):
    """A cut czann is a damaged zip, said as inspect says it; it was taken for an ONNX graph
    and asked for --classes."""
    cut = tmp_path / "cut.czann"
    cut.write_bytes(czann.read_bytes()[:700])
    assert main(["model", "convert", str(cut), "-o", str(tmp_path / "x.czann")]) == 2
    err = capsys.readouterr().err
    assert "cut.czann: truncated or damaged zip" in err and "--classes" not in err, err
    assert not (tmp_path / "x.czann").exists()


def test_a_file_that_is_no_model_is_said_so_before_options_it_would_need(tmp_path, capsys):
    """A text file named .onnx is not a graph (not "give --classes"); a text file named .czann
    is a damaged container to ``info`` (not "unknown image format")."""
    for name in ("text.onnx", "text.czann"):
        (tmp_path / name).write_text("not a model")
    assert main(["model", "convert", str(tmp_path / "text.onnx"), "-o",
                 str(tmp_path / "o.czann")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "not a valid ONNX graph" in err and "--classes" not in err
    assert main(["info", str(tmp_path / "text.czann")]) == 2
    err = capsys.readouterr().err
    assert "not a valid zip archive" in err and "image format" not in err


def test_an_instance_segmentation_model_is_run_with_a_warning_saying_how(tmp_path):
    from scopeml.model import open_model

    czann = tmp_path / "inst.czann"
    assert main(["model", "convert", "nuclei", "-o", str(czann),
                 "--type", "MultiClassInstanceSegmentation"]) == 0  # fmt: skip
    with pytest.warns(UserWarning, match="MultiClassInstanceSegmentation model is run as a "
                      "semantic segmentation"):  # fmt: skip
        model = open_model(czann)
    assert model.spec.classes == ("background", "nucleus", "boundary")
