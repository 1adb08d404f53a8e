"""A model run at another scale: exact under tiling, outputs on the image's grid, bad factors."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
import tifffile
import zarr

from scopeml.api import segment
from scopeml.errors import IncompatibleModelError, IncompleteOutputError, InvalidRequestError
from scopeml.model.spec import ModelSpec
from scopeml.tiling.scale import LIMITS, MAX_DENOMINATOR, ScaledModel, _taps, _zoom
from tests.tiling.engine_doubles import (
    random_image,
    unet_double,
    whole_image_probabilities,
    write_image_file,
    write_model_file,
)


def read_output(out, name):
    return np.asarray(zarr.open_array(str(out / name / "0"), mode="r")[...])


@pytest.mark.parametrize("scale", [2.0, 0.5, 1.5, 1 / 3])
def test_tiled_equals_the_whole_image_at_any_scale(tmp_path, scale):
    # 141×97: a multiple of neither the tile nor any step; the U-Net pools twice (step 4)
    image = random_image((1, 1, 1, 1, 141, 97))
    model = unet_double(depth=2)
    out = segment(image, model, tmp_path / "t.ome.zarr", outputs=["probabilities"],
                  tile_size=32, scale=scale)  # fmt: skip
    tiled = read_output(out, "probabilities")
    assert tiled.shape == (2, 141, 97)  # C Y X: the image's grid, not the model's
    scaled = ScaledModel(model, scale)
    whole = whole_image_probabilities(scaled, image.read()[0, 0, :, 0].astype(np.float32))
    np.testing.assert_array_equal(tiled, whole)
    sizes = {shape[2:] for shape in model.input_shapes}
    assert len(model.input_shapes) > 2 and all(  # really tiled, at the scale
        s % 4 == 0 for shape in sizes for s in shape
    )
    assert max(max(s) for s in sizes) > 32 * scale


class PixelwiseModel:
    """A model without a halo: each pixel's two class scores from its own value alone (a soft
    threshold at 500), so a tiled run of it at a scale differs from the whole image's only
    where the resamplings do."""

    spec = ModelSpec(2, 1, ("background", "foreground"), (0, 0), (1, 1), name="pixelwise")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        foreground = (batch - np.float32(500)) / np.float32(1000) + np.float32(0.5)
        return np.concatenate([1 - foreground, foreground], axis=1).astype(np.float32)


#: Accepted factors off the whole factors and their inverses, and some on them.
FACTORS = ["3/4", "4/3", "2/3", "5/4", "3/5", "7/8", "8/7", "5/2", "2/5", "3/2", "2", "1/2", "1/3"]


@pytest.mark.parametrize("factor", FACTORS)
def test_every_accepted_factor_is_bit_exact_tiled(tmp_path, factor):
    # positions up to ~1000 pixels at the model's scale: far enough for float positions counted
    # from a tile's own origin to round differently from the whole image's, were they so counted
    scale = float(Fraction(factor))
    image = random_image((1, 1, 1, 1, 389, 233), seed=2)
    model = ScaledModel(PixelwiseModel(), scale)
    whole = whole_image_probabilities(model, image.read()[0, 0, :, 0].astype(np.float32))
    for tile_size in (32, 56, 96):
        out = segment(image, model, tmp_path / f"{tile_size}.ome.zarr", outputs=["probabilities"],
                      tile_size=tile_size)  # fmt: skip
        np.testing.assert_array_equal(read_output(out, "probabilities"), whole)


@pytest.mark.parametrize("factor", FACTORS)
def test_a_pixels_taps_depend_on_its_position_only(factor):
    """Output pixel ``j`` samples the input at ``(j + 0.5)/f - 0.5``: two pixels and a weight
    from that exact position, the same for ``j`` and ``j + p`` (``q`` input pixels on)."""
    f = Fraction(factor)
    p, q = f.numerator, f.denominator
    first, weight = _taps(4000, f)
    exact = [(j + Fraction(1, 2)) / f - Fraction(1, 2) for j in range(4000)]
    assert first.tolist() == [int(x // 1) for x in exact]
    assert weight.tolist() == [float(np.float32(float(x - x // 1))) for x in exact]
    np.testing.assert_array_equal(first[p:] - first[:-p], q)
    np.testing.assert_array_equal(weight[p:], weight[:-p])


def test_the_resampling_of_a_tile_equals_the_whole_rows_at_every_accepted_factor():
    """Every ``p/q`` with ``q <= 8`` within the limits, both ways (image → model's grid and
    back): a row resampled from an offset that is a multiple of ``q`` equals the whole row's
    resampling from there on, bit for bit, away from the offset's clamped edge."""
    low, high = (Fraction(limit) for limit in LIMITS)
    factors = {Fraction(p, q) for q in range(1, MAX_DENOMINATOR + 1) for p in range(1, 8 * q + 1)}
    factors = sorted(f for f in factors if low <= f <= high and f != 1)
    assert len(factors) > 150
    rng = np.random.default_rng(7)
    for factor in (f for accepted in factors for f in (accepted, 1 / accepted)):
        p, q = factor.numerator, factor.denominator
        row = rng.random((1, 1, 2, 160 * q), np.float32) * 1000
        whole = _zoom(row, factor, 0.0)
        edge = p // q + 2  # output pixels whose taps may fall before the offset
        for offset in (q, 37 * q, 151 * q):
            tile = _zoom(row[..., offset:], factor, 0.0)
            start = offset * p // q
            np.testing.assert_array_equal(tile[..., edge:], whole[..., start + edge :])


