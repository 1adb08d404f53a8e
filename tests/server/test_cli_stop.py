"""How ``scopeml segment`` stops (nu2 findings 11, 12): SIGTERM, as Slurm, systemd and
``timeout`` send it, stops a run as Ctrl-C does (the resume message, exit 130, a resumable
partial); an unreachable ``--scheduler`` is found before any work, so no partial is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.model import convert_onnx
from scopeml.synthetic import synthetic_nuclei
from scopeml.tiling.store import partial_path

from .conftest import free_port, make_container
from .slow_model import slow_onnx

WAIT_S = 120.0


def _scopeml(*args: str, **kwargs) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **kwargs.pop("env", {})}
    return subprocess.Popen(
        [sys.executable, "-m", "scopeml", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs,
    )  # fmt: skip


def test_sigterm_stops_segment_as_ctrl_c_does(tmp_path):
    model = tmp_path / "slow.czann"
    convert_onnx(
        slow_onnx(trips=30_000), model, classes=["a", "b"], min_overlap=0,
        model_type="MultiClassSemanticSegmentation",
    )  # fmt: skip
    image, _ = synthetic_nuclei((384, 384), density=0.003, seed=4)
    tifffile.imwrite(tmp_path / "two.tif", np.stack([image[0]] * 2), metadata={"axes": "CYX"})
    out = tmp_path / "out.ome.zarr"
    args = ("segment", str(tmp_path / "two.tif"), "-m", str(model), "-o", str(out),
            "--tile-size", "64", "--batch-size", "1", "--workers", "1")  # fmt: skip
    run = _scopeml(*args)
    deadline = time.monotonic() + WAIT_S
    while not (partial_path(out) / "labels").exists() and time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()
        time.sleep(0.05)
    time.sleep(1.0)  # some tiles written, not all (36 tiles, about 0.1 s each)
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=WAIT_S)
    assert run.returncode == 130, stderr
    assert "stopped;" in stderr and "of 36 tiles are written" in stderr, stderr
    assert "--resume" in stderr
    assert partial_path(out).is_dir() and not out.exists()
    again = _scopeml(*args, "--resume")
    _, stderr = again.communicate(timeout=WAIT_S)
    assert again.returncode == 0, stderr
    assert out.is_dir() and not partial_path(out).exists()


def test_an_unreachable_scheduler_leaves_no_partial_output(tmp_path):
    pytest.importorskip("distributed")
    model = make_container(tmp_path / "unet.czann")
    image, _ = synthetic_nuclei((128, 128), density=0.003, seed=4)
    tifffile.imwrite(tmp_path / "a.tif", image[0])
    out = tmp_path / "out.ome.zarr"
    run = _scopeml(
        "segment", str(tmp_path / "a.tif"), "-m", str(model), "-o", str(out),
        "--normalize", "percentile:1,99.8", "--scheduler", f"tcp://127.0.0.1:{free_port()}",
        env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"},
    )  # fmt: skip
    _, stderr = run.communicate(timeout=WAIT_S)
    assert run.returncode == 2, stderr
    assert "cannot reach the dask scheduler" in stderr, stderr
    assert not partial_path(out).exists() and not out.exists()
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["a.tif", "unet.czann"]
