"""``bench/eval_nuclei.py``'s border rule for references that leave border nuclei out: a nucleus
found just short of the border, whose reference touches it, is not a false object."""

from __future__ import annotations

import numpy as np

from tests.files import load_script


def test_border_objects_are_judged_by_the_reference() -> None:
    bench = load_script("bench/eval_nuclei.py")
    truth = np.zeros((40, 40), np.uint16)
    truth[10:20, 10:20] = 1  # inside: scored
    truth[30:40, 5:15] = 2  # touches the border: left out
    found = np.zeros_like(truth)
    found[11:20, 10:20] = 7  # the inside nucleus
    found[31:39, 5:15] = 8  # the border nucleus found just short of the border
    found[0:5, 30:40] = 9  # a false object at the border: not scored either
    found[25:28, 25:28] = 10  # a false object inside: scored
    found[12:20, 0:3] = 11  # touches the border, mostly outside any reference: not scored
    kept_found, kept_truth = bench.border_cleared(found, truth)
    assert set(np.unique(kept_truth)) == {0, 1}
    assert set(np.unique(kept_found)) == {0, 7, 10}
    scores = bench.scores(kept_found, kept_truth)[0.5]
    assert scores == (1, 2, 1)  # matched, found, true
    # clearing each side on its own would have scored the border nucleus as a false object
    from skimage.segmentation import clear_border

    assert bench.scores(clear_border(found), clear_border(truth))[0.5] == (1, 3, 1)
