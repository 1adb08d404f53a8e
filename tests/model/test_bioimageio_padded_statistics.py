"""An exported package's README says that bioimageio.core's normalisation statistics include
its halo padding, so outputs differ (slightly) inside the border band too, not only within it:
measured for ``nuclei`` on stardist's real ``img2d.tif`` (scores up to 0.034 apart inside the
band). The README said "inside that band the results agree"."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from scopeml.model.container import write_container
from scopeml.model.testing import tiny_unet_onnx, unet_receptive_halo
from tests.model.model_builders import unet_metadata


def _readme(tmp_path, normalize):
    from scopeml.model.bioimageio import export_bioimageio

    meta = unet_metadata(
        n_classes=3,
        classes=("background", "nucleus", "boundary"),
        normalize=normalize,
        min_overlap=(unet_receptive_halo(2),) * 2,  # the graph's whole receptive field
    )
    czann = write_container(
        tmp_path / "seg.czann", tiny_unet_onnx(n_classes=3, depth=2, seed=4), meta
    )
    package = export_bioimageio(czann, tmp_path / "seg.zip")
    return package, zipfile.ZipFile(package).read("README.md").decode()


@pytest.mark.parametrize(
    ("normalize", "what"),
    [("percentile:1,99.8", "percentiles"), ("meanstd", "mean and standard deviation")],
)
def test_readme_says_core_takes_the_statistics_with_its_padding(tmp_path, normalize, what):
    pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")
    _, readme = _readme(tmp_path, normalize)
    border = readme.split("## Border handling\n\n")[1].split("\n## ")[0]
    assert f"inside that band the results agree when both take the same {what}" in border
    assert "takes them over the image with its padding" in border


def test_readme_of_a_raw_model_keeps_the_plain_statement(tmp_path):
    pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")
    _, readme = _readme(tmp_path, None)
    assert "of the image border; inside that band the results agree.\n" in readme
    assert "padding, so" not in readme


def test_core_differs_inside_the_band_as_the_readme_says(tmp_path):
    """What the README states, measured: bioimageio.core's scores differ from scopeml's
    inside the band, and agree there once given scopeml's statistics (the unpadded image's)."""
    pytest.importorskip("bioimageio.core", reason="bioimageio.core is not installed")
    import onnxruntime as ort
    import zarr
    from bioimageio.core import load_description, predict

    import scopeml as sm
    from scopeml.io.image import Image

    package, _ = _readme(tmp_path, "percentile:1,99.8")
    rng = np.random.default_rng(0)
    pixels = rng.gamma(2.0, 40.0, (128, 136)).astype(np.float32)
    pixels[30:60, 40:90] += 400  # a bright object: the padding mirrors it, the tails move
    description = load_description(package)
    core = predict(model=description, inputs={"input": pixels[None, :, :, None]})
    scores = np.squeeze(next(iter(core.members.values())).data.values)
    sm.segment(Image(pixels[None, None, None, None]), package, tmp_path / "s.ome.zarr",
                     outputs=["probabilities"], tile_size=64)  # fmt: skip
    store = zarr.open_group(tmp_path / "s.ome.zarr", mode="r")
    ours = np.moveaxis(np.asarray(store["probabilities"]["0"]).reshape(3, 128, 136), 0, -1)
    halo = max(description.outputs[0].axes[1].halo, description.outputs[0].axes[2].halo)
    inside = (slice(halo, -halo), slice(halo, -halo))
    assert np.abs(scores - ours)[inside].max() > 1e-4
    # the cause: the graph given the mirrored padding and the padded image's percentiles is
    # core's result; with the unpadded image's percentiles it is scopeml's inside the band
    session = ort.InferenceSession(zipfile.ZipFile(package).read("weights.onnx"))
    padded = np.pad(pixels, halo, mode="symmetric")

    def run(stats_of: np.ndarray) -> np.ndarray:
        low, high = np.percentile(stats_of, [1, 99.8])
        batch = ((padded - low) / (high - low + 1e-6)).astype(np.float32)[None, :, :, None]
        return session.run(None, {session.get_inputs()[0].name: batch})[0][
            0, halo:-halo, halo:-halo
        ]

    np.testing.assert_allclose(run(padded), scores, atol=1e-5)
    np.testing.assert_allclose(run(pixels)[inside], ours[inside], atol=1e-5)
