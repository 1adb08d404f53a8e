"""A job at ``scale`` auto over an image where the estimate finds no objects (constant) runs at
scale 1 and says so once in the server's log, as ``segment`` warns of it: the job's process
makes the estimate once (``check_job_inputs``) and hands it to ``segment``, which does not
estimate again."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.client import Client
from scopeml.io import open_image
from scopeml.model import load_model
from scopeml.model.registry import resolve_model
from scopeml.server._job_child import check_job_inputs
from scopeml.tiling.options import SegmentOptions
from scopeml.tiling.size import recorded_auto_scale

from .conftest import ServerProcess, own_server

WAIT_S = 300.0
SAID = "scale auto found no objects to measure"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("auto-warning-images")
    tifffile.imwrite(root / "flat-given.tif", np.full((64, 64), 700, np.uint16))
    tifffile.imwrite(root / "flat-default.tif", np.full((64, 64), 700, np.uint16))
    pages = np.random.default_rng(0).integers(0, 900, (5, 64, 64)).astype(np.uint16)
    tifffile.imwrite(root / "pages.tif", pages)  # 5 pages of unknown kind: read as Z, said
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, root) -> Iterator[ServerProcess]:
    yield from own_server(tmp_path_factory, "auto-warning", "--allowed-root", str(root))


@pytest.mark.parametrize(
    ("name", "options"),
    [("flat-given.tif", {"scale": "auto"}), ("flat-default.tif", {})],
    ids=["auto", "model-default"],
)
def test_a_job_whose_auto_finds_no_objects_warns_once_in_the_log(
    server, root, tmp_path, name, options
):
    with Client(server.url, server.tokens["alice"]) as client:
        job = client.wait_job(
            client.submit_job("nuclei", image_path=name, **options)["id"], timeout=WAIT_S
        )
        assert job["status"] == "done", job["error"]
        result = client.download_result(job["id"], tmp_path / "served")
    chosen = recorded_auto_scale(result)
    assert (chosen.scale, chosen.diameter) == (1.0, None)  # recorded as auto's choice
    said = [line for line in server.log.read_text().splitlines() if SAID in line]
    mine = [line for line in said if f"{name}: {SAID}" in line]
    assert len(mine) == 1, said  # once: the estimate is made once and not hidden
    assert "running at scale 1" in mine[0]
    assert mine[0].startswith("job warning: "), mine  # one line, not naming a source line
    # and the job's record tells its client, by the image's name below the root
    told = [line for line in job["warnings"] if SAID in line]
    assert len(told) == 1 and told[0].startswith(f"{name}: {SAID}"), job["warnings"]
    assert str(root) not in told[0]


def test_check_job_inputs_warns_of_no_objects_and_returns_scale_1(root, tmp_path):
    model = load_model(resolve_model("nuclei"))
    settings = SegmentOptions(scale="auto", resume=True, quiet=True)
    with open_image(root / "flat-given.tif") as image, warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        chosen = check_job_inputs(image, model, settings, tmp_path / "out.ome.zarr", {})
    assert (chosen.scale, chosen.diameter) == (1.0, None)
    said = [str(x.message) for x in w if SAID in str(x.message)]
    assert said == [f"{root / 'flat-given.tif'}: {SAID} (a constant, non-finite or tiny "
                    "image); running at scale 1"]  # fmt: skip


def test_a_jobs_warnings_name_job_options_not_flags(server, root):
    """What the library advises with flags and Python keywords reaches a client as the job
    option to set (``axes``), without the command line's ``--axes`` or the Python advice."""
    with Client(server.url, server.tokens["alice"]) as client:
        job = client.wait_job(
            client.submit_job("nuclei", image_path="pages.tif", scale=1)["id"], timeout=WAIT_S
        )
    assert job["status"] == "done", job["error"]
    told = [line for line in job["warnings"] if "pages of unknown kind" in line]
    assert len(told) == 1, job["warnings"]
    assert told[0].endswith(
        "if they are time points or channels, pass the job option axes TYX or CYX"
    ), told
