"""``scale="auto"``: the object size estimated from the image, the factor from the model's
recorded diameter; exact under tiling, recorded in the store, reused on resume."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from scopeml.api import segment
from scopeml.errors import Cancelled, IncompatibleModelError, InvalidRequestError
from scopeml.io import Image
from scopeml.tiling.size import (
    DIAMETER_KEY,
    RANGE_KEY,
    SAMPLE_PIXELS,
    auto_scale,
    estimate_diameter,
    model_diameter,
    recorded_auto_scale,
    write_model_diameter,
)
from tests.tiling.engine_doubles import whole_image_probabilities, write_model_file


def scene(seed: int, size: int = 256) -> np.ndarray:
    from scopeml.synthetic import realistic_nuclei

    image, _ = realistic_nuclei((size, size), seed=seed)
    return image.reshape(image.shape[-2:])


def zoomed(plane: np.ndarray, zoom: float) -> np.ndarray:
    """The bench's resampling (bench/eval_nuclei.py ``zoomed``)."""
    from skimage.transform import rescale

    out = rescale(plane, zoom, order=1, preserve_range=True, anti_aliasing=zoom < 1)
    return out.astype(np.float32)


def as_image(plane: np.ndarray) -> Image:
    return Image(plane.reshape(1, 1, 1, 1, *plane.shape))


@pytest.fixture(scope="module")
def diameter_model(tmp_path_factory):
    """A tiny U-Net czann recording a diameter of 40 px (taken as it is from 30 to 50)."""
    folder = tmp_path_factory.mktemp("auto")
    plain = write_model_file(folder / "plain.czann", depth=2)
    return write_model_diameter(plain, 40.0, (30.0, 50.0), output=folder / "d.czann"), plain


@pytest.mark.parametrize("seed", [3, 11, 21])
def test_the_estimate_recovers_a_magnification(seed):
    plane = scene(seed)
    base = estimate_diameter(as_image(plane))
    assert base is not None and 6 < base < 80
    for zoom in (2.0, 3.0):
        ratio = estimate_diameter(as_image(zoomed(plane, zoom))) / base
        assert zoom / 1.3 < ratio < zoom * 1.3, (zoom, ratio)


def test_infinite_pixels_are_left_out_of_the_estimate_as_nan_pixels_are():
    """+inf was clipped to the brightest value: a band of it was measured as one huge
    object (BBBC007 with 50 rows of +inf: scale 0.2 and 8 nuclei instead of 1 and 153)."""
    plane = scene(5).astype(np.float32)
    found = {}
    for value in (np.nan, np.inf, -np.inf):
        damaged = plane.copy()
        damaged[:40] = value
        found[str(value)] = estimate_diameter(as_image(damaged))
    assert len(set(found.values())) == 1, found


def test_the_estimate_reads_fixed_windows_of_a_huge_image():
    class Discs:  # a virtual 8192² image of 20 px discs, counting the pixels read
        shape, dtype, read = (1, 1, 1, 1, 8192, 8192), np.dtype(np.float32), 0

        def __getitem__(self, key):
            y, x = np.mgrid[key[4], key[5]]
            Discs.read += y.size
            disc = (y % 32 - 16) ** 2 + (x % 32 - 16) ** 2 < 10**2
            return disc.astype(np.float32)[None, None, None, None]

    assert round(estimate_diameter(Image(Discs()))) == 20
    assert 0 < Discs.read <= SAMPLE_PIXELS


def test_bad_input_has_no_estimate_and_runs_at_scale_1(diameter_model, tmp_path):
    model, _ = diameter_model
    constant = np.full((64, 64), 7, np.uint16)
    assert estimate_diameter(as_image(constant.astype(np.float32))) is None
    assert estimate_diameter(as_image(np.full((64, 64), np.nan, np.float32))) is None
    assert estimate_diameter(as_image(np.ones((4, 4), np.float32))) is None  # tiny
    with pytest.warns(UserWarning, match=r"found no objects to measure.*scale 1") as caught:
        segment(constant, model, tmp_path / "c.ome.zarr", scale="auto")
    assert len([w for w in caught if "scale auto" in str(w.message)]) == 1
    assert recorded_auto_scale(tmp_path / "c.ome.zarr").scale == 1.0


