"""A tile with NaN or infinite pixels sent to ``POST /models/{id}/predict`` answers as a local
run of the same model does (:func:`scopeml.tiling.kernel.mask_invalid`): those pixels are read
as 0 and answer 0 (every class's probability, label 0), the rest of the tile is unharmed, not
every probability NaN."""

from __future__ import annotations

import numpy as np

from scopeml.io.nonfinite import replace_nonfinite
from scopeml.model import load_model


def test_nonfinite_pixels_answer_zero_and_leave_the_rest_of_the_tile(alice, container):
    model_id = alice.upload_model(container)["id"]
    batch = np.random.default_rng(3).random((2, 1, 32, 64), np.float32) * 100
    batch[0, 0, 5, 7], batch[1, 0, 20, 30] = np.nan, np.inf
    probabilities = alice.predict_tile(model_id, batch)
    invalid = np.stack([replace_nonfinite(tile)[1] for tile in batch])
    replaced = np.stack([replace_nonfinite(tile)[0] for tile in batch])
    expected = np.where(invalid[:, None], 0, load_model(container).predict(replaced))
    assert np.isfinite(probabilities).all()
    np.testing.assert_array_equal(probabilities, expected)
    labels = alice.predict_tile(model_id, batch, labels=True)
    assert labels[0, 5, 7] == labels[1, 20, 30] == 0
    assert (labels[~invalid] > 0).all()  # every other pixel has a class
    one = alice.predict_tile(model_id, batch[0])  # a single tile, C×Y×X
    np.testing.assert_array_equal(one, expected[0])
    alice.delete_model(model_id)
