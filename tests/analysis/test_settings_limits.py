"""Settings values that set memory and time whatever the image (an opening radius of 5000, a
threshold sigma of 1e9, instances growing 10⁶ pixels, a split distance of 10⁵) are refused when
the settings are read, with the line and key as other settings errors, not by a MemoryError on
every image; a NaN or infinite fixed threshold (every image then found 0 objects) too."""

from __future__ import annotations

import pytest

from scopeml.analysis.settings import InvalidSettingsError, parse_settings
from scopeml.post.steps import MAX_BALL_RADIUS, MAX_DISTANCE, MAX_SIGMA

HEAD = "version: 1\nchannels: [C0]\nclasses:\n  - name: nucleus\n"
OTSU = "    segmenter: {kind: threshold, channel: C0, method: otsu, sigma: 1.0}\n"


def _refused(text: str) -> str:
    with pytest.raises(InvalidSettingsError) as caught:
        parse_settings(text, path="s.yaml")
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("step", "key", "limit"),
    [
        ("{step: opening, radius: 5000}", "radius", MAX_BALL_RADIUS),
        ("{step: closing, radius: 5000}", "radius", MAX_BALL_RADIUS),
        ("{step: watershed_split, min_distance: 100000}", "min_distance", MAX_DISTANCE),
    ],
)
def test_a_post_step_past_its_limit_names_line_and_key(step: str, key: str, limit: int) -> None:
    message = _refused(HEAD + OTSU + f"    post:\n      - {step}\n")
    assert message.startswith(f"s.yaml: line 7: classes[0].post[0].{key}: {key} must be at most ")
    assert f"at most {limit} pixels" in message


@pytest.mark.parametrize("sigma", ["1e9", ".inf"])
def test_a_huge_sigma_is_refused(sigma: str) -> None:
    segmenter = f"    segmenter: {{kind: threshold, channel: C0, method: otsu, sigma: {sigma}}}\n"
    message = _refused(HEAD + segmenter)
    assert message.startswith("s.yaml: line 5: classes[0].segmenter.sigma: sigma must be ")
    assert (f"at most {MAX_SIGMA:g} pixels" in message) or "finite" in message


@pytest.mark.parametrize("grow", ["1000000", ".nan", ".inf"])
def test_a_huge_or_nonfinite_grow_is_refused(grow: str) -> None:
    segmenter = f"    segmenter: {{kind: instances, model: nuclei, channels: [C0], grow: {grow}}}\n"
    message = _refused(HEAD + segmenter)
    assert message.startswith("s.yaml: line 5: classes[0].segmenter.grow: ")


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_a_nonfinite_fixed_threshold_is_refused(value: str) -> None:
    segmenter = f"    segmenter: {{kind: threshold, channel: C0, method: fixed, value: {value}}}\n"
    message = _refused(HEAD + segmenter)
    assert message.startswith("s.yaml: line 5: classes[0].segmenter.value: ")
    assert "finite" in message


def test_values_within_the_limits_are_taken() -> None:
    text = HEAD + (
        f"    segmenter: {{kind: threshold, channel: C0, method: otsu, sigma: {MAX_SIGMA}}}\n"
        f"    post:\n      - {{step: opening, radius: {MAX_BALL_RADIUS}}}\n"
        f"      - {{step: watershed_split, min_distance: {MAX_DISTANCE}}}\n"
    )
    assert parse_settings(text, path="s.yaml").classes[0].post[0].radius == MAX_BALL_RADIUS
