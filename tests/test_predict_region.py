"""``sm.predict_region`` returns exactly what ``sm.segment`` writes in the region."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from scopeml.io import write_ome_tiff
from scopeml.synthetic import synthetic_nuclei


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A 2-channel image file, a small classifier with a halo and what segment writes."""
    folder = tmp_path_factory.mktemp("region")
    pixels, truth = synthetic_nuclei((150, 170), channels=2, seed=7)
    labels = np.zeros(truth.shape, np.uint8)
    labels[::7, ::7] = (truth[::7, ::7] > 0) + 1
    model = sm.train_pixel_classifier(
        pixels, labels, n_estimators=6, classes=["background", "nucleus"],
        features="gaussian_smoothing:1,3.5;hessian_of_gaussian_eigenvalues:1.6",
    )  # fmt: skip
    model_path = model.save(folder / "m.czseg")
    image_path = folder / "image.ome.tif"
    write_ome_tiff(image_path, pixels, axes="CYX", tile=(16, 16))
    outputs = ("labels", "probabilities", "confidence")
    seg = sm.segment(image_path, model_path, folder / "seg.ome.zarr", tile_size=48, outputs=outputs)
    return image_path, model_path, {name: seg.output(name).read()[0, 0] for name in outputs}


REGIONS = [
    {"Y": (0, 150), "X": (0, 170)},  # the whole image
    {"Y": (0, 13), "X": (151, 170)},  # the top right corner
    {"Y": (47, 97), "X": (40, 100)},  # across tile borders
    {"Y": (149, 150), "X": (0, 1)},  # the bottom left pixel
]


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("tile_size", [None, 32])
def test_labels_equal_the_segment_store(written, region, tile_size):
    image_path, model_path, expected = written
    options = sm.SegmentOptions(tile_size=tile_size)
    got = sm.predict_region(image_path, model_path, region, options=options)
    window = (slice(*region["Y"]), slice(*region["X"]))
    np.testing.assert_array_equal(got, expected["labels"][0, 0][window])


@pytest.mark.parametrize("output", ["probabilities", "confidence"])
def test_probabilities_equal_the_segment_store(written, output):
    image_path, model_path, expected = written
    region = REGIONS[1]
    model = sm.open_model(model_path)
    with sm.open_image(image_path) as image:
        got = sm.predict_region(image, model, region, outputs=output)
    want = expected[output][:, 0] if output == "probabilities" else expected[output][0, 0]
    window = (slice(*region["Y"]), slice(*region["X"]))
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want[(..., *window)])


def test_a_bad_request_is_refused(written):
    image_path, model_path, _ = written
    with pytest.raises(sm.ScopeMLError, match="outside the image"):
        sm.predict_region(image_path, model_path, {"Y": (400, 500), "X": (0, 10)})
    with pytest.raises(sm.ScopeMLError, match=r"Y \(0.5, 50.9\): give \(start, stop\) as two int"):
        sm.predict_region(image_path, model_path, {"y": (0.5, 50.9)})  # was cut to 0..50
    with pytest.raises(sm.ScopeMLError, match="this call returns labels: ask outputs='instances'"):
        sm.predict_region(image_path, model_path, instances="nucleus")  # labels came, unsaid
    with pytest.raises(sm.ScopeMLError, match="cannot blend"):
        sm.predict_region(image_path, model_path, REGIONS[1], options=sm.SegmentOptions(blend=True))
    with pytest.raises(sm.ScopeMLError, match="instances"):
        sm.predict_region(image_path, model_path, REGIONS[1], outputs="instances")


def test_the_kind_is_outputs_as_in_segment_and_the_old_output_keyword_still_works(written):
    image_path, model_path, expected = written
    region = REGIONS[1]
    window = (slice(*region["Y"]), slice(*region["X"]))
    want = expected["confidence"][0, 0][window]
    model = sm.open_model(model_path)
    with sm.open_image(image_path) as image:
        new = sm.predict_region(image, model, region, outputs=("confidence",))  # as segment's
        with pytest.warns(DeprecationWarning, match="'output' is renamed 'outputs'"):
            old = sm.predict_region(image, model, region, output="confidence")
        np.testing.assert_array_equal(new, want)
        np.testing.assert_array_equal(old, want)
        with pytest.raises(sm.ScopeMLError, match="returns one array"):
            sm.predict_region(image, model, region, outputs=("labels", "confidence"))
        with pytest.raises(sm.ScopeMLError, match="give outputs= only"):
            sm.predict_region(image, model, region, outputs="mask", output="confidence")


def test_progress_is_reported_and_a_cancel_stops_the_call(written):
    """``progress=`` as ``segment``'s: the whole-image statistics, then the batches of tiles
    counted to their total; a callable raising ``Cancelled`` stops the call with it."""
    image_path, model_path, _ = written
    events = []
    labels = sm.predict_region(
        image_path, model_path, {"Y": (0, 150), "X": (0, 170)}, tile_size=48,
        normalize="percentile:1,99", progress=events.append,
    )  # fmt: skip
    stages = [event.stage for event in events]
    assert stages.index("statistics") < stages.index("segment")
    done = [event for event in events if event.stage == "segment"]
    assert done[0].done == 0 and done[-1].done == done[-1].total > 1
    assert labels.shape == (150, 170)

    def cancel(event):
        if event.stage == "segment" and event.done == 1:
            raise sm.Cancelled("stopped")

    with pytest.raises(sm.Cancelled):
        sm.predict_region(image_path, model_path, tile_size=48, progress=cancel)


def test_the_default_scale_is_segments_auto_for_the_shipped_model(tmp_path):
    """``nuclei`` runs at ``scale="auto"`` by default: ``predict_region`` chooses the factor as
    ``segment`` does, so its labels are the store's where nuclei are twice the model's size."""
    image, _ = synthetic_nuclei((192, 192), density=0.0004, radius=(16, 20), seed=5)
    seg = sm.segment(image, "nuclei", tmp_path / "seg.ome.zarr")
    assert seg.scale == 0.5
    stored = seg.labels.read()[0, 0, 0, 0]
    for scale in (None, "auto", 0.5):
        np.testing.assert_array_equal(sm.predict_region(image, "nuclei", scale=scale), stored)
    region = sm.predict_region(image, "nuclei", {"Y": (30, 100), "X": (70, 190)})
    np.testing.assert_array_equal(region, stored[30:100, 70:190])
    again = sm.predict_region(image, "nuclei", scale=seg.auto_scale)  # the choice, not redone
    np.testing.assert_array_equal(again, stored)
    resumed = sm.SegmentOptions(workers=1, resume=True)  # segment's options as they were
    np.testing.assert_array_equal(sm.predict_region(image, "nuclei", options=resumed), stored)
    assert not np.array_equal(sm.predict_region(image, "nuclei", scale=1), stored)
