"""``scopeml segment``: progress bars unless ``-q``; the line on what was written on stdout."""

from __future__ import annotations

import numpy as np

from scopeml.cli import main
from tests.tiling.engine_doubles import write_image_file, write_model_file


def test_progress_bar_unless_quiet(tmp_path, capsys):
    image = write_image_file(tmp_path / "img.ome.tif", np.ones((1, 40, 40), np.uint16))
    model = write_model_file(tmp_path / "m.czann")
    args = ["segment", str(image), "-m", str(model), "--tile-size", "16"]
    assert main([*args, "-o", str(tmp_path / "a.ome.zarr")]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"labels → {tmp_path / 'a.ome.zarr'}; ") and out.endswith(" s\n")
    assert "segment:" in err and "/9 " in err and "tile/s" in err  # 3 × 3 tiles
    assert main([*args, "-o", str(tmp_path / "b.ome.zarr"), "-q"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("labels → ") and "segment" not in err  # the line, no bars
