"""An interrupted run (kill -9) resumes to the same output; a different run is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import zarr

from scopeml.api import open_model, segment
from scopeml.errors import IncompleteOutputError
from scopeml.tiling.store import partial_path
from tests.tiling.engine_doubles import FailingAfter, write_image_file, write_model_file

OUTPUTS = ("labels", "probabilities", "confidence")

# A run whose model sleeps per batch, so the test can kill it half-way.
SLOW_RUN = textwrap.dedent(
    """
    import sys, time
    from scopeml.api import open_model, segment

    model = open_model(sys.argv[2])

    class Slow:
        spec = model.spec
        path = model.path

        def predict(self, batch):
            time.sleep(0.05)
            return model.predict(batch)

    segment(sys.argv[1], Slow(), sys.argv[3], outputs=OUTPUTS, tile_size=16, batch_size=1,
            workers=1)
    """
).replace("OUTPUTS", repr(OUTPUTS))


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    image = write_image_file(
        tmp_path / "img.ome.tif", rng.integers(0, 900, (1, 120, 100)).astype(np.uint16)
    )
    model = write_model_file(tmp_path / "m.czann", seed=0)
    return image, model


def read_all(out):
    return {name: zarr.open_array(str(out / name / "0"), mode="r")[...] for name in OUTPUTS}


def test_killed_run_resumes_to_identical_output(files, tmp_path):
    image, model = files
    out = tmp_path / "killed.ome.zarr"
    done = partial_path(out) / ".scopeml-done"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RUN, str(image), str(model), str(out)])
    try:
        deadline = time.monotonic() + 120
        while not (done.is_dir() and len(os.listdir(done)) >= 5):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.kill()  # SIGKILL: no cleanup
    finally:
        proc.wait()
    n_done = len(os.listdir(done))
    assert not out.exists() and 5 <= n_done < 56  # 8 × 7 tiles of 16 px
    result = segment(image, model, out, outputs=OUTPUTS, tile_size=16, resume=True)
    reference = segment(image, model, tmp_path / "whole.ome.zarr", outputs=OUTPUTS, tile_size=16)
    assert result == out and not partial_path(out).exists()
    got, want = read_all(result), read_all(reference)
    for name in OUTPUTS:
        np.testing.assert_array_equal(got[name], want[name])


def test_resume_with_another_model_or_image_is_refused(files, tmp_path):
    image, model = files
    out = tmp_path / "o.ome.zarr"
    with pytest.raises(RuntimeError, match="power cut"):
        segment(
            image,
            FailingAfter(open_model(model), 3),
            out,
            tile_size=16,
            batch_size=1,
            workers=1,
        )
    assert len(os.listdir(partial_path(out) / ".scopeml-done")) == 3
    other_model = write_model_file(tmp_path / "other.czann", seed=1)
    with pytest.raises(
        IncompleteOutputError,
        match=r"different run: the run used the model 'unet-seed0', not 'unet-seed1'",
    ):
        segment(image, other_model, out, tile_size=16, resume=True)
    other_image = write_image_file(tmp_path / "other.ome.tif", np.zeros((1, 120, 100), np.uint16))
    with pytest.raises(IncompleteOutputError, match=r"different run.*image"):
        segment(other_image, model, out, tile_size=16, resume=True)
    with pytest.raises(IncompleteOutputError, match=r"different run.*tile_size"):
        segment(image, model, out, tile_size=32, resume=True)
    assert segment(image, model, out, tile_size=16, resume=True) == out


def test_an_image_only_touched_says_how_to_give_its_time_back(files, tmp_path):
    """``touch``, or a copy without its times, refused the resume as another file, saying
    nothing of why; the time it names, given back, resumes. Other pixels get no such advice."""
    import re

    image, model = files
    out = tmp_path / "o.ome.zarr"
    with pytest.raises(RuntimeError, match="power cut"):
        segment(image, FailingAfter(open_model(model), 3), out, tile_size=16, batch_size=1,
                workers=1)  # fmt: skip
    before, pixels = os.stat(image).st_mtime_ns, image.read_bytes()
    os.utime(image, ns=(before + 10**9, before + 10**9))
    with pytest.raises(IncompleteOutputError, match="only its modification time differs") as err:
        segment(image, model, out, tile_size=16, resume=True)
    seconds, nanoseconds = re.search(r"touch -d @(\d+)\.(\d{9}) ", str(err.value)).groups()
    assert int(seconds) * 10**9 + int(nanoseconds) == before
    image.write_bytes(pixels[:-4] + bytes(4))  # other pixels, the same size
    os.utime(image, ns=(before + 10**9, before + 10**9))
    with pytest.raises(IncompleteOutputError, match="not the file the run started from") as err:
        segment(image, model, out, tile_size=16, resume=True)
    assert "modification time" not in str(err.value)
    image.write_bytes(pixels)
    os.utime(image, ns=(before, before))  # as the touch -d it names does
    assert segment(image, model, out, tile_size=16, resume=True) == out
