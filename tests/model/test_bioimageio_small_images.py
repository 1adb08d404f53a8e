"""The built-in ``nuclei`` exported as a bioimage.io package gives the built-in's result on an
image smaller than the package's declared minimum (240 px, tied by bioimage.io to the 112 px
halo): the package records the smallest input its graph takes (``config: scopeml:
smallest_input``), and scopeml pads such an image only to the graph's step, as for the czann."""

from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest
import yaml

pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")

import scopeml as sm
from scopeml.errors import InvalidContainerError
from scopeml.model.bioimageio import export_bioimageio
from scopeml.synthetic import realistic_nuclei


@pytest.fixture(scope="module")
def nuclei_package(tmp_path_factory):
    return export_bioimageio("nuclei", tmp_path_factory.mktemp("pkg") / "nuclei.zip")


@pytest.fixture(scope="module")
def small_image():
    image, _ = realistic_nuclei((80, 90), seed=3)
    return image[0]


def rewritten(package, target, change) -> object:
    """A copy of ``package`` whose description's ``config: scopeml:`` went through ``change``."""
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(target, "w") as copy:
        for name in source.namelist():
            data = source.read(name)
            if name.endswith(".yaml"):
                description = yaml.safe_load(data)
                change(description["config"]["scopeml"])
                data = yaml.safe_dump(description).encode()
            copy.writestr(name, data)
    return target


def probabilities(image, model, **options):
    return sm.predict_region(
        image, model, outputs="probabilities", options=sm.SegmentOptions(**options)
    )


def test_package_declares_the_halo_minimum_and_records_the_graphs_own(nuclei_package):
    with zipfile.ZipFile(nuclei_package) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".yaml"))
        description = yaml.safe_load(archive.read(name))
    sizes = [axis["size"] for axis in description["inputs"][0]["axes"] if axis["type"] == "space"]
    assert sizes == [{"min": 240, "step": 16}] * 2  # bioimage.io: min > 2 × halo 112
    assert description["config"]["scopeml"]["smallest_input"] == [16, 16]


def test_package_equals_the_builtin_on_an_image_under_its_minimum(nuclei_package, small_image):
    expected = probabilities(small_image, "nuclei", scale=1)
    got = probabilities(small_image, nuclei_package, scale=1)
    assert got.shape == expected.shape == (3, 80, 90)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    labels = sm.predict_region(small_image, nuclei_package)  # its default: --scale auto
    np.testing.assert_array_equal(labels, sm.predict_region(small_image, "nuclei"))


def test_without_the_record_the_image_is_padded_to_the_minimum_and_differs(
    nuclei_package, small_image, tmp_path
):
    """Why the record is needed: padded to 240 px, the network's biases make the added zeros
    unlike its own zero padding, so values change across this image (all of it lies within
    the halo of its far border)."""
    package = rewritten(nuclei_package, tmp_path / "old.zip", lambda c: c.pop("smallest_input"))
    expected = probabilities(small_image, "nuclei", scale=1)
    assert np.abs(probabilities(small_image, package, scale=1) - expected).max() > 0.05
    large, _ = realistic_nuclei((256, 272), seed=4)  # at least the minimum: equal either way
    np.testing.assert_allclose(
        probabilities(large[0], package, scale=1),
        probabilities(large[0], "nuclei", scale=1),
        rtol=0,
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "value", [[7, 16], [16], [0, 16], [256, 256], [16.0, 16], "16", [True, 16]], ids=repr
)
def test_a_smallest_input_off_the_declared_sizes_is_refused(nuclei_package, tmp_path, value):
    package = rewritten(
        nuclei_package, tmp_path / "bad.zip", lambda c: c.update(smallest_input=value)
    )
    with pytest.raises(InvalidContainerError) as caught:
        sm.open_model(package)
    message = str(caught.value)
    assert message.startswith(f"{package}: config.scopeml.smallest_input is ")
    assert re.search(
        r"expected (2 positive whole numbers|at most the declared minimum 240)", message
    )
