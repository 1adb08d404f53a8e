"""A child class's automatic threshold per parent object (``scope: per_parent``) or pooled over
all parents (the default): t3 finding 8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage.filters

from scopeml.analysis import (
    ClassSettings,
    InvalidSettingsError,
    ThresholdSegmenter,
    parse_settings,
    run_analysis,
)
from scopeml.analysis.parent_threshold import parent_levels, threshold_per_parent_tiled
from scopeml.analysis.segment import segment_class
from scopeml.io import open_image
from tests.analysis.conftest import write_image


def _parents(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Labels of a few rectangles of random size (ids 1.., some touching, many crossing
    tile borders), a background strip around them."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    for i in range(1, 9):
        corner = [int(rng.integers(0, n - 8)) for n in shape]
        size = [int(rng.integers(4, max(5, n // 2))) for n in shape]
        labels[tuple(slice(c, c + s) for c, s in zip(corner, size, strict=True))] = i
    return labels


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("method", ["otsu", "triangle", "li"])
def test_each_parent_gets_scikit_images_level_of_its_own_pixels(dtype, method) -> None:
    rng = np.random.default_rng(1)
    parents = _parents((60, 50), seed=2)
    scale = rng.uniform(50, 2000, 9)  # each parent its own brightness
    values = (rng.gamma(2.0, size=parents.shape) * scale[parents]).astype(dtype)
    levels = parent_levels(values, parents, method, tile_size=16)
    found = np.unique(parents[parents > 0])
    assert np.isnan(levels[0]) and found.size >= 4
    for p in found:
        want = getattr(skimage.filters, f"threshold_{method}")(values[parents == p])
        if method == "li" and dtype is not np.uint16:  # iterated to a fixed split (li_tiled's)
            exact = skimage.filters.threshold_li(values[parents == p].astype(np.float64))
            assert levels[p] == pytest.approx(exact, rel=1e-12, abs=0), p
            assert levels[p] == pytest.approx(want, rel=2e-4), p  # float32: tiled.py's bound
        else:  # float32 too: the histogram's edges and centres in float32, as numpy's
            assert levels[p] == want, p
    assert len({round(float(v), 3) for v in levels[found]}) == found.size  # not one pooled level


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("method", ["otsu", "li", "triangle"])
def test_tiled_levels_and_mask_equal_one_tile(tmp_path: Path, dtype, method) -> None:
    rng = np.random.default_rng(3)
    parents = _parents((70, 45), seed=4)
    values = (rng.random(parents.shape) * 200 + 20 * parents).astype(dtype)
    one_mask, one = threshold_per_parent_tiled(values, None, method, tile_size=128,
                                               parent=parents, dark=True)  # fmt: skip
    tiled_mask, tiled = threshold_per_parent_tiled(
        values, tmp_path / "m.zarr", method, tile_size=16, parent=parents, dark=True
    )
    np.testing.assert_allclose(tiled, one, rtol=1e-12)
    np.testing.assert_array_equal(tiled_mask[...], one_mask)
    assert one_mask.any() and not one_mask[parents == 0].any()


def test_a_parent_without_spread_or_pixels_gets_no_children() -> None:
    values = np.array([[7, 7, 7, 0, 1, 9]], np.uint16)
    parents = np.array([[1, 1, 1, 0, 3, 3]], np.int32)  # id 2 has no pixels, id 1 one value
    levels = parent_levels(values, parents, "otsu", tile_size=2)
    assert np.isnan(levels[:3]).all() and levels[3] == 1.0


def _two_nuclei() -> np.ndarray:
    """``2×Y×X`` uint16: DAPI two nuclei (disks); GFP a spot in each, the left nucleus dim
    (body 100, spot 250), the right one bright (body 1000, spot 2500)."""
    yy, xx = np.mgrid[:80, :160]
    dapi = np.full(yy.shape, 10.0)
    gfp = np.full(yy.shape, 10.0)
    for cx, body, spot in ((40, 100, 250), (120, 1000, 2500)):
        disk = (yy - 40) ** 2 + (xx - cx) ** 2 < 26**2
        dapi[disk] = 2000
        gfp[disk] = body
        gfp[(yy - 36) ** 2 + (xx - cx - 5) ** 2 < 5**2] = spot
    noise = np.random.default_rng(0).normal(0, 5, (2, *yy.shape))
    return np.clip(np.stack([dapi, gfp]) + noise, 0, 65535).astype(np.uint16)


SETTINGS = """\
version: 1
channels: [DAPI, GFP]
tile_size: {tile}
memory_mb: {memory}
classes:
  - name: nucleus
    segmenter: {{kind: threshold, channel: DAPI, method: otsu}}
  - name: spot
    parent: nucleus
    segmenter: {{kind: threshold, channel: GFP, method: otsu, sigma: 1.0{scope}}}
    post: {post}