def test_the_resampling_is_linear_interpolation_between_pixel_centres():
    """Where the size maps to whole pixels, as ``scipy.ndimage.zoom(order=1, grid_mode=True,
    mode="nearest")`` within float32 rounding; shapes magnified by the factor."""
    from scipy import ndimage

    rng = np.random.default_rng(1)
    for factor in map(Fraction, [*FACTORS, "1/8", "8"]):
        batch = rng.random((2, 3, 67 * factor.denominator, 29 * factor.denominator), np.float32)
        got = _zoom(batch, factor, 0.0)
        assert got.shape == (2, 3, *(int(n * factor) for n in batch.shape[2:]))
        plane = ndimage.zoom(batch[1, 2], float(factor), order=1, mode="nearest", grid_mode=True)
        np.testing.assert_allclose(got[1, 2], plane, rtol=0, atol=3e-7)


def test_a_model_sees_the_image_magnified(tmp_path):
    """Objects twice the size the model was trained on, shrunk by scale 0.5: found as in the
    image at the model's own size (the shipped nuclei model, a synthetic scene)."""
    from scipy import ndimage

    from scopeml.synthetic import realistic_nuclei

    small, _ = realistic_nuclei((256, 256), seed=11)
    small = small.reshape(small.shape[-2:])
    big = ndimage.zoom(small.astype(np.float32), 2, order=1, grid_mode=True, mode="nearest")

    def count(pixels, name, scale=None):
        seg = segment(pixels, "nuclei", tmp_path / name, outputs=["labels", "instances"],
                      scale=scale)  # fmt: skip
        instances = seg.instances.read()[0, 0, 0, 0]
        assert instances.shape == pixels.shape
        return len(np.unique(instances)) - 1

    reference = count(small, "small.ome.zarr")
    assert reference > 20
    at_half = count(big, "half.ome.zarr", scale=0.5)
    assert abs(at_half - reference) <= 0.1 * reference


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), 100.0])
def test_a_bad_factor_is_refused(tmp_path, scale):
    with pytest.raises(InvalidRequestError, match="scale must be between"):
        segment(random_image((1, 1, 1, 1, 16, 16)), unet_double(depth=1),
                tmp_path / "o.ome.zarr", scale=scale)  # fmt: skip


