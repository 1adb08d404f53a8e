"""An analysis job uses the model files as they are when it runs (a file replaced between two
jobs is the new model), its submit check counts pixels with the settings' ``axes``, and its
models' classes and channels are checked at submit (stop 18)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from scopeml.analysis import run_analysis
from scopeml.client import Client, ServerResponseError
from scopeml.synthetic import synthetic_nuclei
from tests.files import replace_file

from .conftest import ServerProcess, make_container, own_server

WAIT_S = 240.0
SHAPE = (64, 80)
LIMIT = 8000  # pixels per job: one 64 × 80 plane (5120) fits, two do not

SETTINGS = """\
version: 1
channels: [C0]
classes:
  - name: blob
    segmenter:
      kind: model
      model: models/m.czann
      class: c1
      channels: [C0]
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("analysis-submit-root")
    (root / "models").mkdir()
    make_container(root / "models" / "first.czann", n_classes=3, seed=0)
    make_container(root / "models" / "second.czann", n_classes=2, seed=4)
    image, _ = synthetic_nuclei(SHAPE, density=0.004, seed=5)
    tifffile.imwrite(root / "cells.tif", image[0])
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[ServerProcess]:
    yield from own_server(
        tmp_path_factory,
        "analysis-submit",
        *("--allowed-root", str(root), "--max-job-pixels", str(LIMIT)),
    )


@pytest.fixture(scope="module")
def alice(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.tokens["alice"]) as client:
        yield client


def write(folder: Path, text: str, name: str = "analysis.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def table(folder: Path) -> pd.DataFrame:
    found = pd.read_csv(folder / "tables" / "blob.csv")
    return found.drop(columns=["image"]).select_dtypes("number")


def test_a_model_file_replaced_between_two_jobs_is_the_new_model(alice, root, tmp_path):
    model = root / "models" / "m.czann"
    settings = write(tmp_path, SETTINGS)
    expected = []
    for index, source in enumerate(("first", "second")):
        shutil.copy(root / "models" / f"{source}.czann", tmp_path / "m.czann")
        local = write(tmp_path, SETTINGS.replace("models/m.czann", str(tmp_path / "m.czann")),
                      "local.yaml")  # fmt: skip
        run_analysis(local, [root / "cells.tif"], tmp_path / f"local-{index}", workers=1)
        expected.append(table(tmp_path / f"local-{index}"))
    assert not expected[0].equals(expected[1])  # the two models find other objects
    for index, source in enumerate(("first", "second")):
        replace_file(root / "models" / f"{source}.czann", model)
        job = alice.submit_analysis(settings, image_paths=["cells.tif"])
        done = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.2)
        assert done["status"] == "done" and done["error"] is None, done
        results = alice.download_result(job["id"], tmp_path / f"remote-{index}")
        pd.testing.assert_frame_equal(table(results), expected[index])
        alice.delete_job(job["id"])


THRESHOLD_CYX = """\
version: 1
axes: CYX
channels: [C1]
classes:
  - name: blob
    segmenter:
      kind: threshold
      channel: C1
      method: otsu
"""


def test_the_submit_size_check_reads_the_images_with_the_settings_axes(alice, root, tmp_path):
    """A 2-page TIFF the settings call ``CYX`` is one plane of two channels (5120 pixels, within
    the limit); read as the file says (two Z planes, 10240) it was refused at submit."""
    image, _ = synthetic_nuclei(SHAPE, density=0.004, seed=6)
    pages = np.stack([np.zeros_like(image[0]), image[0]])
    tifffile.imwrite(root / "two-pages.tif", pages, metadata=None)
    job = alice.submit_analysis(write(tmp_path, THRESHOLD_CYX), image_paths=["two-pages.tif"])
    done = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.2)
    assert done["status"] == "done" and done["error"] is None, done
    results = alice.download_result(job["id"], tmp_path / "remote")
    assert len(pd.read_csv(results / "tables" / "blob.csv")) > 2  # C1's nuclei, not C0's zeros
    alice.delete_job(job["id"])
    as_planes = THRESHOLD_CYX.replace("axes: CYX\n", "").replace("C1", "C0")
    with pytest.raises(ServerResponseError) as err:  # the same file read as two planes
        alice.submit_analysis(write(tmp_path, as_planes), image_paths=["two-pages.tif"])
    assert err.value.status_code == 422 and "--max-job-pixels" in str(err.value), err.value
    assert "two-pages.tif: 2 × 64 × 80" in str(err.value), err.value


