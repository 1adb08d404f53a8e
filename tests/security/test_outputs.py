"""Outputs: never delete what scopeml did not make, never resume into another image, never let
two runs write one output, never leave a half-written file (issue 18, medium)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import zarr

from scopeml.api import segment
from scopeml.errors import IncompleteOutputError, InvalidRequestError
from scopeml.io.replace import atomic_write, write_atomically
from scopeml.tiling.store import partial_path
from tests.tiling.engine_doubles import FailingAfter, write_image_file, write_model_file


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    image = write_image_file(
        tmp_path / "img.ome.tif", rng.integers(0, 900, (1, 64, 48)).astype(np.uint16)
    )
    return image, write_model_file(tmp_path / "m.czann", seed=0)


def interrupt(image, model, out, after=2):
    """Leave a partial store, as a run that broke down after ``after`` batches does."""
    from scopeml.api import open_model

    with pytest.raises(RuntimeError, match="power cut"):
        segment(image, FailingAfter(open_model(model), after), out, tile_size=16, workers=1)
    assert partial_path(out).is_dir()


@pytest.mark.parametrize("name", ["o.ome.zarr.partial", "o.ome.zarr"])
@pytest.mark.parametrize("zarr_marker", [False, True])
def test_overwrite_never_deletes_a_folder_scopeml_did_not_make(files, tmp_path, name, zarr_marker):
    image, model = files
    out = tmp_path / "o.ome.zarr"
    folder = tmp_path / name
    folder.mkdir()
    (folder / "thesis.docx").write_bytes(b"years of work")
    if zarr_marker:  # even a zarr store is not ours without scopeml's record
        zarr.open_group(folder, mode="a", zarr_format=3)
    before = sorted(p.name for p in folder.iterdir())
    asks = [{"overwrite": True}, {"overwrite": True, "resume": True}]
    if name.endswith(".partial"):
        asks += [{"resume": True}, {}]
    for ask in asks:
        with pytest.raises(InvalidRequestError, match=f"{name}: .*(not a zarr store|did not make)"):
            segment(image, model, out, tile_size=16, **ask)
    assert sorted(p.name for p in folder.iterdir()) == before  # not even a lock file
    assert (folder / "thesis.docx").read_bytes() == b"years of work"


def test_overwrite_replaces_scopemls_own_partial_and_finished_stores(files, tmp_path):
    image, model = files
    out = tmp_path / "o.ome.zarr"
    interrupt(image, model, out)
    assert segment(image, model, out, tile_size=16, overwrite=True) == out
    assert not partial_path(out).exists()
    assert segment(image, model, out, tile_size=16, overwrite=True) == out
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".", "o."))) == [
        "o.ome.zarr"
    ]


def test_resume_refuses_an_image_replaced_under_the_same_name(files, tmp_path):
    image, model = files
    out = tmp_path / "o.ome.zarr"
    interrupt(image, model, out)
    other = np.random.default_rng(1).integers(0, 900, (1, 64, 48)).astype(np.uint16)
    stat = image.stat()
    write_image_file(image, other)  # same path, shape and dtype; other pixels
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old time stamp
    with pytest.raises(IncompleteOutputError, match=f"image {image} is not the file"):
        segment(image, model, out, tile_size=16, resume=True)
    assert partial_path(out).is_dir()  # still there, for the user to decide


def test_resume_of_the_untouched_image_still_works(files, tmp_path):
    image, model = files
    out = tmp_path / "o.ome.zarr"
    interrupt(image, model, out)
    assert segment(image, model, out, tile_size=16, resume=True) == out


# A run whose model waits for a file, so the test controls when it finishes.
HELD_RUN = textwrap.dedent(
    """
    import os, sys, time
    from scopeml.api import open_model, segment

    model = open_model(sys.argv[2])

    class Held:
        spec = model.spec
        path = model.path

        def predict(self, batch):
            while not os.path.exists(sys.argv[4]):
                time.sleep(0.02)
            return model.predict(batch)

    segment(sys.argv[1], Held(), sys.argv[3], tile_size=16, workers=1)
    """
)


@pytest.mark.parametrize("second", ["resume", "overwrite", "plain"])
def test_a_second_run_on_the_same_output_refuses_cleanly(files, tmp_path, second):
    image, model = files
    out = tmp_path / "o.ome.zarr"
    release = tmp_path / "release"
    first = subprocess.Popen([sys.executable, "-c", HELD_RUN, image, model, out, release])
    try:
        deadline = time.monotonic() + 60
        while not (partial_path(out) / ".scopeml-run.json").is_file():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        before = sorted(p.name for p in tmp_path.iterdir())
        with pytest.raises(IncompleteOutputError) as caught:
            segment(
                image,
                model,
                out,
                tile_size=16,
                **({second: True} if second != "plain" else {}),
            )
        message = str(caught.value)
        assert "\n" not in message and str(partial_path(out)) in message
        assert "another scopeml run is writing" in message
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing stray
        release.touch()
        assert first.wait(60) == 0
    finally:
        release.touch()
        first.wait(60)
    assert out.is_dir() and not partial_path(out).exists()
    assert not (out / ".scopeml-lock").exists()


def test_a_killed_run_leaves_no_lock_behind(files, tmp_path):
    image, model = files
    out = tmp_path / "o.ome.zarr"
    release = tmp_path / "release"
    first = subprocess.Popen([sys.executable, "-c", HELD_RUN, image, model, out, release])
    deadline = time.monotonic() + 60
    while not (partial_path(out) / ".scopeml-run.json").is_file():
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    first.kill()
    first.wait()
    assert segment(image, model, out, tile_size=16, resume=True) == out


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    target = write_atomically(tmp_path / "model.czann", b"old")
    with pytest.raises(OSError, match="disk full"), atomic_write(target) as temp:
        temp.write_bytes(b"half")
        raise OSError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.czann"]


def test_atomic_write_uses_a_unique_temporary_name(tmp_path):
    target = tmp_path / "table.csv"
    with atomic_write(target) as first, atomic_write(target) as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_text("one")
        second.write_text("two")
    assert target.read_text() == "one"  # the outer block ends last
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_atomic_folder_replaces_a_store_whole_or_not_at_all(tmp_path):
    target = tmp_path / "nuclei.zarr"
    with atomic_write(target, folder=True) as temp:
        (temp / "zarr.json").write_text("old")
    with pytest.raises(OSError, match="disk full"), atomic_write(target, folder=True) as temp:
        (temp / "zarr.json").write_text("half")
        raise OSError("disk full")
    assert (target / "zarr.json").read_text() == "old"
    with atomic_write(target, folder=True) as temp:
        (temp / "zarr.json").write_text("new")
        (temp / "0").mkdir()
    assert sorted(p.name for p in target.iterdir()) == ["0", "zarr.json"]
    assert (target / "zarr.json").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["nuclei.zarr"]  # no temporary left


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_atomic_write_gives_the_permissions_open_would(tmp_path, umask):
    import pandas as pd

    from scopeml.model.safezip import write_zip
    from scopeml.objects.table import write_table

    old = os.umask(umask)
    try:
        with open(tmp_path / "plain.txt", "w") as stream:  # the reference
            stream.write("plain")
        (tmp_path / "plain").mkdir()
        write_atomically(tmp_path / "run.json", "{}")
        with atomic_write(tmp_path / "store.zarr", folder=True) as temp:
            (temp / "zarr.json").write_text("{}")
        write_table(pd.DataFrame({"label": [1]}), tmp_path / "t.csv")
        write_zip(tmp_path / "m.zip", [("model.json", b"{}")])
        write_atomically(tmp_path / "secret", b"x", mode=0o600)  # an explicit mode still wins
    finally:
        os.umask(old)

    def mode(name):
        return stat.S_IMODE((tmp_path / name).stat().st_mode)

    assert mode("plain.txt") == 0o666 & ~umask
    assert mode("run.json") == mode("t.csv") == mode("m.zip") == mode("plain.txt")
    assert mode("store.zarr") == mode("plain") == 0o777 & ~umask
    assert mode("secret") == 0o600


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_pipe_as_the_output_is_refused_and_kept_even_with_overwrite(files, tmp_path, capsys):
    import tifffile

    from scopeml.cli import main

    image, model = files
    labels = tmp_path / "scribbles.tif"

    scribbles = np.zeros((64, 48), np.uint8)
    scribbles[:4], scribbles[30:34, 20:24] = 1, 2
    tifffile.imwrite(labels, scribbles)
    for name, args in (
        ("m.czseg", ["pixel", "train", str(image), str(labels), "-q", "--n-estimators", "2"]),
        ("t.csv", ["segment", str(image), "-m", str(model), "-o", str(tmp_path / "s.ome.zarr"),
                   "-q", "--measure"]),
        ("n.czann", ["model", "convert", "nuclei"]),
    ):  # fmt: skip
        pipe = tmp_path / name
        os.mkfifo(pipe)
        target = [str(pipe)] if args[-1] == "--measure" else ["-o", str(pipe)]
        assert main([*args, *target, "--overwrite"]) == 2  # never blocks reading it either
        assert (
            capsys.readouterr()
            .err.strip()
            .endswith(f"{pipe}: is a device, pipe or socket, not a file; give a file name")
        )
        assert stat.S_ISFIFO(os.stat(pipe).st_mode)


def test_overwriting_a_stale_partial_store_keeps_it_locked(tmp_path):
    """``--overwrite`` on an interrupted run's partial store emptied it with its lock file: a
    ``--resume`` started beside it locked a new file, wrote for 63 s beside it, then failed,
    leaving tiles that blocked the next ``--overwrite``."""
    from scopeml.tiling.store import OutputStore

    out = tmp_path / "o.ome.zarr"
    stale, _ = OutputStore.open(out, {"run": 1})
    stale.release()  # an interrupted run
    first, resumed = OutputStore.open(out, {"run": 1}, overwrite=True)
    try:
        assert not resumed and (partial_path(out) / ".scopeml-lock").is_file()
        with pytest.raises(IncompleteOutputError, match="another scopeml run is writing"):
            OutputStore.open(out, {"run": 1}, resume=True)
    finally:
        first.release()