def test_a_factor_between_fractions_runs_at_the_nearest_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="scale 1.3 runs as 9/7"):
        ScaledModel(unet_double(depth=1), 1.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a third typed as 0.333 is a third, without a word
        assert ScaledModel(unet_double(depth=1), 0.333).factor == pytest.approx(1 / 3)


def test_a_factor_between_fractions_is_said_and_recorded_as_run(tmp_path, capsys):
    from scopeml.cli import main
    from scopeml.segmentation import Segmentation

    image = tmp_path / "a.tif"
    tifffile.imwrite(image, random_image((1, 1, 1, 1, 48, 48))[0, 0, 0, 0])
    model = write_model_file(tmp_path / "m.czann", depth=1)
    out = tmp_path / "o.ome.zarr"
    assert main(["segment", str(image), "-m", str(model), "-o", str(out), "--scale", "0.13"]) == 0
    said = capsys.readouterr()
    assert "warning: scale 0.13 runs as 1/8 = 0.125" in said.err
    assert f"→ {out} at scale 0.125;" in said.out  # what ran, not what was typed
    assert Segmentation(out).scale == 0.125
    assert main(["info", str(out)]) == 0 and "scale 0.125" in capsys.readouterr().out


def test_a_fixed_input_model_is_refused():
    with pytest.raises(IncompatibleModelError, match="fixed input"):
        ScaledModel(unet_double(depth=1, tile_shape=(32, 32)), 2)


def test_a_store_is_not_resumed_at_another_scale(tmp_path):
    image = random_image((1, 1, 1, 1, 40, 40))
    model = unet_double(depth=1)
    out = tmp_path / "o.ome.zarr"
    segment(image, model, out, scale=2)
    with pytest.raises(IncompleteOutputError, match=r"options\.scale: 2 \(recorded\) vs 1\.5"):
        segment(image, model, out, scale=1.5, resume=True)  # another run: names what differs


def test_cli_scale_and_its_bad_value(tmp_path, capsys):
    from scopeml.cli import main

    image = write_image_file(tmp_path / "img.ome.tif", np.arange(48 * 40, dtype=np.uint16)
                             .reshape(1, 48, 40) % 97)  # fmt: skip
    model = write_model_file(tmp_path / "m.czann")
    out = tmp_path / "o.ome.zarr"
    assert main(["segment", str(image), "-m", str(model), "-o", str(out), "--scale", "2",
                 "-q"]) == 0  # fmt: skip
    assert read_output(out, "labels").shape == (48, 40)
    capsys.readouterr()
    assert main(["segment", str(image), "-m", str(model), "-o", str(tmp_path / "b.ome.zarr"),
                 "--scale", "0"]) == 2  # fmt: skip
    assert "--scale: must be between" in capsys.readouterr().err  # an error of the option


def test_a_cluster_run_at_a_scale_equals_the_local_run(tmp_path):
    distributed = pytest.importorskip("distributed")
    rng = np.random.default_rng(3)
    image = write_image_file(tmp_path / "img.ome.tif",
                             rng.integers(0, 900, (1, 70, 90)).astype(np.uint16))  # fmt: skip
    model = write_model_file(tmp_path / "m.czann")
    local = segment(image, model, tmp_path / "local.ome.zarr", outputs=["probabilities"],
                    tile_size=32, scale=1.5)  # fmt: skip
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        remote = segment(image, model, tmp_path / "dask.ome.zarr", outputs=["probabilities"],
                         tile_size=32, scale=1.5, scheduler=cluster.scheduler_address)  # fmt: skip
    np.testing.assert_array_equal(read_output(remote, "probabilities"),
                                  read_output(local, "probabilities"))  # fmt: skip


def test_a_region_at_a_scale_equals_the_store(tmp_path):
    from scopeml.predict import predict_region
    from scopeml.tiling.options import SegmentOptions

    image = random_image((1, 1, 1, 1, 90, 77), seed=4)
    model = unet_double(depth=2)
    out = segment(image, model, tmp_path / "o.ome.zarr", outputs=["probabilities"], scale=0.5)
    options = SegmentOptions(outputs=("probabilities",), scale=0.5, workers=1)
    region = {"Y": (21, 60), "X": (13, 50)}
    got = predict_region(image, model, region, outputs="probabilities", options=options)
    np.testing.assert_array_equal(got, read_output(out, "probabilities")[:, 21:60, 13:50])


def test_the_facades_region_applies_the_scale_once(tmp_path):
    import scopeml as sm
    from scopeml.tiling.options import SegmentOptions

    image = random_image((1, 1, 1, 1, 64, 64), seed=5)
    model = unet_double(depth=2)
    out = segment(image, model, tmp_path / "o.ome.zarr", outputs=["probabilities"], scale=2)
    options = SegmentOptions(outputs=("probabilities",), scale=2)
    got = sm.predict_region(image, model, {"Y": (10, 40), "X": (5, 30)}, outputs="probabilities",
                            options=options)  # fmt: skip
    np.testing.assert_array_equal(got, read_output(out, "probabilities")[:, 10:40, 5:30])


def test_pixels_far_from_those_the_model_was_trained_at_are_warned_of_with_the_scale(tmp_path):
    """A ZEN model records the pixel size it was trained at (its Scaling); a run whose model
    sees pixels 8× smaller says so, and the scale it names runs without a word."""
    import warnings as w

    from scopeml.cli import main
    from scopeml.io import Image

    czann = tmp_path / "m.czann"
    assert main(["model", "convert", str(write_model_file(tmp_path / "u.czann", depth=1)),
                 "-o", str(czann), "--scaling", "5.2e-7,5.2e-7"]) == 0  # fmt: skip
    pixels = random_image((1, 1, 1, 1, 64, 64))
    image = Image(pixels, pixel_sizes={"Y": 0.065, "X": 0.065})
    with pytest.warns(
        UserWarning,
        match=r"its pixels are 0.065 µm, the model was trained at "
        r"0.52 µm: at scale 1 it sees pixels 0.12× its own; --scale 0.125",
    ):
        segment(image, czann, tmp_path / "a.ome.zarr", scale=1)  # fmt: skip
    with w.catch_warnings():
        w.simplefilter("error")
        segment(image, czann, tmp_path / "b.ome.zarr", scale=0.125)
        segment(pixels, czann, tmp_path / "c.ome.zarr", scale=1)  # no pixel size: no word
