"""The bioio adaptor: the reader conformance suite through bioio's plugins, compared with
scopeml's own readers; the registry's fallback; bad files; segmenting through the adaptor."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import tifffile

from scopeml.errors import InvalidImageError
from scopeml.io import create_ome_zarr, open_image
from scopeml.io.bioio import BioioImage, read_bioio
from scopeml.io.testing import nuclei_image, to_stczyx
from tests.io import test_readers as native

needs_bioio = pytest.mark.skipif(
    importlib.util.find_spec("bioio") is None, reason="bioio is not installed (scopeml[formats])"
)
needs_imageio_plugin = pytest.mark.skipif(
    importlib.util.find_spec("bioio_imageio") is None, reason="bioio-imageio is not installed"
)


class BioioReaderTests:
    """A native reader's conformance tests run on the adaptor, plus a comparison with it.

    Mixed in before the native test class, so ``make`` (the file and its pixels) is shared and
    only the opening changes: ``read_bioio`` forces the adaptor whatever the suffix.
    """

    plugin: ClassVar[str] = ""
    #: Name the plugin: bioio picks readers by suffix, and an image group has none.
    force: ClassVar[bool] = False

    def open(self, path: Path, **options: int) -> BioioImage:
        return read_bioio(path, plugin=self.plugin if self.force else None, **options)

    @pytest.fixture
    def sample(self, tmp_path):
        path, expected = self.make(tmp_path)
        image = self.open(path)
        assert image.plugin.split()[0] == self.plugin
        yield image, expected
        image.close()

    def test_a_scene_that_does_not_exist_is_an_invalid_image(self, tmp_path):
        path, _ = self.make(tmp_path)
        with pytest.raises(InvalidImageError, match="scene 7 does not exist") as info:
            self.open(path, scene=7)
        assert info.value.path == str(path)

    def test_pixels_and_metadata_equal_the_native_reader(self, tmp_path):
        path, _ = self.make(tmp_path)
        with open_image(path) as ours, self.open(path) as theirs:
            assert isinstance(theirs, BioioImage) and not isinstance(ours, BioioImage)
            assert (theirs.shape, theirs.dtype) == (ours.shape, ours.dtype)
            assert theirs.channel_names == ours.channel_names
            assert theirs.pixel_sizes == pytest.approx(ours.pixel_sizes)
            np.testing.assert_array_equal(theirs.read(), ours.read())


@needs_bioio
class TestBioioOmeTiff(BioioReaderTests, native.TestOmeTiff):
    """OME-TIFF with sizes in nm and µm: bioio drops the units; the adaptor converts them."""

    plugin = "bioio-ome-tiff"


@needs_bioio
class TestBioioOmeZarr(BioioReaderTests, native.TestOmeZarr):
    """An image group inside a root (``out.ome.zarr/image``)."""

    plugin = "bioio-ome-zarr"
    force = True


@needs_bioio
class TestBioioOmeZarrV04(BioioReaderTests, native.TestOmeZarrV04):
    plugin = "bioio-ome-zarr"


@needs_bioio
class TestBioioImageJTiff(BioioReaderTests, native.TestImageJTiff):
    """ImageJ hyperstack: Z spacing and resolution tags through bioio-tifffile."""

    plugin = "bioio-tifffile"
    force = True  # bioio prefers bioio-ome-tiff for .tif


@needs_bioio
class TestBioioPlainRgbTiff(BioioReaderTests, native.TestPlainRgbTiff):
    """RGB samples (bioio's ``S`` axis) become channels R, G, B; no resolution: no sizes."""

    plugin = "bioio-tifffile"
    force = True


@needs_bioio
class TestBioioOmeTiffScenes(BioioReaderTests, native.ReaderTests):
    """Two equally sized OME-TIFF series become S = 2, each read from its own series."""

    plugin = "bioio-ome-tiff"
    pixel_sizes: ClassVar[dict[str, float]] = {"X": 0.5, "Y": 0.5}
    channel_names = ("dna", "actin")

    def make(self, tmp_path):
        scenes = [nuclei_image((30, 40), seed=s) for s in (20, 21)]  # C Y X each
        path = tmp_path / "scenes.ome.tif"
        metadata = {
            "axes": "CYX",
            "PhysicalSizeX": 0.5,
            "PhysicalSizeY": 0.5,
            "Channel": {"Name": list(self.channel_names)},
        }
        with tifffile.TiffWriter(path, ome=True) as writer:
            for data in scenes:
                writer.write(data, tile=(16, 16), metadata=metadata, photometric="minisblack")
        return path, np.concatenate([to_stczyx(d, "CYX") for d in scenes])


@needs_bioio
@needs_imageio_plugin
class TestBioioPngRgb(BioioReaderTests, native.TestPngRgb):
    """RGB samples (bioio's ``S`` axis) become channels R, G, B, as in scopeml's PNG reader."""

    plugin = "bioio-imageio"


@needs_bioio
@needs_imageio_plugin
class TestBioioPngGray16(BioioReaderTests, native.TestPngGray16):
    plugin = "bioio-imageio"


@needs_bioio
def test_scenes_of_different_sizes_are_opened_one_at_a_time(tmp_path):
    path = tmp_path / "two.ome.tif"
    scenes = [nuclei_image((30, 40), seed=1), nuclei_image((20, 25), seed=2)]
    with tifffile.TiffWriter(path, ome=True) as writer:
        for data in scenes:
            writer.write(data, metadata={"axes": "CYX"}, photometric="minisblack")
    with pytest.raises(
        InvalidImageError, match=r"2 scenes of different sizes \(0: 30×40, 1: 20×25"
    ):
        read_bioio(path)
    with read_bioio(path, scene=1) as second:
        assert second.scene_names == ("Image:0", "Image:1")
        np.testing.assert_array_equal(second.read(), to_stczyx(scenes[1], "CYX"))


# ---------------------------------------------------------------------------- regions


def _zarr_with_chunks(tmp_path: Path) -> tuple[Path, np.ndarray]:
    data = nuclei_image((64, 64), channels=1, seed=30)[0]
    path = tmp_path / "chunks.ome.zarr"
    array = create_ome_zarr(
        path,
        shape=data.shape,
        dtype=data.dtype,
        axes="YX",
        chunks=(16, 16),
        pixel_sizes={"Y": 0.5, "X": 0.5},
    )
    array[:] = data
    return path, data


@needs_bioio
def test_a_region_read_decodes_only_the_chunks_it_overlaps(tmp_path):
    """A corrupt chunk far from the region is never decoded; a read that reaches it fails
    with an error naming the file."""
    path, data = _zarr_with_chunks(tmp_path)
    (path / "0" / "c" / "3" / "3").write_bytes(b"not a zstd frame")
    with read_bioio(path) as image:
        assert image.region_reads == "chunks of 16×16 (Y×X)"
        region = image.read(Y=slice(5, 40), X=slice(0, 47))
        np.testing.assert_array_equal(region[0, 0, 0, 0], data[5:40, 0:47])
        with pytest.raises(InvalidImageError, match=r"cannot read pixels at .*Y=40:64") as info:
            image.read(Y=slice(40, 64))
        assert info.value.path == str(path)


@needs_bioio
def test_a_plane_reading_plugin_says_so(tmp_path):
    path, _ = native.TestOmeTiff().make(tmp_path)
    with read_bioio(path) as image:
        assert image.region_reads == "whole 40×50 planes (the plugin cannot read regions)"


@needs_bioio
def test_a_pyramid_level_is_read_where_the_plugin_has_one(tmp_path):
    from scopeml.io import write_pyramid

    path, _ = _zarr_with_chunks(tmp_path)
    write_pyramid(path, levels=2)
    with read_bioio(path, level=1) as level1, open_image(path, level=1) as ours:
        assert level1.shape == ours.shape == (1, 1, 1, 1, 32, 32)
        assert level1.pixel_sizes == ours.pixel_sizes == {"Y": 1.0, "X": 1.0}
        np.testing.assert_array_equal(level1.read(), ours.read())
    with pytest.raises(InvalidImageError, match="level 5 does not exist"):
        read_bioio(path, level=5)


# ---------------------------------------------------------------------------- the registry


def write_zipped_ome_zarr(path: Path, data: np.ndarray) -> Path:
    """A zipped OME-Zarr (``.ozx``, NGFF 0.5): a format bioio-ome-zarr reads and scopeml not."""
    import zarr
    from zarr.storage import ZipStore

    from scopeml.io.omezarr import multiscales_metadata

    ome = {
        "version": "0.5",
        "multiscales": [multiscales_metadata("CYX", {"X": 0.5, "Y": 0.5})],
        "omero": {"channels": [{"label": f"c{i}"} for i in range(data.shape[0])]},
    }
    with ZipStore(path, mode="w") as store:
        group = zarr.open_group(store, mode="w", zarr_format=3, attributes={"ome": ome})
        array = group.create_array(
            "0", shape=data.shape, dtype=data.dtype, chunks=(1, 16, 16), dimension_names="cyx"
        )
        array[:] = data
    return path


@needs_bioio
def test_a_format_only_bioio_reads_opens_through_the_registry(tmp_path):
    data = nuclei_image((37, 45), channels=2, seed=31)
    path = write_zipped_ome_zarr(tmp_path / "cells.ozx", data)
    with open_image(path) as image:
        assert isinstance(image, BioioImage) and image.plugin.startswith("bioio-ome-zarr ")
        assert (image.channel_names, image.pixel_sizes) == (("c0", "c1"), {"Y": 0.5, "X": 0.5})
        assert image.region_reads == "chunks of 16×16 (Y×X)"
        np.testing.assert_array_equal(image.read(), to_stczyx(data, "CYX"))


def test_scopeml_formats_keep_their_own_readers(tmp_path):
    path, _ = native.TestOmeTiff().make(tmp_path)
    with open_image(path) as image:
        assert type(image).__name__ == "Image"


@needs_bioio
def test_a_file_nothing_reads_names_the_file_and_what_was_tried(tmp_path):
    path = tmp_path / "scan.qptiff"
    path.write_bytes(b"\0" * 64)
    with pytest.raises(InvalidImageError) as info:
        open_image(path)
    message = str(info.value)
    assert info.value.path == str(path)
    assert message.startswith(f"{path}: unknown image format '.qptiff'; known: .btf, .czi")
    assert "no installed bioio plugin reads it (tried bioio-" in message
    assert "bioio-qptiff reads it (pip install bioio-qptiff)" in message


@needs_bioio
def test_a_corrupt_vendor_file_is_an_invalid_image(tmp_path):
    """Said by the plugin that reads the suffix, in its words (bioio only says no plugin read
    it): the format is known, the file is not what it says."""
    from importlib.metadata import PackageNotFoundError, version

    path = tmp_path / "run.nd2"
    path.write_bytes(b"ND2 but not really" * 10)
    try:
        version("bioio-nd2")
    except PackageNotFoundError:
        said = r"run\.nd2: unknown image format '\.nd2'.*nd2"
    else:
        said = r"run\.nd2: bioio-nd2 cannot read it: File is not supported by ND2"
    with pytest.raises(InvalidImageError, match=said):
        open_image(path)


@needs_bioio
def test_a_folder_nothing_reads_is_named_as_a_folder(tmp_path):
    folder = tmp_path / "plate"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    with pytest.raises(InvalidImageError) as info:
        open_image(folder)
    assert str(info.value).startswith(
        f"{folder}: unknown image format (a folder without zarr metadata); known: .btf"
    )
    assert "bioio-imagexpress" in str(info.value)
    assert str(info.value).endswith("; a folder of images goes to analyze, with a settings file")


def test_without_bioio_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bioio", None)  # import bioio raises ImportError
    path = tmp_path / "run.lif"
    path.write_bytes(b"\0" * 8)
    with pytest.raises(InvalidImageError, match=r"run\.lif: unknown image format '\.lif'") as err:
        open_image(path)
    assert "bioio is not installed (pip install 'scopeml[formats]')" in str(err.value)


@needs_bioio
def test_an_unknown_plugin_name_lists_the_installed_ones(tmp_path):
    path, _ = _zarr_with_chunks(tmp_path)
    with pytest.raises(
        InvalidImageError, match=r"'bioio-nope' is not installed; installed: .*zarr"
    ):
        read_bioio(path, plugin="bioio-nope")


# ---------------------------------------------------------------------------- downstream


@needs_bioio
def test_segment_through_the_adaptor_equals_segment_through_the_native_reader(tmp_path):
    from scopeml.api import segment

    model = Path(__file__).parents[2] / "src" / "scopeml" / "data" / "nuclei.czann"
    path, _ = native.TestOmeTiff().make(tmp_path)
    outputs = {}
    for name, image in (("ours", open_image(path)), ("bioio", read_bioio(path))):
        with image:
            out = segment(image, model, tmp_path / f"{name}.ome.zarr", channels=["nuclei"])
        outputs[name] = open_image(out / "labels")
    assert outputs["bioio"].shape == outputs["ours"].shape == (1, 2, 1, 3, 40, 50)
    assert outputs["bioio"].pixel_sizes == pytest.approx(outputs["ours"].pixel_sizes)
    np.testing.assert_array_equal(outputs["bioio"].read(), outputs["ours"].read())
    assert len(np.unique(outputs["ours"].read())) > 1  # the model found nuclei


@needs_bioio
def test_the_command_line_trains_segments_measures_a_bioio_file_as_its_native_twin(tmp_path):
    """``pixel train``, ``segment`` and ``objects measure`` on a zipped OME-Zarr (through the
    registry's fallback) give what they give on the same pixels in an OME-Zarr folder (scopeml's
    reader)."""
    from scopeml.cli import main
    from scopeml.synthetic import synthetic_nuclei

    data, truth = synthetic_nuclei((64, 80), density=0.004, seed=41)  # C Y X, instance ids
    zipped = write_zipped_ome_zarr(tmp_path / "cells.ozx", data)
    twin = tmp_path / "cells.ome.zarr"
    create_ome_zarr(
        twin,
        shape=data.shape,
        dtype=data.dtype,
        axes="CYX",
        chunks=(1, 16, 16),
        pixel_sizes={"Y": 0.5, "X": 0.5},
        channel_names=["c0"],
    )[:] = data
    scribbles = np.zeros(truth.shape, np.uint8)  # every 7th pixel: 1 background, 2 nucleus
    scribbles[::7, ::7] = np.where(truth[::7, ::7] > 0, 2, 1)
    tifffile.imwrite(tmp_path / "scribbles.tif", scribbles)
    labels = {}
    for name, image in (("bioio", zipped), ("native", twin)):
        model = tmp_path / f"{name}.czseg"
        train = ["pixel", "train", str(image), str(tmp_path / "scribbles.tif"), "-o", str(model)]
        assert main([*train, "--n-estimators", "8", "--jobs", "1"]) == 0
        out = tmp_path / f"{name}.ome.zarr"
        assert main(["segment", str(image), "-m", str(model), "-o", str(out), "-q"]) == 0
        with open_image(out / "labels") as result:
            assert result.pixel_sizes == {"Y": 0.5, "X": 0.5}
            labels[name] = result.read()
    np.testing.assert_array_equal(labels["bioio"], labels["native"])
    assert set(np.unique(labels["native"])) == {1, 2}
    nuclei = tmp_path / "nuclei.ome.zarr"
    assert main(["objects", "label", str(tmp_path / "native.ome.zarr" / "labels"), "-o",
                 str(nuclei), "--class-id", "2"]) == 0  # fmt: skip
    tables = {}
    for name, image in (("bioio", zipped), ("native", twin)):
        table = tmp_path / f"{name}.csv"
        measure = ["objects", "measure", str(nuclei), "--image", str(image), "-o", str(table)]
        assert main([*measure, "-q"]) == 0
        tables[name] = table.read_text()
    assert tables["bioio"] == tables["native"]
    assert len(tables["native"].splitlines()) >= 3  # a header and nuclei
    assert "intensity_mean" in tables["native"].splitlines()[0]


# ---------------------------------------------------------------------------- untrusted files


@needs_bioio
def test_a_chunk_over_the_limit_is_refused_before_any_pixel_is_read(tmp_path):
    """Plane-reading plugins decode a whole plane per read: a huge plane is refused."""
    from scopeml.io.limits import ImageLimits

    path, _ = native.TestOmeTiff().make(tmp_path)
    limits = ImageLimits(max_chunk_bytes=1000)
    with pytest.raises(InvalidImageError, match=r"bioio-ome-tiff .* chunk of .*40×50 pixels"):
        read_bioio(path, limits=limits)
    zipped = write_zipped_ome_zarr(tmp_path / "a.ozx", nuclei_image((40, 50), seed=1))
    with open_image(zipped, limits=limits) as image:  # 16×16 chunks fit
        assert image.shape[4:] == (40, 50)


@needs_bioio
def test_a_file_bioio_cannot_label_is_read_as_its_plugin_reads_it(tmp_path):
    """A DeltaVision file whose header lists fewer wavelengths than it has channels (bioio-dv
    1.2.0 then fails inside bioio's xarray labelling, as on a real two-wavelength file): its
    planes are read as the plugin's own reader orders them, the pixels the file holds."""
    mrc = pytest.importorskip("mrc")
    path = tmp_path / "stack.dv"
    pixels = nuclei_image((3, 20, 30), channels=1, seed=2)[0]
    mrc.save(pixels, str(path), ifExists="overwrite")  # a header of 3 waves, wave1 only named
    with open_image(path) as image:
        assert image.sizes["C"] == mrc.DVFile(str(path)).hdr.nc == 3
        np.testing.assert_array_equal(image.read()[0, 0, :, 0], pixels)
        assert image.channel_names == ("C0", "C1", "C2")  # the plugin's indices: no names


@needs_bioio
def test_within_allowed_folders_a_multi_file_plugin_is_refused(tmp_path):
    path = write_zipped_ome_zarr(tmp_path / "a.ozx", nuclei_image((20, 30), seed=1))
    with pytest.raises(InvalidImageError, match="only use plugins that open one file"):
        open_image(path, allowed_roots=[tmp_path])


@needs_bioio
@needs_imageio_plugin
def test_within_allowed_folders_every_read_checks_the_file(tmp_path):
    from PIL import Image as PILImage

    from scopeml.errors import OutsideRootError

    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    data = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    PILImage.fromarray(data).save(inside / "cells.bmp")
    PILImage.fromarray(data[::-1].copy()).save(outside / "secret.bmp")
    image = open_image(inside / "cells.bmp", allowed_roots=[inside])
    assert image.plugin.startswith("bioio-imageio ")
    np.testing.assert_array_equal(image.read()[0, 0, 0, 0], data)
    (inside / "cells.bmp").unlink()
    (inside / "cells.bmp").symlink_to(outside / "secret.bmp")  # swapped after opening
    with pytest.raises(OutsideRootError, match=r"cells\.bmp: resolves to .*secret\.bmp"):
        image.read()
    with pytest.raises(OutsideRootError):
        open_image(inside / "cells.bmp", allowed_roots=[inside])


def test_the_readme_names_every_plugin_of_the_formats_extra():
    import tomllib

    root = Path(__file__).parents[2]
    extra = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    plugins = [r.split(">")[0] for r in extra["formats"] if r.startswith("bioio-")]
    readme = (root / "README.md").read_text()
    assert len(plugins) >= 8
    for plugin in plugins:
        assert f"`{plugin}`" in readme or f"`-{plugin.removeprefix('bioio-')}`" in readme, plugin
