"""One plane of one class: each post step against scipy/scikit-image, children inside parents,
model classes as instances, and an object classifier named in the settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from scopeml.analysis import AnalysisSettings, ClassSettings, ThresholdSegmenter, run_analysis
from scopeml.analysis.segment import apply_post, threshold_mask
from scopeml.analysis.settings import (
    Closing,
    Crf,
    FillHoles,
    Opening,
    RemoveLarge,
    RemoveSmall,
    WatershedSplit,
)
from scopeml.objects.label import label_instances
from tests.analysis.conftest import three_level_settings


def blobs(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.random((96, 96)), 3) > 0.5


@pytest.mark.parametrize(
    ("step", "reference"),
    [
        (FillHoles(), ndi.binary_fill_holes),
        (Opening(radius=2), lambda m: ndi.binary_opening(m, _disk(2))),
        (Closing(radius=2), lambda m: ndi.binary_closing(np.pad(m, 2), _disk(2))[2:-2, 2:-2]),
    ],
)
def test_mask_steps_equal_scipy(step: object, reference: object) -> None:
    mask = blobs()
    mask[40:50, 40:50] = True
    mask[44:46, 44:46] = False  # a hole
    out = apply_post(label_instances(mask), [step])
    np.testing.assert_array_equal(out > 0, reference(mask))
    assert out.dtype == np.int32


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return yy**2 + xx**2 <= radius**2


def test_size_steps_drop_whole_objects() -> None:
    labels = label_instances(blobs(1))
    sizes = np.bincount(labels.ravel())[1:]
    small, large = np.sort(sizes)[len(sizes) // 3], np.sort(sizes)[2 * len(sizes) // 3]
    out = apply_post(labels, [RemoveSmall(min_size=int(small)), RemoveLarge(max_size=int(large))])
    kept = np.unique(out[out > 0])
    expected = np.flatnonzero((sizes >= small) & (sizes <= large)) + 1
    np.testing.assert_array_equal(kept, expected)  # ids kept, whole objects only
    np.testing.assert_array_equal(out > 0, np.isin(labels, expected))


def test_watershed_split_separates_touching_disks() -> None:
    yy, xx = np.mgrid[:40, :70]
    two = ((yy - 20) ** 2 + (xx - 20) ** 2 < 225) | ((yy - 20) ** 2 + (xx - 46) ** 2 < 225)
    assert label_instances(two).max() == 1
    out = apply_post(label_instances(two), [WatershedSplit(min_distance=8)])
    assert out.max() == 2 and ((out > 0) == two).all()
    assert out[20, 20] != out[20, 46]
    # h: the centres are 15 px from the background: split at h 4; no maximum is 16 px high
    assert apply_post(label_instances(two), [WatershedSplit(h=4)]).max() == 2
    assert apply_post(label_instances(two), [WatershedSplit(h=16)]).max() == 1


def test_crf_snaps_a_mask_to_the_image_edge() -> None:
    image = np.zeros((40, 40), np.float32)
    image[:, 20:] = 1.0
    mask = np.zeros((40, 40), bool)
    mask[:, 16:] = True  # four pixels too far left
    out = apply_post(label_instances(mask), [Crf(iterations=5, intensity_sigma=0.2)], guide=image)
    assert (out[:, 22:] > 0).all() and not (out[:, :18] > 0).any()


def test_children_stay_inside_their_parent_region() -> None:
    region = np.zeros((60, 60), bool)
    region[10:50, 10:50] = True
    channel = np.zeros((60, 60), np.float32)
    channel[5:55, 30:35] = 10  # a bar crossing the parent's border
    seg = ThresholdSegmenter(channel="a", method="fixed", value=5)
    mask = threshold_mask(channel, seg, region)
    out = apply_post(label_instances(mask), [Closing(radius=3), FillHoles()], region=region)
    assert (out[~region] == 0).all() and out.max() == 1
    assert (out > 0).sum() == 40 * 5


def test_automatic_threshold_of_a_child_is_computed_inside_the_parent() -> None:
    channel = np.zeros((50, 50), np.float32)
    channel[:, 25:] = 100  # outside the parent: a bright half that would dominate Otsu
    channel[5:20, 5:20] = 10
    channel[8:12, 8:12] = 30  # the spot inside the parent
    region = np.zeros((50, 50), bool)
    region[5:20, 5:20] = True
    mask = threshold_mask(channel, ThresholdSegmenter(channel="a", method="otsu"), region)
    assert mask.sum() == 16 and mask[8:12, 8:12].all()


def test_object_classifier_named_in_settings(images: list[Path], tmp_path: Path) -> None:
    from scopeml.objects import train_object_classifier

    first = run_analysis(three_level_settings(), images[:1], tmp_path / "first")
    cells = pd.read_csv(tmp_path / "first" / "tables" / "cell.csv")
    cells["size"] = np.where(cells["area"] > cells["area"].median(), "big", "small")
    classifier = train_object_classifier(cells, "size", features=["area"], n_estimators=20)
    classifier.save(tmp_path / "size.zip")
    settings = three_level_settings()
    classes = list(settings.classes)
    classes[0] = classes[0].model_copy(update={"classifier": str(tmp_path / "size.zip")})
    settings = AnalysisSettings(**{**settings.model_dump(by_alias=True), "classes": [
        c.model_dump(by_alias=True) for c in classes]})  # fmt: skip
    run_analysis(settings, images, tmp_path / "second")
    table = pd.read_csv(tmp_path / "second" / "tables" / "cell.csv")
    assert set(table["object_class"]) == {"big", "small"}
    mine = table[table["image"] == "img0"]
    np.testing.assert_array_equal(mine["object_class"], cells["size"])
    assert first.counts["img0"]["cell"] == len(mine)
    counts = pd.read_csv(tmp_path / "second" / "summary" / "counts.csv").set_index("image")
    for image, rows in table.groupby("image"):  # each image's objects by the class predicted
        predicted = rows["object_class"].value_counts()
        assert counts.loc[image, "cell_class_big"] == predicted.get("big", 0)
        assert counts.loc[image, "cell_class_small"] == predicted.get("small", 0)
    assert (counts["cell_class_big"] + counts["cell_class_small"] == counts["cell"]).all()
    assert not any(c.startswith("nucleus_class_") for c in counts.columns)  # no classifier
    index = (tmp_path / "second" / "index.html").read_text()
    big, small = counts.loc["img0", ["cell_class_big", "cell_class_small"]]
    assert f"{counts.loc['img0', 'cell']} (big {big}, small {small})" in index


def test_a_classifier_of_the_children_summaries_classifies_the_same_tree(
    images: list[Path], tmp_path: Path
) -> None:
    """Default features include the child class's summaries (``nucleus_count``, …): every
    image failed, the table lacking them, as classes were classified before the summaries."""
    from scopeml.objects import train_object_classifier

    run_analysis(three_level_settings(), images[:1], tmp_path / "first")
    cells = pd.read_csv(tmp_path / "first" / "tables" / "cell.csv")
    cells["busy"] = np.where(cells["area"] > cells["area"].median(), "yes", "no")
    classifier = train_object_classifier(cells, "busy", n_estimators=20)
    assert "nucleus_count" in classifier.features
    classifier.save(tmp_path / "busy.zip")
    settings = three_level_settings()
    classes = [c.model_dump(by_alias=True) for c in settings.classes]
    classes[0]["classifier"] = str(tmp_path / "busy.zip")
    settings = AnalysisSettings(**{**settings.model_dump(by_alias=True), "classes": classes})
    result = run_analysis(settings, images[:1], tmp_path / "second")
    assert not result.failures
    table = pd.read_csv(tmp_path / "second" / "tables" / "cell.csv")
    np.testing.assert_array_equal(table["object_class"], classifier.predict(table))


def test_a_classifier_from_another_class_tree_is_refused_before_the_run(
    images: list[Path], tmp_path: Path
) -> None:
    """Trained on the cells of a tree with nuclei inside (default features: the nuclei's
    count and sizes among them), then named by settings without nuclei: refused when the
    settings are checked, naming the columns, not image by image at run time."""
    from scopeml.analysis.settings import InvalidSettingsError
    from scopeml.objects import train_object_classifier
    from scopeml.objects.classifier import default_features

    run_analysis(three_level_settings(), images[:1], tmp_path / "first")
    cells = pd.read_csv(tmp_path / "first" / "tables" / "cell.csv")
    features = default_features(cells)
    assert {"nucleus_count", "nucleus_area_mean"} <= set(features)
    sizes = pd.DataFrame({"nucleus_area_mean": [4.0], "nucleus_area_um2_mean": [1.0]})
    assert default_features(sizes) == ["nucleus_area_um2_mean"]  # one copy of each size, in µm
    cells["size"] = np.where(cells["area"] > cells["area"].median(), "big", "small")
    train_object_classifier(cells, "size", n_estimators=10).save(tmp_path / "size.zip")
    alone = (
        three_level_settings()
        .classes[0]
        .model_copy(update={"classifier": str(tmp_path / "size.zip")})
    )
    settings = AnalysisSettings(channels=["DAPI", "GFP"], classes=[alone.model_dump(by_alias=True)])
    with pytest.raises(InvalidSettingsError, match=r"the classifier uses columns that class 'cell' "
                       r"will not have: nucleus_count, .* \(the summary of a child class it has "
                       r"none of\)"):  # fmt: skip
        run_analysis(settings, images, tmp_path / "second")
    assert not (tmp_path / "second").exists()


def test_settings_without_children_or_measured_channels(images: list[Path], tmp_path: Path) -> None:
    settings = AnalysisSettings(
        channels=["GFP"],
        classes=[
            ClassSettings(
                name="cell",
                segmenter=ThresholdSegmenter(channel="GFP", sigma=1.0),
                post=[RemoveSmall(min_size=100)],
                measurements={"shape": False, "intensity": []},
            )
        ],
    )
    result = run_analysis(settings, images, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "tables" / "cell.csv")
    assert len(table) == sum(c["cell"] for c in result.counts.values()) == 12
    assert not [c for c in table.columns if c.startswith(("intensity", "perimeter", "solidity"))]
