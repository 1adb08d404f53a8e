"""What a user reads when ImageNet weights are missing or wrong (t3 findings 6 and 7)."""

from __future__ import annotations

import hashlib

import pytest

from scopeml.errors import InvalidRequestError
from scopeml.features import _vgg, parse_features


@pytest.mark.parametrize(
    ("asked", "offered"),
    [
        ("vgg19-256", "vgg19-random-256"),
        ("vgg19-64", "vgg19-random-64"),
        ("vgg19-256+basic25", "vgg19-random-256+basic25"),
        ("vgg19-50@1,2", "vgg19-random-50@1,2"),
        ("vgg16-convpaint", "vgg16-random-convpaint"),
        ("vgg19:conv2_2@1,2+basic25", "vgg19-random:conv2_2@1,2+basic25"),
    ],
)
def test_missing_weights_say_the_problem_then_offer_the_untrained_variant_asked_for(
    no_address, asked, offered
):
    with pytest.raises(InvalidRequestError) as err:
        parse_features(asked).net  # noqa: B018
    text = str(err.value)
    arch = asked[:5]
    assert text.startswith(
        f"{arch} ImageNet weights are not in {no_address} and no download address is known"
    )
    assert text.index("no download address") < text.index("copy torchvision's")
    assert f"or use {offered} (" in text
    assert "for testing" not in text
    assert "seeded random weights" in text
    assert parse_features(offered).network == f"{arch}-random"  # the offer is a spec that works


def test_an_unreachable_address_also_offers_the_variant_asked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOPEML_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SCOPEML_WEIGHTS_URL", (tmp_path / "nowhere").as_uri())
    with pytest.raises(InvalidRequestError) as err:
        parse_features("vgg19-128+basic25").net  # noqa: B018
    assert str(err.value).startswith("cannot fetch vgg19 ImageNet weights from ")
    assert "or use vgg19-random-128+basic25 (" in str(err.value)


def test_a_wrong_weight_file_is_named_with_both_hashes_and_the_remedy(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    folder = tmp_path / "cache" / "networks"
    folder.mkdir(parents=True)
    pth = folder / "vgg19-dcbb9e9d.pth"
    pth.write_bytes(b"not the weights")
    monkeypatch.setenv("SCOPEML_CACHE", str(tmp_path / "cache"))
    with pytest.raises(InvalidRequestError) as err:
        parse_features("vgg19-64").net  # noqa: B018
    text = str(err.value)
    found = hashlib.sha256(b"not the weights").hexdigest()[:8]
    assert text.startswith(f"{pth}: SHA-256 starts {found}, expected dcbb9e9d")
    assert f"copy the right vgg19-dcbb9e9d.pth into {folder} again" in text
    assert not pth.exists()  # deleted, as the message says


def test_untrained_spec_without_a_spec_names_a_preset_of_the_network():
    for arch in _vgg.CFGS:
        name = _vgg.untrained_spec(arch).split()[0]
        assert parse_features(name).network == f"{arch}-random"


def test_pixel_train_prints_the_message_on_one_line_and_exits_2(no_address, tmp_path, capsys):
    import numpy as np
    import tifffile

    from scopeml.cli import main

    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp_path / "im.tif", (rng.random((32, 32)) * 255).astype(np.uint8))
    labels = np.zeros((32, 32), np.uint8)
    labels[4, 4:20], labels[20, 4:20] = 1, 2
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    args = ["pixel", "train", str(tmp_path / "im.tif"), str(tmp_path / "lab.tif"),
            "-o", str(tmp_path / "m.czseg"), "--features", "vgg19-256+basic25"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --features: vgg19 ImageNet weights are not in ")
    assert "or use vgg19-random-256+basic25 (" in err and err.count("\n") == 1
