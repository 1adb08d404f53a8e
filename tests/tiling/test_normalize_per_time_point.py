"""``normalize: … per time point``: each frame of a series gets its own statistics, so a
bleaching series' dim late frames are segmented as they would be alone (with the series'
statistics they lost nuclei), still exact under tiling."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from scopeml.errors import InvalidRequestError
from scopeml.synthetic import synthetic_nuclei
from scopeml.tiling.normalize import check_recordable, compute_normalization

POLICY = "percentile:1,99.8 per time point"


@pytest.fixture(scope="module")
def bleaching():
    """One plane of nuclei at gains 1, 0.35 and 0.1 with an offset: a series fading."""
    pixels, _ = synthetic_nuclei((192, 160), density=0.003, seed=5)
    plane = pixels.reshape(pixels.shape[-2:]).astype(np.float64)
    frames = np.stack([plane * gain + 100 for gain in (1.0, 0.35, 0.1)]).astype(np.uint16)
    return frames  # T×Y×X


def image_of(frames: np.ndarray) -> sm.Image:
    return sm.Image(frames.reshape(1, frames.shape[0], 1, 1, *frames.shape[1:]))


def test_each_time_point_has_the_statistics_it_has_alone(bleaching):
    series = compute_normalization(image_of(bleaching), POLICY)
    assert len(series.per_time) == 3
    for t in range(3):
        alone = compute_normalization(image_of(bleaching[t : t + 1]), "percentile:1,99.8")
        assert series.at(t) == alone
    whole = compute_normalization(image_of(bleaching), "percentile:1,99.8")
    assert whole.per_time == () and whole.at(2) == whole  # one for all, as before


def test_a_fading_frame_is_segmented_as_alone_and_tiling_stays_exact(bleaching, tmp_path):
    image = image_of(bleaching)
    runs = {
        size: sm.segment(image, "nuclei", tmp_path / f"{size}.ome.zarr", normalize=POLICY,
                         tile_size=size, scale=1)
        for size in (64, 512)
    }  # fmt: skip
    series = runs[64].labels.read()[0, :, 0, 0]  # T×Y×X
    np.testing.assert_array_equal(series, runs[512].labels.read()[0, :, 0, 0])
    for t in range(3):
        alone = sm.segment(image_of(bleaching[t : t + 1]), "nuclei", tmp_path / f"a{t}.ome.zarr",
                           scale=1)  # fmt: skip
        np.testing.assert_array_equal(series[t], alone.labels.read()[0, 0, 0, 0])
    assert (series[2] == 2).sum() > 0.8 * (series[0] == 2).sum()  # the faded frame's nuclei
    model_own = sm.segment(
        image_of(bleaching),
        "nuclei",
        tmp_path / "own.ome.zarr",
        normalize="per time point",
        scale=1,
    )  # the model's policy, per frame
    np.testing.assert_array_equal(model_own.labels.read()[0, :, 0, 0], series)


def test_predict_region_of_a_later_time_point_takes_its_statistics(bleaching, tmp_path):
    """A region's view begins at its first time point: its tiles took time point 0's values."""
    image = image_of(bleaching)
    store = sm.segment(image, "nuclei", tmp_path / "s.ome.zarr", normalize=POLICY, scale=1)
    written = store.labels.read()[0, :, 0, 0]
    for t in (1, 2):
        region = {"T": (t, t + 1), "Y": (20, 150), "X": (10, 160)}
        found = sm.predict_region(image, "nuclei", region, normalize=POLICY, scale=1)
        np.testing.assert_array_equal(np.squeeze(found), written[t, 20:150, 10:160])


def test_a_model_records_no_per_time_point():
    with pytest.raises(InvalidRequestError, match="a model records how to normalise"):
        check_recordable(POLICY)
    check_recordable("percentile:1,99.8")


def test_an_analysis_of_a_fading_series_counts_each_frame_as_alone(bleaching, tmp_path):
    """The analysis setting: counts that do not fall with the series' brightness (with the
    series' statistics a frame's count depended on the other frames: 129 → 119 nuclei)."""
    import pandas as pd
    import tifffile

    from scopeml.analysis import run_analysis

    tifffile.imwrite(tmp_path / "series.tif", bleaching)
    for t in range(3):
        tifffile.imwrite(tmp_path / f"frame{t}.tif", bleaching[t])
    settings = (
        "version: 1\nchannels: [C0]\nclasses:\n  - name: nucleus\n    segmenter:\n"
        "      kind: instances\n      model: nuclei\n      class: nucleus\n      channels: [C0]\n"
        "      scale: 1\n      normalize: per time point\n"
    )
    (tmp_path / "s.yaml").write_text(settings)
    series = run_analysis(tmp_path / "s.yaml", [tmp_path / "series.tif"], tmp_path / "a",
                          axes="TYX")  # fmt: skip
    per_time = pd.read_csv(series.output / "summary" / "counts_per_time_point.csv")
    frames = run_analysis(tmp_path / "s.yaml", [tmp_path / f"frame{t}.tif" for t in range(3)],
                          tmp_path / "b")  # fmt: skip
    assert per_time["nucleus"].tolist() == [frames.counts[f"frame{t}"]["nucleus"] for t in range(3)]


def test_scale_auto_estimates_from_frames_each_normalised_on_its_own():
    """Gain and camera offset fading together: with the frames normalised together, the bright
    first frame's background was one ~900 px object and auto chose 1/8 (6 nuclei, not 32)."""
    from scopeml.model import open_model
    from scopeml.tiling.size import auto_scale

    pixels, _ = synthetic_nuclei((256, 256), density=0.003, seed=9)
    plane = pixels.reshape(pixels.shape[-2:]).astype(np.float64) + 3000  # the camera offset
    frames = np.stack([plane * gain for gain in (1.0, 0.5, 0.1)]).astype(np.uint16)
    model = open_model("nuclei")
    alone = auto_scale(image_of(frames[:1]), model).scale
    assert auto_scale(image_of(frames), model).scale != alone  # together: the premise
    assert auto_scale(image_of(frames), model, normalize=POLICY).scale == alone
    assert auto_scale(image_of(frames), model, normalize="per time point").scale == alone


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("", "normalize is empty; give none for raw values"),  # an unset shell variable
        ("none per time point", "there are no statistics to compute per time point"),
        ("per frame", "the last two optionally followed by 'per time point'"),
    ],
)
def test_a_normalize_that_would_do_nothing_or_is_unknown_says_so(given, said, tmp_path):
    with pytest.raises(InvalidRequestError, match=said):
        sm.segment(np.zeros((32, 32), np.uint16), "nuclei", tmp_path / "s.ome.zarr",
                   normalize=given)  # fmt: skip


def test_per_time_point_alone_needs_a_policy_the_model_records(tmp_path):
    from scopeml.tiling.normalize import chosen_policy

    assert chosen_policy("Per  time point", "meanstd") == "meanstd per time point"
    with pytest.raises(InvalidRequestError, match="the model records no normalisation"):
        chosen_policy("per time point", None)  # raw values: nothing would change


def test_info_says_how_the_run_normalised(bleaching, tmp_path, capsys):
    from scopeml.cli import main

    sm.segment(image_of(bleaching), "nuclei", tmp_path / "p.ome.zarr", normalize=POLICY, scale=1)
    sm.segment(image_of(bleaching), "nuclei", tmp_path / "g.ome.zarr", scale=1)
    assert main(["info", str(tmp_path / "p.ome.zarr")]) == 0
    assert main(["info", str(tmp_path / "g.ome.zarr")]) == 0
    said = capsys.readouterr().out
    assert f"normalisation: {POLICY}, each time point on its own" in said
    assert "normalisation: the model's policy, over the whole image" in said
