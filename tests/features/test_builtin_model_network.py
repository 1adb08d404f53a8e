"""A built-in model works as a feature network by name (``nuclei:LAYER``, ``--list nuclei``), as
it does in ``segment -m nuclei``; an unknown network's message names the built-ins; a wrong
layer's message offers the near match and counts the tensors ``--list`` lists."""

from __future__ import annotations

import re

import numpy as np
import pytest

from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.features import DeepFeatures, parse_features
from scopeml.features._network import list_tensors
from scopeml.model.registry import resolve_model

LAYER = "/net/down.1/down.1.3/Relu_output_0"


def _listed(capsys, network: str) -> list[str]:
    assert main(["pixel", "features", "--list", network]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.match(rf"{re.escape(network)}: \d+ tensors", out[0])
    return [line.split()[0] for line in out[1:]]


def test_a_builtin_model_is_a_network_by_name(capsys):
    shipped = str(resolve_model("nuclei"))
    fs = parse_features(f"nuclei:{LAYER}")
    assert isinstance(fs, DeepFeatures) and fs.network == shipped
    by_file = parse_features(f"{shipped}:{LAYER}")
    image = np.random.default_rng(0).gamma(2.0, 300.0, (1, 48, 40)).astype(np.float32)
    fitted = fs.fit([image])
    features = fitted.compute(image)
    assert features.shape == (fs.n_features(1, 2), 48, 40) and np.isfinite(features).all()
    assert features.std(axis=(1, 2)).max() > 0  # the network's maps, not a constant
    np.testing.assert_array_equal(features, by_file.fit([image]).compute(image))
    assert fitted.to_dict()["network"] == shipped  # a classifier records the shipped file
    # `pixel features --list nuclei` lists what the file lists
    names = _listed(capsys, "nuclei")
    assert names == [name for name, _, _ in list_tensors(shipped)] and LAYER in names
    assert main(["pixel", "features", "--features", f"nuclei:{LAYER}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == fs.n_features(1, 2) and out[0].startswith(f"deep({LAYER},scale=1)")


@pytest.mark.parametrize(
    "args",
    [
        ["pixel", "features", "--list", "nucleii"],
        ["pixel", "features", "--features", "nucleii:/net/x"],
        ["pixel", "features", "--features", "nucleii.czann:/net/x"],
    ],
)
def test_an_unknown_network_names_the_builtins(args, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nucleii" in err
    assert "built-in model (nuclei)" in err and "vgg19" in err
    assert "sigmas" not in err  # not read as a filter family


def test_a_wrong_layer_offers_the_near_match_and_the_listed_count(capsys):
    listed = _listed(capsys, "nuclei")
    wrong = LAYER.removesuffix("_output_0")
    assert main(["pixel", "features", "--features", f"nuclei:{wrong}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"did you mean '{LAYER}'" in err
    assert f"it has {len(listed)} tensors to tap" in err and listed[0] in err
    with pytest.raises(InvalidRequestError, match="did you mean") as caught:
        parse_features(f"nuclei:{wrong}").net  # noqa: B018
    assert f"{len(listed)} tensors" in str(caught.value)