def test_a_scene_the_settings_name_is_counted_and_analysed(alice, root, tmp_path):
    """Scenes of different sizes open one at a time: the submit check counts the settings'
    ``scene`` (here over the limit: refused by name), or every scene where they name none, and
    a scene within it is analysed."""
    image, _ = synthetic_nuclei(SHAPE, density=0.004, seed=7)
    with tifffile.TiffWriter(root / "scenes.ome.tif", ome=True) as tif:
        tif.write(image[0], metadata={"axes": "YX"})
        tif.write(np.zeros((2, *SHAPE), image.dtype), metadata={"axes": "ZYX"})
    settings = THRESHOLD_CYX.replace("axes: CYX\n", "").replace("C1", "C0")
    with pytest.raises(ServerResponseError) as err:  # scene 1: two planes, over the limit
        alice.submit_analysis(write(tmp_path, settings + "scene: 1\n"),
                              image_paths=["scenes.ome.tif"])  # fmt: skip
    assert err.value.status_code == 422 and "scenes.ome.tif: 2 × 64 × 80" in str(err.value)
    with pytest.raises(ServerResponseError) as err:  # every scene, each on its own: 3 planes
        alice.submit_analysis(write(tmp_path, settings), image_paths=["scenes.ome.tif"])
    assert "scenes.ome.tif: 64 × 80 + 2 × 64 × 80" in str(err.value), err.value
    job = alice.submit_analysis(write(tmp_path, settings + "scene: 0\n"),
                                image_paths=["scenes.ome.tif"])  # fmt: skip
    done = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.2)
    assert done["status"] == "done" and done["error"] is None, done
    results = alice.download_result(job["id"], tmp_path / "remote")
    assert len(pd.read_csv(results / "tables" / "blob.csv")) > 2
    alice.delete_job(job["id"])


@pytest.mark.parametrize(
    ("change", "line", "says"),
    [
        (("class: c1", "class: c7"), "line 8: classes[0].segmenter.class:", "'c7'"),
        (
            ("channels: [C0]\n", "channels: [C0, C1]\n"),
            "line 9: classes[0].segmenter.channels:",
            "expects 1 channel(s); the settings give 2 (C0, C1)",
        ),
    ],
)
def test_a_model_the_settings_cannot_use_answers_422_at_submit(
    alice, server, root, tmp_path, change, line, says
):
    """A class the model lacks, channels it does not take: refused at submit by the check the
    job's run makes (was: queued, then failed when it ran)."""
    text = SETTINGS.replace("models/m.czann", "models/first.czann").replace(*change)
    before = len(alice.list_jobs())
    with pytest.raises(ServerResponseError) as err:
        alice.submit_analysis(write(tmp_path, text, "mine.yaml"), image_paths=["cells.tif"])
    message = str(err.value)
    assert err.value.status_code == 422, message
    assert f"mine.yaml: {line}" in message and says in message, message
    assert str(root) not in message and str(server.data_dir) not in message, message
    assert len(alice.list_jobs()) == before  # nothing queued


def test_a_channel_the_first_image_lacks_answers_422_at_submit(alice, server, root, tmp_path):
    """As the CLI checks the first image's channels before any image: refused at submit,
    naming the settings line and the image by its name below the root (was: queued, then
    failed when it ran)."""
    text = SETTINGS.replace("models/m.czann", "models/second.czann")
    text = text.replace("channels: [C0]\nclasses", "channels: [DAPI]\nclasses")
    text = text.replace("      channels: [C0]", "      channels: [DAPI]")
    pixels = tifffile.imread(root / "cells.tif")  # named GFP: not read as DAPI by position
    named = {"axes": "YX", "Channel": {"Name": ["GFP"]}}
    tifffile.imwrite(root / "gfp.ome.tif", pixels, metadata=named)
    before = len(alice.list_jobs())
    with pytest.raises(ServerResponseError) as err:
        alice.submit_analysis(write(tmp_path, text, "dapi.yaml"), image_paths=["gfp.ome.tif"])
    message = str(err.value)
    assert err.value.status_code == 422, message
    assert "dapi.yaml: line 2: channels[0]: channel 'DAPI' is not in gfp.ome.tif (it has GFP)" in (
        message
    ), message
    (root / "gfp.ome.tif").unlink()  # the module's other tests see the root as it was
    assert str(root) not in message and str(server.data_dir) not in message, message
    assert len(alice.list_jobs()) == before  # nothing queued
