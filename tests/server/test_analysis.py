"""Analysis jobs on the server (issue #14 item 4): a settings file uploaded with server-side and
uploaded images runs as a job; its results zip holds what a local run writes; bad settings are
a one-line 422 naming the line; images outside the root are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from scopeml.analysis import run_analysis
from scopeml.client import ServerResponseError
from scopeml.synthetic import synthetic_nuclei

SETTINGS = """\
version: 1
channels: [C0]
classes:
  - name: blob
    segmenter:
      kind: threshold
      channel: C0
      method: otsu
    measurements:
      shape: true
      intensity: [C0]
"""


@pytest.fixture(scope="module")
def images(image_root: Path) -> list[Path]:
    paths = []
    for seed in (21, 22):
        image, _ = synthetic_nuclei((96, 112), density=0.003, seed=seed)
        paths.append(image_root / f"analysis-{seed}.tif")
        tifffile.imwrite(paths[-1], image[0])
    return paths


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("analysis-settings") / "blobs.yaml"
    path.write_text(SETTINGS)
    return path


def test_an_analysis_job_gives_the_local_results(alice, images, settings, tmp_path):
    upload = alice.upload_image(images[1])
    job = alice.submit_analysis(settings, image_paths=[images[0].name], upload_ids=[upload])
    assert job["model_id"] == "analysis" and job["options"]["settings"] == "blobs.yaml"
    assert str(images[0].parent) not in str(job)  # no server paths in the record
    with pytest.raises(ServerResponseError) as err:  # the job starts a process: still queued
        alice.delete_upload(upload)
    assert err.value.status_code == 409
    assert f"job {job['id']} (queued or running) reads this image: cancel" in str(err.value)
    finished = alice.wait_job(job["id"], timeout=180, interval=0.2)
    assert finished["status"] == "done", finished
    assert finished["error"] is None and finished["done"] == finished["total"] == 2
    results = alice.download_result(job["id"], tmp_path / "remote")
    assert results.name == f"{job['id']}-results"
    local = run_analysis(settings, images, tmp_path / "local")
    remote_table = pd.read_csv(results / "tables" / "blob.csv")
    local_table = pd.read_csv(tmp_path / "local" / "tables" / "blob.csv")
    assert len(remote_table) == len(local_table) == sum(c["blob"] for c in local.counts.values())
    assert len(local_table) > 4
    columns = [c for c in local_table.columns if c not in ("image",)]
    np.testing.assert_allclose(
        remote_table[columns].select_dtypes("number").to_numpy(),
        local_table[columns].select_dtypes("number").to_numpy(),
    )
    assert (results / "index.html").is_file()
    with pytest.raises(ServerResponseError) as err:  # not "this job measured no objects"
        alice.download_table(job["id"], tmp_path / "table")
    assert err.value.status_code == 404 and "an analysis keeps its tables" in str(err.value)
    alice.delete_job(job["id"])


def test_bad_settings_are_a_one_line_422_naming_the_line(alice, images, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SETTINGS.replace("method: otsu", "method: otsu\n      colour: red"))
    before = len(alice.list_jobs())
    with pytest.raises(ServerResponseError) as err:
        alice.submit_analysis(bad, image_paths=[images[0].name])
    assert err.value.status_code == 422
    message = str(err.value)
    assert "bad.yaml: line 9" in message and "colour" in message and "\n" not in message
    assert len(alice.list_jobs()) == before  # nothing queued


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("../outside.tif", "'..' is not allowed"),
        ("../{root}/{image}", "'..' is not allowed"),  # back inside: refused alike
        ("/etc/passwd", "an absolute path is not allowed"),
        ("{abs_root}/{image}", "an absolute path is not allowed"),  # inside: refused alike
        ("{abs_root}", "an absolute path is not allowed"),  # the root's folder itself
    ],
)
def test_analysis_images_stay_below_the_allowed_root(alice, settings, images, path, says):
    path = path.format(root=images[0].parent.name, image=images[0].name, abs_root=images[0].parent)
    with pytest.raises(ServerResponseError) as err:
        alice.submit_analysis(settings, image_paths=[path])
    assert err.value.status_code == 422 and says in str(err.value)


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("loop-a", "a loop of symbolic links"),
        ("loop-a/x.tif", "a loop of symbolic links"),
        ("d/" * 2045 + "x.tif", "longer than this server's file system takes"),
    ],
)
def test_a_loop_of_links_or_an_overlong_path_is_the_requests_problem(
    alice, settings, image_root, path, says
):
    """A job or an analysis on a loop of links, or on a path within the field's 4096
    characters that the root makes too long for the file system, was a plain-text 500 with
    the server's traceback in its log."""
    if not (image_root / "loop-a").is_symlink():
        (image_root / "loop-a").symlink_to("loop-b")
        (image_root / "loop-b").symlink_to("loop-a")
    for submit in (lambda: alice.submit_job("nuclei", image_path=path),
                   lambda: alice.submit_analysis(settings, image_paths=[path])):  # fmt: skip
        with pytest.raises(ServerResponseError) as err:
            submit()
        assert err.value.status_code == 422 and says in str(err.value)
        assert str(image_root) not in str(err.value)


