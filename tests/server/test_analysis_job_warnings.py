"""An analysis job's ``warnings`` say what every image it finished warned of, those of a run
that was cancelled too: a run says its line for the images read in order (their files name no
channels) only as it ends, of the images it analysed, so a job cancelled after 3 of 6 images
said nothing, and its resumed run named only the last 3 (the results' ``warnings.csv`` had 6)."""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from scopeml.client import Client
from scopeml.model import convert_onnx

from .conftest import ServerProcess, own_server
from .slow_model import slow_onnx

WAIT_S = 300.0
IMAGES = 6
SETTINGS = """\
version: 1
channels: [DNA, ER]
classes:
  - name: nucleus
    segmenter: {kind: model, model: models/slow.czann, class: nucleus, channels: [DNA, ER]}
"""
READ = "read C0 as DNA, C1 as ER (in order)"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Plain two-channel TIFFs (their files name no channels) and an identity model slow
    enough (about 1.5 s an image) to cancel its analysis between two images."""
    root = tmp_path_factory.mktemp("analysis-warnings-root")
    (root / "models").mkdir()
    convert_onnx(
        slow_onnx(trips=600_000), root / "models" / "slow.czann", min_overlap=0,
        classes=["background", "nucleus"], model_type="MultiClassSemanticSegmentation",
    )  # fmt: skip
    (root / "plate").mkdir()
    rng = np.random.default_rng(7)
    for index in range(IMAGES):
        pixels = rng.integers(0, 900, (2, 64, 64)).astype(np.uint16)
        tifffile.imwrite(root / "plate" / f"s{index}.tif", pixels, metadata={"axes": "CYX"})
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[ServerProcess]:
    yield from own_server(tmp_path_factory, "analysis-warnings", "--allowed-root", str(root))


def channels_read(job: dict) -> list[str]:
    return [line for line in job["warnings"] if "name no channels" in line]


def test_a_jobs_warnings_keep_every_images_across_a_cancel_and_a_resume(server, root, tmp_path):
    settings = tmp_path / "plain.yaml"
    settings.write_text(SETTINGS)
    with Client(server.url, server.tokens["alice"]) as client:
        job_id = client.submit_analysis(settings, image_paths=["plate"])["id"]
        deadline = time.monotonic() + WAIT_S
        while client.job(job_id)["done"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        cancelled = client.cancel_job(job_id)
        assert cancelled["status"] == "cancelled", cancelled
        said = channels_read(cancelled)  # the images finished before the cancel
        assert len(said) == 1, cancelled["warnings"]
        found = re.fullmatch(rf"(\d) images name no channels \(plate/s0.tif, plate/s1.tif and "
                             rf"\d more\): {re.escape(READ)}", said[0])  # fmt: skip
        assert found and 3 <= int(found[1]) < IMAGES, said
        client.resume_job(job_id)
        with warnings.catch_warnings(record=True) as given:  # wait_job gives each line once
            warnings.simplefilter("always")
            done = client.wait_job(job_id, timeout=WAIT_S)
        assert str(given[-1].message).endswith(channels_read(done)[-1]), given
        assert done["status"] == "done", done["error"]
        assert channels_read(done) == [  # every image, said once: no line of part of them
            f"{IMAGES} images name no channels (plate/s0.tif, plate/s1.tif and 4 more): {READ}"
        ], done["warnings"]
        results = client.download_result(job_id, tmp_path / "served")
    table = pd.read_csv(results / "summary" / "warnings.csv")
    assert sorted(table["file"]) == [f"plate/s{index}.tif" for index in range(IMAGES)]
    assert not [line for line in done["warnings"] if str(root) in line]
