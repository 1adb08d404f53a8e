"""A run on a plain TIFF read with ``--axes TYX``, resumed without them: the refusal says the
run read the same file with other axes and which to pass (nu5 #1); ``info`` on the partial
store shows how the run read the image."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from scopeml.api import open_image, open_model, segment
from scopeml.cli import main
from scopeml.errors import IncompleteOutputError
from scopeml.tiling.store import partial_path
from tests.tiling.engine_doubles import FailingAfter, write_model_file


@pytest.fixture
def stopped(tmp_path):
    """A plain 5×40×40 TIFF, a model, and a run on it read as TYX stopped after 2 tiles."""
    image = tmp_path / "movie.tif"
    rng = np.random.default_rng(0)
    tifffile.imwrite(image, rng.integers(0, 900, (5, 40, 40)).astype(np.uint16))
    model = write_model_file(tmp_path / "m.czann")
    out = tmp_path / "o.ome.zarr"
    with pytest.raises(RuntimeError, match="power cut"):
        segment(open_image(image, axes="TYX"), FailingAfter(open_model(model), 2), out,
                tile_size=16, batch_size=1, workers=1)  # fmt: skip
    assert len(os.listdir(partial_path(out) / ".scopeml-done")) == 2
    return image, model, out


def test_resume_without_the_axes_names_them(stopped, capsys):
    image, model, out = stopped
    args = ["segment", str(image), "-m", str(model), "-o", str(out), "--tile-size", "16", "-q"]
    code = main([*args, "--resume"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"the run read the image {image.resolve()} with axes TYX (T=5 Y=40 X=40)" in err
    # the opened image's axes are recorded as a path's --axes are: "the file's own"
    assert "not the file's own (Z=5 Y=40 X=40); pass --axes TYX (axes='TYX')" in err
    assert "is not the file the run started from" not in err
    assert main(["info", str(out)]) == 0
    assert "read as T=5 Y=40 X=40" in capsys.readouterr().out
    assert main([*args, "--resume", "--axes", "TYX"]) == 0  # as told: it finishes
    assert out.is_dir() and not partial_path(out).exists()


def test_another_file_is_still_another_file(stopped, tmp_path):
    image, model, out = stopped
    tifffile.imwrite(image, np.zeros((5, 40, 40), np.uint16))  # same path, other pixels
    with pytest.raises(IncompleteOutputError, match="is not the file the run started from"):
        segment(open_image(image, axes="TYX"), model, out, tile_size=16, resume=True)
