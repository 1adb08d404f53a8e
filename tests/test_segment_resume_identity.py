"""``segment --resume`` on a call stopped after the model's tiles (its partial store kept: a
store is published only with its instances; the table not written), or on a complete store:
a resume that differs from the run that made it (the axes, ``grow``) is refused naming what
differs, never as "complete; pass --overwrite" (newuser20 #1); the same run on a complete
store does nothing and exits 0, so a script that always resumes can be rerun (newuser20 #3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import Cancelled, IncompleteOutputError
from scopeml.objects.instances import InstanceOptions
from scopeml.progress import ProgressEvent
from scopeml.synthetic import realistic_nuclei

RUN = {"outputs": ("labels", "instances"), "axes": "TYX", "scale": 1, "tile_size": 128}
RUN["workers"] = 1


@pytest.fixture(scope="module")
def movie(tmp_path_factory) -> Path:
    """A plain 3-page TIFF of nuclei, a time-lapse only when read with axes TYX."""
    frames = [realistic_nuclei((200, 180), seed=s)[0][0] for s in range(3)]
    path = tmp_path_factory.mktemp("movie") / "movie.tif"
    pixels = (np.clip(np.stack(frames), 0, None) * 1000).astype(np.uint16)
    tifffile.imwrite(path, pixels, photometric="minisblack")
    return path


@pytest.fixture(scope="module")
def whole(movie, tmp_path_factory) -> pd.DataFrame:
    """The table of an uninterrupted run."""
    folder = tmp_path_factory.mktemp("whole")
    sm.segment(movie, "nuclei", folder / "o.ome.zarr", measure=folder / "t.csv", **RUN)
    return pd.read_csv(folder / "t.csv")


@pytest.fixture
def stopped(movie, tmp_path) -> tuple[Path, Path]:
    """The store and table of a run cancelled at ``grow``: its partial store, without
    instances (nothing published)."""
    out, table = tmp_path / "o.ome.zarr", tmp_path / "t.csv"

    def stop(event: ProgressEvent) -> None:
        if event.stage == "grow":
            raise Cancelled("stopped at grow")

    with pytest.raises(Cancelled):
        sm.segment(movie, "nuclei", out, measure=table, progress=stop, **RUN)
    assert not out.exists() and "instances" not in sm.Segmentation(_partial(out)).outputs
    return out, table


def _partial(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def _command(movie: Path, out: Path, table: Path) -> list[str]:
    return ["segment", str(movie), "-m", "nuclei", "-o", str(out), "-q", "--outputs",
            "labels,instances", "--measure", str(table), "--tile-size", "128", "--workers",
            "1", "--scale", "1", "--resume"]  # fmt: skip


def test_a_resume_without_the_axes_names_them(movie, stopped, capsys):
    out, table = stopped
    code = main(_command(movie, out, table))  # --axes TYX forgotten
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1, err  # after the file's Z-vs-T warning
    assert (
        f"error: {_partial(out)}: cannot resume: the partial output comes from a different "
        "run: " in err
    )
    assert f"the run read the image {movie.resolve()} with axes TYX (T=3 Y=200 X=180)" in err
    assert "pass --axes TYX (axes='TYX')" in err
    assert "complete" not in err
    assert "instances" not in sm.Segmentation(_partial(out)).outputs and not table.exists()


def test_a_resume_with_another_grow_names_it(movie, stopped):
    out, table = stopped
    other = InstanceOptions(grow=6)
    with pytest.raises(IncompleteOutputError, match=r"different run: instances\.grow: 4\.0 "):
        sm.segment(movie, "nuclei", out, measure=table, resume=True, instances=other, **RUN)
    assert "instances" not in sm.Segmentation(_partial(out)).outputs  # left as it was


def test_the_same_run_finishes_then_does_nothing(movie, stopped, whole, capsys):
    out, table = stopped
    seg = sm.segment(movie, "nuclei", out, measure=table, resume=True, **RUN)
    assert not seg.already_complete
    pd.testing.assert_frame_equal(pd.read_csv(table), whole)
    stamp = table.stat().st_mtime_ns
    events: list[ProgressEvent] = []
    again = sm.segment(movie, "nuclei", out, measure=table, resume=True, progress=events.append,
                       **RUN)  # fmt: skip
    assert again.already_complete and again == out and events == []
    command = [*_command(movie, out, table), "--axes", "TYX"]
    assert main(command) == 0  # a script that always passes --resume can be rerun
    printed = capsys.readouterr().out
    assert printed.startswith("already complete; nothing to do: labels, instances ("), printed
    assert table.stat().st_mtime_ns == stamp  # nothing written again


def test_a_complete_store_of_another_run_names_what_differs(movie, stopped, capsys):
    out, table = stopped
    sm.segment(movie, "nuclei", out, measure=table, resume=True, **RUN)
    assert main([*_command(movie, out, table), "--axes", "TYX", "--grow", "6"]) == 2
    err = capsys.readouterr().err
    assert "comes from a different run: instances.grow: 4.0 (recorded) vs 6.0 (now)" in err
    assert main(_command(movie, out, table)) == 2  # no axes
    assert "pass --axes TYX (axes='TYX')" in capsys.readouterr().err


def test_the_engine_alone_names_another_run_or_says_complete(movie, tmp_path):
    from scopeml.errors import OutputCompleteError
    from scopeml.tiling.engine import segment_image
    from scopeml.tiling.options import SegmentOptions
    from tests.tiling.engine_doubles import write_model_file

    image, model = (
        sm.open_image(movie, axes="TYX"),
        sm.open_model(write_model_file(tmp_path / "m.czann")),
    )
    out = segment_image(image, model, tmp_path / "o.ome.zarr", SegmentOptions(tile_size=64))
    with pytest.raises(IncompleteOutputError, match=r"different run: options\.tile_size: 64"):
        segment_image(image, model, out, SegmentOptions(tile_size=32, resume=True))
    with pytest.raises(OutputCompleteError, match="is complete; nothing to resume"):
        segment_image(image, model, out, SegmentOptions(tile_size=64, resume=True))


def test_a_resume_of_another_scene_names_the_scene(tmp_path, capsys):
    """Not "pass the --axes" (the other scene's size read as another reading of the file),
    and the scene said once."""
    path = tmp_path / "scenes.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(np.zeros((64, 80), np.uint16), metadata={"axes": "YX"})
        tif.write(np.zeros((48, 40), np.uint16), metadata={"axes": "YX"})
    out = str(tmp_path / "s.ome.zarr")
    assert main(["segment", str(path), "-m", "nuclei", "-o", out, "--scene", "1", "-q"]) == 0
    capsys.readouterr()
    args = ["segment", str(path), "-m", "nuclei", "-o", out, "--scene", "0", "--resume", "-q"]
    assert main(args) == 2
    said = capsys.readouterr().err
    assert "the run read scene 1 of the image, not scene 0; pass --scene 1 (scene=1)" in said
    assert "--axes" not in said and "(recorded)" not in said, said


def test_the_table_of_a_scene_names_it(tmp_path):
    """``--scene 1 --measure``: the rows say scene 1 (tables of several scenes can be joined)."""
    frames = [realistic_nuclei((96, 96), seed=s)[0][0] for s in (4, 5)]
    path = tmp_path / "scenes.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for frame in (frames[0], frames[1][:80]):  # two sizes
            tif.write((np.clip(frame, 0, None) * 1000).astype(np.uint16), metadata={"axes": "YX"})
    table = tmp_path / "s1.csv"
    args = ["segment", str(path), "-m", "nuclei", "-o", str(tmp_path / "s1.ome.zarr"), "-q"]
    assert (
        main([*args, "--scene", "1", "--outputs", "labels,instances", "--measure", str(table)]) == 0
    )
    rows = pd.read_csv(table)
    assert list(rows.columns[:3]) == ["scene", "t", "label"] and set(rows["scene"]) == {1}
    assert len(rows) > 0
