"""The training intensity range in a pixel-classifier container: recorded, kept, validated."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from scopeml.errors import InvalidContainerError
from scopeml.pixel import PixelClassifier, load_classifier, read_metadata, train_classifier
from scopeml.pixel._range import MAX_BLOCKS


def _with_range(src: Path, dst: Path, value) -> Path:
    """A copy of the container whose ``Training.intensity_range`` is ``value`` (removed for
    ``None``), every other member unchanged."""
    with zipfile.ZipFile(src) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(members["model.json"])
    meta["Training"].pop("intensity_range")
    if value is not None:
        meta["Training"]["intensity_range"] = value
    members["model.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(dst, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return dst


def test_the_range_of_the_labelled_blocks_is_saved_and_loaded(
    small_classifier: PixelClassifier, nuclei, tmp_path: Path
) -> None:
    image, _ = nuclei
    recorded = small_classifier.info["intensity_range"]
    # the labels are spread over the whole image: its percentiles, from the subsample
    expected = np.percentile(image, [0.1, 99.9])
    np.testing.assert_allclose([recorded["low"][0], recorded["high"][0]], expected, rtol=0.05)
    path = small_classifier.save(tmp_path / "m.czseg")
    assert read_metadata(path).Training["intensity_range"] == recorded
    assert load_classifier(path).info["intensity_range"] == recorded


def test_the_range_comes_from_the_labelled_blocks_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = np.zeros((2, 64, 800), np.float32)
    image[0, :, :400] = rng.uniform(10, 20, (64, 400))  # labelled part
    image[0, :, 400:] = 5000.0  # never labelled, more than one block away
    image[1] = np.nan  # a channel without a finite pixel
    image[1, :, :200] = rng.uniform(-3, -1, (64, 200))
    labels = np.zeros((64, 800), np.uint8)
    labels[10, 10:300] = 1
    labels[40, 10:300] = 2
    clf = train_classifier(image, labels, features="gaussian_smoothing:1", n_estimators=3)
    recorded = clf.info["intensity_range"]
    assert 10 <= recorded["low"][0] < recorded["high"][0] <= 20
    assert -3 <= recorded["low"][1] < recorded["high"][1] <= -1


def test_many_labelled_blocks_are_sampled_evenly() -> None:
    from scopeml.pixel._range import training_range
    from scopeml.pixel._sources import ImageSource, LabelScan

    image = np.arange(100 * 1000, dtype=np.float32).reshape(1, 100, 1000)
    reads = []

    class Counted(ImageSource):
        def read(self, region):
            reads.append(region)
            return super().read(region)

    cores = [(slice(0, 100), slice(10 * k, 10 * k + 10)) for k in range(100)]
    scan = LabelScan(top=2, blocks=[(core, core, core) for core in cores])
    recorded = training_range([(Counted(image, 2), None)], [scan])
    assert len(reads) == MAX_BLOCKS and reads[0] == cores[0] and reads[-1] == cores[-1]
    # the sample spans the image: its percentiles are those of the whole within a column
    np.testing.assert_allclose(
        [recorded["low"][0], recorded["high"][0]], np.percentile(image, [0.1, 99.9]), atol=20
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("dark", "Training.intensity_range: Input should be a valid dictionary"),
        ({"percentiles": [0.1, 99.9], "low": [1.0]}, "Training.intensity_range.high: Field"),
        (
            {"percentiles": [0.1, 99.9], "low": [1.0], "high": ["bright"]},
            "Training.intensity_range.high.0: Input should be a valid number",
        ),
        (
            {"percentiles": [0.1, 99.9], "low": [1.0, 2.0], "high": [3.0, 4.0]},
            "intensity_range has 2 low and 2 high values; the model has 1 channel",
        ),
    ],
)
def test_a_malformed_range_is_refused_naming_the_field(
    small_classifier: PixelClassifier, tmp_path: Path, value, problem: str
) -> None:
    good = small_classifier.save(tmp_path / "good.czseg")
    bad = _with_range(good, tmp_path / "bad.czseg", value)
    for read in (read_metadata, load_classifier):
        with pytest.raises(InvalidContainerError, match=problem.replace(".", r"\.")) as caught:
            read(bad)
        assert caught.value.path == str(bad)


def test_a_container_from_before_the_range_loads(
    small_classifier: PixelClassifier, nuclei, tmp_path: Path
) -> None:
    good = small_classifier.save(tmp_path / "good.czseg")
    old = load_classifier(_with_range(good, tmp_path / "old.czseg", None))
    assert "intensity_range" not in old.info
    image = nuclei[0][None].astype(np.float32)
    np.testing.assert_array_equal(old.predict(image), small_classifier.predict(image))


def test_pixel_info_shows_the_range(small_classifier: PixelClassifier, tmp_path: Path, capsys):
    from scopeml.cli import main

    path = small_classifier.save(tmp_path / "m.czseg")
    span = small_classifier.info["intensity_range"]
    assert main(["pixel", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "  1 channel, 2-D, halo" in out
    low, high = span["low"][0], span["high"][0]
    said = f"  trained on intensities: {low:g}..{high:g} (0.1..99.9th percentile of the labelled"
    assert f"{said} blocks)" in out


def test_normalising_the_input_of_a_classifier_trained_on_raw_values_is_refused(
    small_classifier: PixelClassifier, nuclei, tmp_path: Path
) -> None:
    """Normalised, the input was 0..1 where the forest learnt raw grey values: every pixel
    came out background, without a word."""
    import scopeml as sm
    from scopeml.errors import InvalidRequestError

    image, _ = nuclei
    model = small_classifier.save(tmp_path / "m.czseg")
    for normalize in ("percentile:1,99.8", "meanstd"):
        with pytest.raises(InvalidRequestError, match="works on the raw intensities"):
            sm.segment(image, model, tmp_path / "out.ome.zarr", normalize=normalize)
    assert not (tmp_path / "out.ome.zarr").exists()
    done = sm.segment(image, model, tmp_path / "out.ome.zarr", normalize="none")
    assert set(np.unique(done.labels[...])) == {1, 2}  # raw values: both classes found
