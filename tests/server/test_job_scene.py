"""A segment job runs one scene: on an image of several scenes of the same size, a job without
the option ``scene`` is refused at submit (422) in job-option words. It used to be accepted
(202) and then fail with the command line's "choose one with scene= (--scene)". An upload of
such a file, a job that gives ``scene``, and an analysis job (every scene) still run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from scopeml.api import segment
from scopeml.client import ServerResponseError
from scopeml.synthetic import synthetic_nuclei

REFUSED = (
    "scenes.ome.tif: the image has 2 scenes and a segment job runs one: give the job option "
    "scene (0–1), or submit an analysis, which does every scene"
)


@pytest.fixture(scope="module")
def scenes_path(image_root: Path) -> Path:
    """Two scenes of 64 × 80, different nuclei in each."""
    path = image_root / "same-size" / "scenes.ome.tif"
    path.parent.mkdir()
    with tifffile.TiffWriter(path, ome=True) as tif:
        for seed in (9, 10):
            image, _ = synthetic_nuclei((64, 80), density=0.004, seed=seed)
            tif.write(image[0], metadata={"axes": "YX"})
    return path


@pytest.fixture(scope="module")
def model_id(alice, container: Path) -> str:
    return alice.upload_model(container)["id"]


def test_a_job_without_scene_on_scenes_of_one_size_is_refused_at_submit(
    alice, model_id, scenes_path
):
    upload_id = alice.upload_image(scenes_path)  # an upload is not asked for a scene
    before = len(alice.list_jobs())
    for where in ({"image_path": "same-size/scenes.ome.tif"}, {"upload_id": upload_id}):
        with pytest.raises(ServerResponseError) as err:
            alice.submit_job(model_id, tile_size=64, **where)
        assert err.value.status_code == 422, err.value
        assert REFUSED in str(err.value) and "--scene" not in str(err.value)
    assert len(alice.list_jobs()) == before  # nothing queued to fail later


def test_a_job_with_scene_runs_that_scene(alice, model_id, container, scenes_path, tmp_path):
    job = alice.submit_job(model_id, image_path="same-size/scenes.ome.tif", tile_size=64, scene=1)
    done = alice.wait_job(job["id"], timeout=120, interval=0.1)
    assert done["status"] == "done", done
    remote = alice.download_result(job["id"], tmp_path)
    local = segment(scenes_path, container, tmp_path / "local.ome.zarr", tile_size=64, scene=1)
    labels = [zarr.open_array(store / "labels" / "0", mode="r")[...] for store in (remote, local)]
    assert labels[0].shape == (64, 80) and labels[0].max() > 0
    assert np.array_equal(*labels)


def test_an_analysis_job_does_every_scene_without_one(alice, scenes_path, tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        "version: 1\nchannels: [C0]\nclasses:\n  - name: blob\n"
        "    segmenter: {kind: threshold, channel: C0, method: otsu}\n"
    )
    job = alice.submit_analysis(settings, image_paths=["same-size/scenes.ome.tif"])
    done = alice.wait_job(job["id"], timeout=240, interval=0.2)
    assert done["status"] == "done" and done["error"] is None, done