def test_an_analysis_needs_an_image_and_a_small_settings_file(alice, images, tmp_path):
    settings = tmp_path / "s.yaml"
    settings.write_text(SETTINGS)
    with pytest.raises(ServerResponseError) as err:
        alice.submit_analysis(settings, image_paths=[])
    assert err.value.status_code == 422 and "at least one image" in str(err.value)
    huge = tmp_path / "huge.yaml"
    huge.write_text(SETTINGS + "#" * (300 * 1024))
    with pytest.raises(ServerResponseError) as err:
        alice.submit_analysis(huge, image_paths=[images[0].name])
    assert err.value.status_code == 413


def test_two_uploads_of_one_name_are_told_apart_in_the_results(alice, images, settings, tmp_path):
    twin = tmp_path / "same.tif"  # two different files, both called same.tif
    twin.write_bytes(images[1].read_bytes())
    same = tmp_path / "a" / "same.tif"
    same.parent.mkdir()
    same.write_bytes(images[0].read_bytes())
    uploads = [alice.upload_image(same), alice.upload_image(twin)]
    job = alice.submit_analysis(settings, upload_ids=uploads)
    assert alice.wait_job(job["id"], timeout=180, interval=0.2)["status"] == "done"
    results = alice.download_result(job["id"], tmp_path / "remote")
    files = pd.read_csv(results / "summary" / "counts.csv")["file"].tolist()
    assert sorted(files) == sorted(f"same.tif (upload {upload})" for upload in uploads)
    alice.delete_job(job["id"])
    for upload in uploads:
        alice.delete_upload(upload)


def test_an_analysis_job_says_how_its_pages_were_read_in_the_settings_words(
    alice, image_root, tmp_path
):
    """With a model class the job said nothing of a plain TIFF's pages read as Z: the
    server's pre-check, which opens the images quietly, had spent the one warning."""
    stack = np.stack([synthetic_nuclei((64, 64), seed=s)[0][0] for s in range(5)])
    tifffile.imwrite(image_root / "pages.tif", stack.astype(np.uint16))
    settings = tmp_path / "model.yaml"
    settings.write_text(
        "version: 1\nchannels: [C0]\nclasses:\n  - name: nucleus\n"
        "    segmenter: {kind: instances, model: nuclei}\n"
    )
    job = alice.submit_analysis(settings, image_paths=["pages.tif"])
    finished = alice.wait_job(job["id"], timeout=180, interval=0.2)
    assert finished["status"] == "done", finished
    said = [w for w in finished["warnings"] if "pages of unknown kind" in w]
    assert said == [
        "pages.tif: 5 pages of unknown kind read as Z (planes); if they are time points or "
        "channels, pass the settings' axes: TYX or CYX"
    ], finished["warnings"]