def test_objects_out_of_reach_of_the_scale_limits_are_warned_of(diameter_model, tmp_path):
    """Discs of ~500 px are ~62 px at the smallest scale (1/8), past the 30–50 the model takes:
    a warning says so (phase-contrast blobs of 200–400 px once ran silently); a scene the
    factors reach runs without one."""
    import warnings

    from scopeml.model import open_model

    model = open_model(diameter_model[0])
    y, x = np.mgrid[:2048, :2048]
    discs = (((y % 1024) - 512) ** 2 + ((x % 1024) - 512) ** 2 < 250**2).astype(np.float32)
    with pytest.warns(UserWarning, match=r"objects ~\d+ px are ~6\d px even at the smallest "
                      r"scale \(1/8\), outside the 30–50 px the model takes"):  # fmt: skip
        assert auto_scale(as_image(discs), model).scale == 0.125
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert auto_scale(as_image(zoomed(scene(3), 2.0)), model).scale >= 0.125
    plain = diameter_model[1]
    no_range = open_model(write_model_diameter(plain, 20.0, output=tmp_path / "n.czann"))
    with pytest.warns(UserWarning, match=r"~6\d px even at the smallest scale \(1/8\), far from "
                      r"the model's 20 px"):  # fmt: skip
        auto_scale(as_image(discs), no_range)


