"""``scopeml info IMAGE``: the reader, shape, scenes, channels and pixel sizes; exit 2 on bad
input."""

from __future__ import annotations

import json

import numpy as np

from scopeml.cli import main
from tests.io import test_readers as native
from tests.io.test_bioio import needs_bioio, write_zipped_ome_zarr


def test_info_prints_the_reader_and_the_metadata(tmp_path, capsys):
    path, _ = native.TestOmeZarr().make(tmp_path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        str(path),
        "  reader: scopeml.io.omezarr:read_ome_zarr",
        "  shape: S=1 T=1 C=2 Z=3 Y=40 X=50, uint16",
        "  scenes: 1: 0 (T=1 C=2 Z=3 Y=40 X=50)",
        "  channels: dna, actin",
        "  pixel sizes (µm): Z=3 Y=0.4 X=0.4",
    ]


def test_info_json_is_the_description(tmp_path, capsys):
    path, expected = native.TestOmeTiff().make(tmp_path)
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == list(expected.shape) and info["channel_names"] == ["nuclei", "membrane"]


@needs_bioio
def test_info_names_the_bioio_plugin(tmp_path, capsys):
    path = write_zipped_ome_zarr(tmp_path / "a.ozx", np.ones((1, 20, 30), np.uint8))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "  reader: bioio-ome-zarr " in out and "(scopeml.io.bioio:read_bioio)" in out
    assert "  region reads: chunks of 16×16 (Y×X)" in out


def test_a_file_no_reader_opens_exits_2_naming_it_and_the_formats_tried(tmp_path, capsys):
    path = tmp_path / "mystery.xyz"
    path.write_bytes(b"\x00\x01" * 40)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: {path}: unknown image format '.xyz'; known: .btf, .czi")


def test_info_on_a_model_points_to_model_inspect(tmp_path, capsys):
    """Not "unknown image format '.czann'" or "no such file": the command that describes it."""
    from scopeml.model.registry import resolve_model

    assert main(["info", "nuclei"]) == 2
    assert "nuclei: the built-in model, not an image: describe it with scopeml model inspect " \
        "nuclei" in capsys.readouterr().err  # fmt: skip
    czann = resolve_model("nuclei")
    assert main(["info", str(czann)]) == 2
    said = capsys.readouterr().err
    assert f"a model (czann), not an image: describe it with scopeml model inspect {czann}" in said
    assert main(["model", "inspect", str(czann)]) == 0


def test_info_of_scenes_of_different_sizes_says_the_shape_is_the_first(tmp_path, capsys):
    import tifffile

    path = tmp_path / "two.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(np.zeros((40, 50), np.uint8), metadata={"axes": "YX"})
        tif.write(np.zeros((20, 30), np.uint8), metadata={"axes": "YX"})
    named = tmp_path / "named.ome.tif"  # OME Image names (positions, wells): said beside
    with tifffile.TiffWriter(named, ome=True) as tif:
        tif.write(np.zeros((40, 50), np.uint8), metadata={"axes": "YX", "Name": "well A1"})
        tif.write(np.zeros((40, 50), np.uint8), metadata={"axes": "YX", "Name": "well B2"})
    assert main(["info", str(named)]) == 0
    assert "  scenes: 2: 0 well A1 (T=1" in capsys.readouterr().out
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == (
        "  shape: S=1 T=1 C=1 Z=1 Y=40 X=50 (the first scene; they differ in size: segment one "
        "at a time, --scene N; analyze takes each on its own), uint8"
    )
    assert out[3].startswith("  scenes: 2: 0 (T=1 C=1 Z=1 Y=40 X=50), 1 (T=1 C=1 Z=1 Y=20 X=30)")


def test_info_describes_analysis_results(tmp_path, capsys, monkeypatch):
    """An analysis's results folder is described as one (was: 'unknown image format')."""
    import tifffile

    from scopeml.analysis import run_analysis
    from tests.analysis.conftest import cell_image, three_level_settings

    meta = {"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}}
    for seed in (1, 2):
        tifffile.imwrite(tmp_path / f"p{seed}.ome.tif", cell_image(seed=seed), ome=True,
                         metadata=meta)  # fmt: skip
    (tmp_path / "p3.ome.tif").write_bytes(b"not a tiff")
    out = tmp_path / "results"
    result = run_analysis(three_level_settings(), sorted(tmp_path.glob("p*.tif")), out)
    cells = sum(counts["cell"] for counts in result.counts.values())
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "  analysis results: 2 image(s) analysed, 1 failed"
    assert lines[2].startswith(f"  objects: cell {cells}, nucleus ") and cells > 0
    assert lines[4] == f"  report: {out / 'index.html'}"
    assert main(["info", str(out), "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["objects"]["cell"] == cells and said["failed"] == 1
    one = out / "images" / "p1"  # one image's folder (was: "unknown image format")
    assert main(["info", str(one)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(f"  one image of the analysis results {out}: ")
    assert lines[1].split(": ")[1].startswith(str(tmp_path / "p1.ome.tif"))
    counts = ", ".join(f"{k} {v}" for k, v in result.counts["p1"].items())
    assert lines[2] == f"  objects: {counts}"
    assert lines[3] == ("  label stores: cell.ome.zarr, nucleus.ome.zarr, spot.ome.zarr "
                        "(scopeml info on one describes it)")  # fmt: skip
    assert main(["info", str(one), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["objects"] == result.counts["p1"]
    monkeypatch.chdir(one)  # named as "." from inside it
    assert main(["info", "."]) == 0
    assert "  one image of the analysis results " in capsys.readouterr().out
