"""A job's ``scale`` takes ``"auto"`` as ``segment`` does; the pixel bound (``--max-job-pixels``)
counts ×1 at submit and, once the job's process has chosen the factor, the image × factor²
before the engine runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from scopeml.api import segment
from scopeml.client import Client, ServerResponseError
from scopeml.io import open_image
from scopeml.model import open_model
from scopeml.model.registry import resolve_model
from scopeml.tiling.size import auto_scale, recorded_auto_scale

from .conftest import ServerProcess, own_server

LIMIT = 200_000  # pixels: 128² × 3² fits, 256² × 3² does not
WAIT_S = 300.0


def shrunk_scene(size: int, seed: int) -> np.ndarray:
    """A synthetic scene of ``2 × size`` pixels shrunk to ``size``: nuclei of ~7 px, which
    ``auto`` magnifies for the shipped ``nuclei`` (20 px)."""
    from skimage.transform import rescale

    from scopeml.synthetic import realistic_nuclei

    image, _ = realistic_nuclei((2 * size, 2 * size), seed=seed)
    plane = image.reshape(image.shape[-2:]).astype(np.float32)
    small = rescale(plane, 0.5, order=1, preserve_range=True, anti_aliasing=True)
    return np.round(np.clip(small, 0, None) * 1000).astype(np.uint16)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("auto-images")
    tifffile.imwrite(root / "small.tif", shrunk_scene(128, seed=3))
    tifffile.imwrite(root / "large.tif", shrunk_scene(256, seed=11))
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, root) -> Iterator[ServerProcess]:
    yield from own_server(
        tmp_path_factory, "auto", "--allowed-root", str(root), "--max-job-pixels", str(LIMIT)
    )


@pytest.fixture(scope="module")
def client(server) -> Iterator[Client]:
    with Client(server.url, server.tokens["alice"]) as client:
        yield client


def chosen(path: Path) -> float:
    with open_image(path) as image:
        return auto_scale(image, open_model(resolve_model("nuclei"))).scale


def test_a_job_at_scale_auto_equals_a_local_run(client, root, tmp_path):
    assert chosen(root / "small.tif") > 1  # the job magnifies: the check below counts it
    job = client.wait_job(client.submit_job("nuclei", image_path="small.tif", scale="auto")["id"])
    assert job["status"] == "done", job["error"]
    result = client.download_result(job["id"], tmp_path / "served")
    local = segment(root / "small.tif", "nuclei", tmp_path / "local.ome.zarr", scale="auto")
    assert recorded_auto_scale(result) == recorded_auto_scale(local)  # info shows auto's choice
    np.testing.assert_array_equal(
        zarr.open_array(str(result / "labels" / "0"), mode="r")[...],
        zarr.open_array(str(local / "labels" / "0"), mode="r")[...],
    )


def test_a_scale_neither_a_number_nor_auto_is_refused(client):
    before = len(client.list_jobs())
    for bad in ("big", "2", True, 100):
        with pytest.raises(ServerResponseError) as err:
            client.submit_job("nuclei", image_path="small.tif", scale=bad)
        assert err.value.status_code == 422
        assert "scale must be a number from 0.125 to 8 or 'auto'" in str(err.value), err.value
    assert len(client.list_jobs()) == before  # nothing queued


@pytest.mark.parametrize("options", [{"scale": "auto"}, {}], ids=["auto", "model-default"])
def test_auto_past_the_pixel_limit_fails_the_job_with_the_reason(client, root, options):
    factor = chosen(root / "large.tif")
    assert 256 * 256 <= LIMIT < 256 * 256 * factor**2  # accepted at submit, over once chosen
    job = client.wait_job(client.submit_job("nuclei", image_path="large.tif", **options)["id"])
    assert job["status"] == "failed"
    error = job["error"]
    assert error.startswith(f"large.tif: scale auto chose {factor:g} (objects ~"), error
    assert f"{256 * 256 * factor**2:,.0f} pixels > --max-job-pixels {LIMIT:,}" in error, error
    assert str(root) not in error
    assert job["done"] in (0, None)  # refused before the engine ran a tile


def nuclei_settings(folder: Path, scale: str) -> Path:
    path = folder / "nuclei.yaml"
    path.write_text(
        "version: 1\nchannels: [C0]\nclasses:\n  - name: nucleus\n    segmenter:\n"
        "      kind: model\n      model: nuclei\n      class: nucleus\n"
        f"      channels: [C0]\n{scale}"
    )
    return path


@pytest.mark.parametrize("scale", ["      scale: auto\n", ""], ids=["auto", "model-default"])
def test_an_analysis_at_auto_past_the_pixel_limit_fails_before_any_image(
    client, root, tmp_path, scale
):
    settings = nuclei_settings(tmp_path, scale)
    factor = chosen(root / "large.tif")
    pixels = 128 * 128 * chosen(root / "small.tif") ** 2 + 256 * 256 * factor**2  # as each chose
    job = client.submit_analysis(settings, image_paths=["small.tif", "large.tif"])
    job = client.wait_job(job["id"], timeout=WAIT_S)
    assert job["status"] == "failed"
    error = job["error"]
    assert error.startswith(f"scale auto chose {factor:g} for large.tif (objects ~"), error
    assert f"2 images come to {pixels:,.0f} pixels > --max-job-pixels {LIMIT:,}" in error
    assert str(root) not in error


def test_an_analysis_at_auto_within_the_limit_runs(client, root, tmp_path):
    settings = nuclei_settings(tmp_path, "      scale: auto\n")
    job = client.submit_analysis(settings, image_paths=["small.tif"])
    job = client.wait_job(job["id"], timeout=WAIT_S)
    assert job["status"] == "done", job["error"]
    results = client.download_result(job["id"], tmp_path / "results")
    counts = json.loads(next(results.rglob("record.json")).read_text())["counts"]
    assert counts["nucleus"] > 0