"""


SMALL = "{step: remove_small, min_size: 30}"  # pooled leaves specks of the dim spot


def _run(tmp_path: Path, name: str, scope: str, *, tile=1024, memory=512, post=None) -> Path:
    image = tmp_path / "two.ome.tif"
    if not image.exists():
        write_image(image, _two_nuclei())
    text = SETTINGS.format(tile=tile, memory=memory, post=post or f"[{SMALL}]",
                           scope="" if scope == "default" else f", scope: {scope}")  # fmt: skip
    out = tmp_path / name
    run_analysis(parse_settings(text, path=f"{name}.yaml"), [image], out)
    return out


def _spots(out: Path) -> np.ndarray:
    return open_image(out / "images" / "two" / "spot.ome.zarr").read()[0, 0, 0, 0]


def test_per_parent_finds_the_spot_in_both_nuclei_pooled_only_in_the_bright_one(tmp_path):
    per = _run(tmp_path, "per", "per_parent")
    pooled = _run(tmp_path, "pooled", "default")
    nuclei = pd.read_csv(per / "tables" / "nucleus.csv").sort_values("object_id")
    assert len(nuclei) == 2
    spots = pd.read_csv(per / "tables" / "spot.csv")
    assert sorted(spots["parent_id"]) == [1, 2]  # one spot in each nucleus
    assert spots["area"].between(60, 100).all()  # the spot (r 5: 78 px), not the nucleus
    pooled_spots = pd.read_csv(pooled / "tables" / "spot.csv")
    assert list(pooled_spots["parent_id"]) == [2]  # the dim nucleus has none
    assert pooled_spots["area"].iloc[0] > 1500  # the bright nucleus wholly "spot"
    # pooled stays the default: an explicit 'scope: pooled' gives the same labels
    np.testing.assert_array_equal(_spots(_run(tmp_path, "explicit", "pooled")), _spots(pooled))


def test_per_parent_tiled_out_of_core_and_whole_plane_paths_agree(tmp_path):
    whole = _spots(_run(tmp_path, "whole", "per_parent"))
    tiled = _spots(_run(tmp_path, "tiled", "per_parent", tile=16, memory=0))  # out of core
    np.testing.assert_array_equal(tiled, whole)
    # watershed_split makes the class non-tileable: segment_class on the whole plane
    split_post = f"[{SMALL}, {{step: watershed_split}}]"
    split = _spots(_run(tmp_path, "split", "per_parent", post=split_post))
    np.testing.assert_array_equal(split > 0, whole > 0)
    assert len(np.unique(whole)) == 3


def test_per_parent_on_a_z_stack_thresholds_each_parent() -> None:
    pixels = _two_nuclei()
    stack = {"DAPI": np.stack([pixels[0]] * 3), "GFP": np.stack([pixels[1]] * 3)}
    nuclei = np.zeros(stack["DAPI"].shape, np.int32)
    nuclei[:, :, :80][stack["DAPI"][:, :, :80] > 1000] = 1
    nuclei[:, :, 80:][stack["DAPI"][:, :, 80:] > 1000] = 2
    segmenter = ThresholdSegmenter(channel="GFP", method="otsu", scope="per_parent")
    cls = ClassSettings(name="spot", parent="nucleus", segmenter=segmenter)
    spots = segment_class(cls, stack, region=nuclei)
    assert sorted(np.unique(nuclei[spots > 0])) == [1, 2]
    assert 3 * 60 < (spots > 0).sum() < 2 * 3 * 100
    with pytest.raises(ValueError, match="needs the parent class's labels"):
        segment_class(cls, stack, region=nuclei > 0)


BASE = """\
version: 1
channels: [a]
classes:
  - name: cell
    segmenter: {kind: threshold, channel: a}
  - name: dot
    parent: cell
    segmenter:
      kind: threshold
      channel: a
"""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (BASE + "      scope: per_cell\n",
         "line 11: classes[1].segmenter.scope: Input should be 'pooled' or 'per_parent'"),
        (BASE + "      scpoe: per_parent\n",
         "line 11: classes[1].segmenter.scpoe: unknown key 'scpoe' (did you mean 'scope'?)"),
        (BASE + "      method: fixed\n      value: 3\n      scope: per_parent\n",
         "line 8: classes[1].segmenter: 'scope: per_parent' is for automatic thresholds"),
        (BASE.replace("channel: a}", "channel: a, scope: per_parent}"),
         "line 4: classes[0]: class 'cell': 'scope: per_parent' thresholds each parent"),
    ],
)  # fmt: skip
def test_bad_scope_is_named_with_its_line(text: str, problem: str) -> None:
    with pytest.raises(InvalidSettingsError) as caught:
        parse_settings(text, path="s.yaml")
    assert str(caught.value).startswith(f"s.yaml: {problem}"), str(caught.value)


def test_results_from_before_scope_resume(tmp_path: Path) -> None:
    """An earlier run's settings.yaml has no 'scope': its pooled thresholds are the default;
    nor 'rules' (a run of this version refused them: "classes[0].rules: (not set) → {}")."""
    out = _run(tmp_path, "old", "default")
    written = (out / "settings.yaml").read_text()
    assert "scope: pooled" in written and "  rules: {}\n" in written
    old = written.replace("      scope: pooled\n", "").replace("  rules: {}\n", "")
    (out / "settings.yaml").write_text(old)  # nor 'rules' (an empty one: none)
    image = tmp_path / "two.ome.tif"
    text = SETTINGS.format(tile=1024, memory=512, post=f"[{SMALL}]", scope="")
    again = run_analysis(parse_settings(text), [image], out, resume=True)
    assert again.resumed == 1