def test_an_estimate_resting_on_one_object_is_warned_of(diameter_model):
    """A blastocyst's glow was one component of ~150 px holding most of the bright area: auto
    chose 1/8 and its 25 nuclei became 3 objects, without a word. One object holding over
    half the area measured, three times the others' size, is said; nuclei of many sizes, or
    two, are not."""
    import warnings

    from scopeml.model import open_model

    model = open_model(diameter_model[0])
    nuclei = scene(3, size=512)
    y, x = np.mgrid[:512, :512]
    glow = np.where((y - 256) ** 2 + (x - 256) ** 2 < 200**2, nuclei.max() * 0.6, 0)
    with pytest.warns(UserWarning, match=r"scale auto: one object of ~\d+ px holds \d+% of the "
                      r"bright area measured .* check the result, or give the scale"):  # fmt: skip
        auto_scale(as_image((nuclei + glow).astype(np.float32)), model)
    two = ((y - 40) ** 2 + (x - 40) ** 2 < 11**2) | ((y - 90) ** 2 + (x - 90) ** 2 < 9**2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto_scale(as_image(nuclei), model)
        auto_scale(as_image(zoomed(scene(11), 2.0)), model)
        auto_scale(as_image(two.astype(np.float32)), model)  # 60 % in one of two: no clump


def test_the_model_records_its_diameter_and_czmodel_still_reads_it(diameter_model, tmp_path):
    import json
    import zipfile

    from czmodel.core.util._extract_model import extract_czann_model

    from scopeml.model import open_model

    model, plain = diameter_model
    with zipfile.ZipFile(model) as new, zipfile.ZipFile(plain) as old:
        assert new.read("model.model") == old.read("model.model")  # the same graph bytes
        meta = json.loads(new.read("model.json"))
    assert meta[DIAMETER_KEY] == 40.0 and meta[RANGE_KEY] == [30.0, 50.0]
    assert model_diameter(open_model(model)) == 40.0 and model_diameter(open_model(plain)) is None
    cz_meta, graph = extract_czann_model(str(model), tmp_path / "extracted")
    assert cz_meta.classes == ["class0", "class1"] and graph.stat().st_size > 0


def test_the_shipped_model_records_a_diameter_and_auto_as_its_default():
    from scopeml.model import open_model
    from scopeml.tiling.size import default_scale

    assert model_diameter(open_model("nuclei")) is not None
    assert default_scale(open_model("nuclei")) == "auto"


def test_auto_on_a_magnified_scene_finds_about_as_many_nuclei(tmp_path):
    """The shipped model runs at ``auto`` by default; ``scale=1`` turns it off."""
    plane = scene(8)  # nuclei of ~24 px: magnified 3×, far past the range the model takes as is
    big = zoomed(plane, 3.0)

    def count(pixels, name, scale=None):
        seg = segment(pixels, "nuclei", tmp_path / name, outputs=["labels", "instances"],
                      scale=scale)  # fmt: skip
        return len(np.unique(seg.instances.read())) - 1

    reference = count(plane, "small.ome.zarr", scale=1)
    assert reference > 20 and recorded_auto_scale(tmp_path / "small.ome.zarr") is None
    auto = count(big, "auto.ome.zarr")  # the model's default
    chosen = recorded_auto_scale(tmp_path / "auto.ome.zarr")
    assert chosen.scale < 1 and chosen.diameter > chosen.model_diameter
    assert abs(auto - reference) <= 0.1 * reference
    assert abs(count(big, "one.ome.zarr", scale=1) - reference) > 0.1 * reference


def test_instances_of_a_shrunk_run_cover_the_seam_it_draws_wider(tmp_path):
    """At scale 1/3 the model's boundary seam is three times as wide in the output's pixels;
    grow counts at the model's scale, so the nuclei keep their rims: 3× magnified, they cover
    about 9× the pixels (they covered 6.4× with grow in output pixels)."""

    def run(pixels, name, scale=None):
        seg = segment(pixels, "nuclei", tmp_path / name, scale=scale,
                      outputs=["labels", "probabilities", "instances"])  # fmt: skip
        objects, classes = seg.instances.read(), seg.labels.read()
        foreground = np.isin(classes, [2, 3])  # nucleus or boundary
        return (objects > 0).sum(), ((objects > 0) & foreground).sum() / foreground.sum()

    plane = scene(8)
    small, small_cover = run(plane, "small.ome.zarr", scale=1)
    big, big_cover = run(zoomed(plane, 3.0), "big.ome.zarr")  # auto: scale 1/3
    assert recorded_auto_scale(tmp_path / "big.ome.zarr").scale < 0.5
    assert 8.0 < big / small < 10.0, big / small
    assert big_cover > 0.95 * small_cover, (big_cover, small_cover)


def test_tiled_auto_equals_the_whole_image_at_the_chosen_scale(tmp_path):
    from types import SimpleNamespace

    from scopeml.tiling.scale import ScaledModel
    from tests.tiling.engine_doubles import unet_double

    model = unet_double(depth=2)
    model.metadata = SimpleNamespace(model_extra={DIAMETER_KEY: 40.0, RANGE_KEY: [30, 50]})
    plane = zoomed(scene(3, 128), 1.5)[:150, :131]  # off every step
    out = segment(plane, model, tmp_path / "t.ome.zarr", outputs=["probabilities"],
                  tile_size=32, scale="auto")  # fmt: skip
    chosen = recorded_auto_scale(out)
    assert chosen.scale != 1.0  # the objects lie outside the model's range
    again = auto_scale(as_image(plane), model)  # deterministic (the store rounds the diameter)
    assert chosen.scale == again.scale
    assert chosen.diameter == pytest.approx(again.diameter, abs=0.01)
    assert len(model.input_shapes) > 2  # really tiled
    tiled = np.asarray(zarr.open_array(str(out / "probabilities" / "0"), mode="r")[...])
    whole = whole_image_probabilities(ScaledModel(model, chosen.scale), plane[None])
    np.testing.assert_array_equal(tiled.reshape(whole.shape), whole)


def test_a_resume_reuses_the_recorded_scale(diameter_model, tmp_path, monkeypatch):
    import scopeml.tiling.size as size

    model, _ = diameter_model
    plane = scene(3, 192)
    out = tmp_path / "r.ome.zarr"

    def stop(event):
        if event.stage == "segment" and event.done >= 2:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        segment(plane, model, out, tile_size=32, scale="auto", progress=stop)
    first = recorded_auto_scale(out)
    assert first is not None and not out.exists()
    # were the image measured again, another factor would be chosen
    monkeypatch.setattr(size, "estimate_diameter", lambda *a, **k: first.diameter * 3)
    resumed = segment(plane, model, out, tile_size=32, scale="auto", resume=True)
    assert recorded_auto_scale(resumed) == first
    monkeypatch.undo()
    whole = segment(plane, model, tmp_path / "w.ome.zarr", tile_size=32, scale=first.scale)
    np.testing.assert_array_equal(
        zarr.open_array(str(resumed / "labels" / "0"), mode="r")[...],
        zarr.open_array(str(whole / "labels" / "0"), mode="r")[...],
    )


def test_cli_auto_says_the_scale_and_info_shows_it(diameter_model, tmp_path, capsys):
    from scopeml.cli import main
    from scopeml.cli.info import describe_segment_store
    from tests.tiling.engine_doubles import write_image_file

    model, plain = diameter_model
    pixels = (zoomed(scene(3, 128), 1.5) * 1000).astype(np.uint16)[None]
    image = write_image_file(tmp_path / "img.ome.tif", pixels)
    out = tmp_path / "o.ome.zarr"
    assert main(["segment", str(image), "-m", str(model), "-o", str(out), "--scale", "auto",
                 "-q"]) == 0  # fmt: skip
    chosen = recorded_auto_scale(out)
    assert f"at scale {chosen.scale:g} (auto: objects ~" in capsys.readouterr().out
    assert describe_segment_store(out)["run"]["scale"] == chosen.scale
    # a model without the key: a clear error naming it, exit 2
    assert main(["segment", str(image), "-m", str(plain), "-o", str(tmp_path / "b.ome.zarr"),
                 "--scale", "auto"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "plain.czann" in err and "records no object diameter" in err and "number" in err
    assert main(["segment", str(image), "-m", str(model), "-o", str(tmp_path / "c.ome.zarr"),
                 "--scale", "big"]) == 2  # fmt: skip
    assert "error: --scale: takes a number" in capsys.readouterr().err


def test_without_a_diameter_auto_is_refused_in_python(diameter_model, tmp_path):
    _, plain = diameter_model
    with pytest.raises(IncompatibleModelError, match=r"plain\.czann.*pass a number"):
        segment(scene(3, 64), plain, tmp_path / "o.ome.zarr", scale="auto")


def test_auto_passes_through_analysis_settings_and_predict_region_refuses_it():
    from scopeml.analysis.settings import ModelSegmenter
    from scopeml.model import open_model
    from scopeml.tiling.scale import with_scale

    seg = ModelSegmenter(model="nuclei", channels=["C0"], scale="auto", **{"class": "nucleus"})
    assert seg.scale == "auto"
    with pytest.raises(ValueError):
        ModelSegmenter(model="nuclei", channels=["C0"], scale="big", **{"class": "nucleus"})
    with pytest.raises(InvalidRequestError, match="scale auto is chosen"):
        with_scale(open_model("nuclei"), "auto")


def test_one_estimate_per_time_series_of_z_stacks_from_sample_planes():
    from scopeml.tiling.size import sample_planes

    yy, xx = np.mgrid[:96, :96]
    disc = ((yy % 32 - 16) ** 2 + (xx % 32 - 16) ** 2 < 10**2).astype(np.float32)
    stack = np.zeros((1, 5, 1, 7, 96, 96), np.float32)
    stack[:, :, :, 3] = disc  # only the middle plane of each time point holds objects
    image = Image(stack)
    assert sample_planes(image) == [(0, 0, 3), (0, 2, 3), (0, 4, 3)]
    assert round(estimate_diameter(image)) == 20
