"""The realistic training scenes: seeded, varied, with exact labels of the drawn nuclei."""

from __future__ import annotations

import numpy as np

from scopeml.synthetic import realistic_nuclei


def test_same_seed_same_scene_other_seed_other_scene() -> None:
    image, labels = realistic_nuclei((128, 160), seed=5)
    again, labels_again = realistic_nuclei((128, 160), seed=5)
    other, _ = realistic_nuclei((128, 160), seed=6)
    assert image.shape == (1, 128, 160) and labels.shape == (128, 160)
    assert image.dtype == np.float32 and labels.dtype == np.int32
    np.testing.assert_array_equal(image, again)
    np.testing.assert_array_equal(labels, labels_again)
    assert not np.array_equal(image, other)


def test_scenes_span_sizes_crowding_and_brightness() -> None:
    radii, counts, contrasts = [], [], []
    for seed in range(12):
        image, labels = realistic_nuclei((256, 256), seed=seed)
        ids, areas = np.unique(labels[labels > 0], return_counts=True)
        assert np.array_equal(ids, np.arange(1, ids.size + 1))  # numbered 1..N
        radii.append(np.sqrt(np.median(areas) / np.pi))
        counts.append(ids.size)
        inside = np.array([image[0][labels == i].mean() for i in ids])
        contrasts.append(inside.max() / max(inside.min(), 1e-6))
        # nuclei are brighter than their background on average
        assert inside.mean() > image[0][labels == 0].mean()
    assert min(radii) < 8 and max(radii) > 15  # small and large nuclei across scenes
    assert max(counts) > 40  # some scenes are crowded
    assert np.median(contrasts) > 3  # dim nuclei beside bright ones


def test_touching_nuclei_are_separate_instances() -> None:
    from scipy import ndimage as ndi

    merged = 0
    for seed in range(6):
        _, labels = realistic_nuclei((256, 256), seed=seed)
        _, n_blobs = ndi.label(labels > 0)
        merged += int(labels.max()) - n_blobs
    assert merged > 10  # many nuclei touch another one, yet each keeps its own id


def test_synthetic_nuclei_without_overlap_draws_every_nucleus_whole():
    """``overlap=False`` never paints a nucleus over another, so each true object is a whole
    (convex) ellipse; the default overlapping draw leaves bitten ones at the same density."""
    from skimage.measure import regionprops

    from scopeml.synthetic import synthetic_nuclei

    def least_solid(labels):
        return min(r.solidity for r in regionprops(labels) if r.area > 30)

    _, overlapping = synthetic_nuclei((512, 512), seed=2)
    _, apart = synthetic_nuclei((512, 512), seed=2, overlap=False)
    assert least_solid(overlapping) < 0.85
    assert least_solid(apart) > 0.9
    assert apart.max() > 0.9 * overlapping.max()  # placed elsewhere, not left out


def test_some_scenes_have_cell_bodies_and_a_saturated_camera_left_out_of_the_labels() -> None:
    """Real nuclear stains light the cytoplasm dimly and saturate on bright nuclei: some scenes
    draw both, and the labels still hold only the nuclei (the ring around them is background)."""
    from scipy import ndimage as ndi

    rings, saturated = [], 0
    for seed in range(12):
        image, labels = realistic_nuclei((256, 256), seed=seed)
        plane = image[0]
        distance = ndi.distance_transform_edt(labels == 0)
        far = plane[distance > 20]
        rings.append(np.median(plane[(distance > 3) & (distance <= 6)]) / np.median(far))
        saturated += int((plane == plane.max()).sum() > 100)  # a flat top, not one noisy pixel
    assert max(rings) > 2 and min(rings) < 1.3  # lit cell bodies in some scenes, not in all
    assert 0 < saturated < 12


def test_cultured_scenes_light_every_cell_body_with_vesicles_and_bend_the_nuclei() -> None:
    """``cultured`` scenes draw a cell body around every nucleus (background in the labels), with
    bright vesicles in it, and bean-shaped or lobed nuclei: what a model must not cut into
    nuclei on a real culture; the scenes of the same seeds without it light fewer bodies."""
    from scipy import ndimage as ndi
    from skimage.measure import regionprops

    def body_contrast(plane, labels):
        distance = ndi.distance_transform_edt(labels == 0)
        far = plane[distance > 40] if (distance > 40).any() else plane[labels == 0]
        return np.median(plane[(distance > 2) & (distance <= 5)]) / max(np.median(far), 1e-6)

    lit = {True: 0, False: 0}
    solidity = {True: [], False: []}
    peaks = []
    for seed in range(8):
        for cultured in (True, False):
            image, labels = realistic_nuclei((256, 256), seed=seed, cultured=cultured)
            lit[cultured] += body_contrast(image[0], labels) > 1.3
            solidity[cultured] += [r.solidity for r in regionprops(labels) if r.area > 60]
            if cultured:  # vesicles: the brightest background pixels stand out from the body
                body = (labels == 0) & (ndi.distance_transform_edt(labels == 0) <= 5)
                peaks.append(np.percentile(image[0][body], 99.9) / np.median(image[0][body]))
    assert lit[True] == 8 and lit[False] < 8
    assert np.percentile(solidity[True], 10) < np.percentile(solidity[False], 10) - 0.02
    assert np.median(peaks) > 2


def test_speckled_scenes_mottle_some_nuclei_and_keep_the_labels() -> None:
    """``speckled`` draws the same scene with about half of the nuclei mottled by dense bright
    speckles: their brightness varies more inside (coefficient of variation), the others'
    stays as it was, and each is still one label."""

    def variation(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
        plane = image[0]
        return np.array([plane[labels == i].std() / plane[labels == i].mean()
                         for i in range(1, labels.max() + 1)])  # fmt: skip

    ratios = []
    for seed in (4, 9, 10):
        plain, labels = realistic_nuclei((256, 256), seed=seed)
        mottled, labels_mottled = realistic_nuclei((256, 256), seed=seed, speckled=True)
        np.testing.assert_array_equal(labels, labels_mottled)
        ratios.extend(variation(mottled, labels) / variation(plain, labels))
    ratios = np.array(ratios)
    assert (ratios > 1.25).sum() >= 4 and (abs(ratios - 1) < 0.05).sum() >= 3, ratios
