"""Every model, classifier and table written from Python keeps an existing file unless told
``overwrite=True``, as the command line's ``--overwrite`` does: one check for all of them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scopeml.errors import InvalidRequestError, ModelNotFoundError
from scopeml.model import convert_container, read_container, write_container
from scopeml.model.testing import tiny_unet_onnx
from scopeml.objects import ObjectClassifier
from scopeml.objects.table import write_table
from scopeml.pixel import load_classifier, train_classifier
from tests.model.model_builders import unet_metadata


def _pixel_classifier(seed: int):
    image = np.random.default_rng(seed).random((1, 16, 16)).astype(np.float32)
    labels = np.zeros((16, 16), np.uint8)
    labels[:4], labels[-4:] = 1, 2
    return train_classifier(image, labels, features="gaussian_smoothing:1", n_estimators=2)


def _writers():
    table = pd.DataFrame({"area": [1.0, 2.0, 8.0, 9.0], "kind": list("aabb")})
    return {
        "pixel classifier": lambda path, **kw: _pixel_classifier(0).save(path, **kw),
        "object classifier": lambda path, **kw: ObjectClassifier.train(
            table, "kind", n_estimators=2
        ).save(path, **kw),
        "container": lambda path, **kw: write_container(
            path, tiny_unet_onnx(), unet_metadata(), **kw
        ),
        "table": lambda path, **kw: write_table(table, path, **kw),
        "converted container": lambda path, **kw: convert_container("nuclei", path, **kw),
    }


@pytest.mark.parametrize("kind", list(_writers()))
def test_an_existing_file_is_kept_unless_overwrite(kind, tmp_path):
    write = _writers()[kind]
    path = tmp_path / ("out.csv" if kind == "table" else "out.model")
    path.write_bytes(b"mine")
    with pytest.raises(InvalidRequestError, match=r"out.*: output exists; pass --overwrite"):
        write(path)
    assert path.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left
    assert write(path, overwrite=True) == path and path.read_bytes() != b"mine"
    folder = tmp_path / ("folder.csv" if kind == "table" else "folder")
    folder.mkdir()
    with pytest.raises(InvalidRequestError, match=r"folder.*: is a folder; expected a file name"):
        write(folder, overwrite=True)


def test_a_pixel_classifier_replaced_on_request_is_the_new_one(tmp_path):
    path = _pixel_classifier(0).save(tmp_path / "px.czseg")
    second = _pixel_classifier(1)
    with pytest.raises(InvalidRequestError, match="output exists"):
        second.save(path)
    image = np.random.default_rng(2).random((1, 1, 16, 16)).astype(np.float32)
    before = load_classifier(path).predict(image)
    second.save(path, overwrite=True)
    after = load_classifier(path).predict(image)
    np.testing.assert_array_equal(after, second.predict(image))
    assert not np.array_equal(before, after)


def test_a_conversion_takes_a_built_in_name_and_never_replaces_its_source(tmp_path):
    from scopeml.model.registry import BUILTIN_MODELS

    legacy = convert_container("nuclei", tmp_path / "nuclei.czseg", spatial=(256, 256))
    assert (
        read_container(legacy).metadata.classes
        == read_container(BUILTIN_MODELS["nuclei"].path).metadata.classes
    )
    with pytest.raises(ModelNotFoundError, match=r"nucleii: no such model.*did you mean 'nuclei'"):
        convert_container("nucleii", tmp_path / "x.czann")
    with pytest.raises(InvalidRequestError, match="the output would replace the input"):
        convert_container(legacy, legacy, overwrite=True)
