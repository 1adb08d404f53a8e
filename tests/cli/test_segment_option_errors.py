"""``segment``'s option errors name the option, not the image (nu5 #7); ``--measure`` says it
adds the instances (nu5 #8)."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.cli import main
from tests.tiling.engine_doubles import write_image_file, write_model_file


@pytest.mark.parametrize(
    ("value", "said"),
    [("abc", "takes a number (0.5, 1/3) or auto; got 'abc'"), ("0", "must be between 0.125"),
     ("1/0", "takes a number"), ("100", "must be between 0.125 and 8.0; got 100.0")],
)  # fmt: skip
def test_bad_scale_names_the_option(tmp_path, capsys, value, said):
    image = write_image_file(tmp_path / "img.ome.tif", np.ones((1, 40, 40), np.uint16))
    model = write_model_file(tmp_path / "m.czann")
    out = tmp_path / "o.ome.zarr"
    code = main(["segment", str(image), "-m", str(model), "-o", str(out), "--scale", value])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --scale: ") and said in err
    assert str(image) not in err and not out.exists()


def test_measure_help_says_it_adds_instances(capsys):
    assert main(["segment", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "adds instances to --outputs" in text
