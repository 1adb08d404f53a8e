"""Feature-spec refusals help: a near miss is named, the deep presets are listed, a preset mixed
with families says that is not allowed, and a name a message suggests is one that works."""

from __future__ import annotations

import re

import pytest

from scopeml.errors import InvalidRequestError
from scopeml.features import DEEP_PRESETS, _vgg, parse_features


@pytest.mark.parametrize(
    ("spec", "suggested", "fixed"),
    [
        ("gauss:3", "gaussian_smoothing", "gaussian_smoothing:3"),
        ("gaussian_smothing:1", "gaussian_smoothing", "gaussian_smoothing:1"),
        ("hessian:1.6", "hessian_of_gaussian_eigenvalues", "hessian_of_gaussian_eigenvalues:1.6"),
        ("vgg19-random", "vgg19-random-64", "vgg19-random-64"),
        ("basic24", "basic25", "basic25"),
    ],
)
def test_a_near_miss_is_named_and_the_name_works(spec, suggested, fixed):
    with pytest.raises(InvalidRequestError) as err:
        parse_features(spec)
    assert f"did you mean '{suggested}'" in str(err.value)
    parse_features(fixed)  # what the message suggests parses


def test_refusal_lists_the_deep_presets():
    with pytest.raises(InvalidRequestError) as err:
        parse_features("nonsense")
    for name in DEEP_PRESETS:
        assert name in str(err.value)


def test_a_preset_mixed_with_families_says_so():
    with pytest.raises(InvalidRequestError, match="basic25 cannot be combined with filter"):
        parse_features("basic25;gaussian_smoothing:20")


def test_missing_weights_message_names_a_preset_that_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOPEML_WEIGHTS_URL", (tmp_path / "nowhere").as_uri())
    for arch in _vgg.CFGS:
        with pytest.raises(InvalidRequestError) as err:
            _vgg.imagenet_state_dict(arch, cache=tmp_path / arch)
        names = re.findall(r"or use (\S+) \(the same network untrained", str(err.value))
        assert names and names[0].startswith(f"{arch}-random")
        assert parse_features(names[0]).network == f"{arch}-random"


def test_a_network_and_a_filter_bank_combine_in_either_order():
    """``basic25+vgg19-random-64`` was refused as a filter spec, suggesting the network
    alone; it is the same features as ``vgg19-random-64+basic25``."""
    from scopeml.features.deep import is_deep_spec, parse_deep_features

    either = [parse_deep_features(s) for s in ("basic25+vgg19-random-64@1,2",
                                                "vgg19-random-64@1,2+basic25")]  # fmt: skip
    assert is_deep_spec("basic25+vgg19-random-64") and not is_deep_spec("basic25")
    assert either[0] == either[1] and either[0].filters.name == "basic25"
    assert either[0].scales == (1, 2)
