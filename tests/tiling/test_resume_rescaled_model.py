"""A resume refused for another scale names the scale, not "another model" (a model run at
scale 0.5 is recorded as ``NAME at scale 0.5`` with its halo scaled); two models of one name at
one scale are still said to differ, never with an empty reason."""

from __future__ import annotations

import pytest

from scopeml.errors import IncompleteOutputError
from scopeml.tiling.store import check_same_run

BASE = {"format": 2, "image": {"path": "/a.tif"}, "normalization": None,
        "image_view": {"scene": None, "channels": None}}  # fmt: skip


def refused(old_model, new_model, old_scale=None, new_scale=None) -> str:
    old = {**BASE, "model": old_model, "options": {"scale": old_scale}}
    new = {**BASE, "model": new_model, "options": {"scale": new_scale}}
    with pytest.raises(IncompleteOutputError) as caught:
        check_same_run(old, new, path="o.ome.zarr.partial")
    return str(caught.value.problem)


def model(name: str, halo: int) -> dict:
    return {"name": name, "classes": ["bg", "fg"], "halo": [halo, halo], "tile_step": [1, 1]}


def test_another_scale_is_said_as_the_scale():
    said = refused(model("pc", 8), model("pc at scale 0.5", 16), None, 0.5)
    assert said == (
        "cannot resume: the output comes from a different run: options.scale: None (recorded) "
        "vs 0.5 (now); pass --overwrite (overwrite=True) to start again"
    )


def test_two_models_of_one_name_are_said_to_differ():
    said = refused(model("pc", 8), model("pc", 16))
    assert "the model 'pc' is not the one the run started with" in said, said
