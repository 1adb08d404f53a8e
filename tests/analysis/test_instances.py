"""The ``instances`` segmenter is ``scopeml segment --outputs instances``: the same code, options
and defaults, so the same image and model give the same objects; it runs tile by tile (out of
core) past ``memory_mb`` like the threshold classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.analysis import AnalysisSettings, ClassSettings, InstancesSegmenter, run_analysis
from scopeml.analysis import image as image_module
from scopeml.analysis.settings import FillHoles, RemoveSmall, ThresholdSegmenter
from scopeml.api import segment
from scopeml.io import open_image
from scopeml.objects.instances import InstanceOptions
from scopeml.server.words import in_job_words
from scopeml.synthetic import realistic_nuclei
from tests.analysis.conftest import cell_image, write_image


def nuclei_series(path: Path, shape: tuple[int, int] = (192, 192)) -> Path:
    """A 2-time-point DAPI OME-TIFF of crowded, touching nuclei (another scene per time)."""
    planes = [realistic_nuclei(shape, seed=seed)[0][0] for seed in (3, 8)]
    pixels = np.stack([np.clip(p / p.max() * 4000 + 100, 0, 65535) for p in planes])
    tifffile.imwrite(path, pixels.astype(np.uint16)[:, None], ome=True,
                     metadata={"axes": "TCYX", "Channel": {"Name": ["DAPI"]}})  # fmt: skip
    return path


def nuclei_settings(**options: object) -> AnalysisSettings:
    segmenter = {"model": "nuclei", "class": "nucleus", "channels": ["DAPI"], **options}
    return AnalysisSettings(
        channels=["DAPI"],
        classes=[ClassSettings(name="nucleus",
                               segmenter=InstancesSegmenter.model_validate(segmenter))],
    )  # fmt: skip


def test_the_defaults_are_segments() -> None:
    seg = InstancesSegmenter.model_validate(
        {"model": "nuclei", "class": "nucleus", "channels": ["DAPI"]}
    )
    assert seg.instance_options() == InstanceOptions(class_="nucleus")
    assert (seg.seed_threshold, seg.grow, seg.min_size) == (0.6, 4.0, 8)


@pytest.mark.parametrize(
    "options",
    [{}, {"seed_threshold": None, "grow": 2.0, "min_size": 30, "boundary_class": "boundary"}],
)
def test_analysis_instances_equal_segments(tmp_path: Path, options: dict) -> None:
    image = nuclei_series(tmp_path / "series.ome.tif")
    result = run_analysis(nuclei_settings(**options), [image], tmp_path / "out")
    analysed = open_image(tmp_path / "out" / "images" / "series" / "nucleus.ome.zarr").read()
    wanted = InstanceOptions(class_="nucleus", **options)  # the YAML keys are its keywords
    segmented = segment(image, "nuclei", tmp_path / "seg.ome.zarr", outputs=("instances",),
                        instances=wanted).instances.read()  # fmt: skip
    assert analysed.shape == segmented.shape and analysed.shape[1] == 2
    offset = 0
    for t in range(2):  # segment numbers on over time points; the analysis from 1 per plane
        mine, theirs = analysed[0, t, 0, 0], segmented[0, t, 0, 0].astype(np.int64)
        np.testing.assert_array_equal(mine, np.where(theirs > 0, theirs - offset, 0))
        assert mine.max() == len(np.unique(mine)) - 1 >= 10  # ids 1..n in each plane
        assert theirs[theirs > 0].min() == offset + 1  # so the second plane tests the offset
        offset = int(theirs.max())
    counts = result.counts["series"]["nucleus"]
    assert counts == offset  # both time points' objects, as many as segment found
    if not options:  # the options reach the instances: others give other objects
        other = run_analysis(nuclei_settings(min_size=200), [image], tmp_path / "other")
        assert other.counts["series"]["nucleus"] < counts


def test_a_model_class_over_scenes_of_different_sizes(tmp_path: Path) -> None:
    """Each scene of a file whose scenes differ in size runs the model on its own, with what
    ``scopeml segment --scene N`` finds in it."""
    path = tmp_path / "plate.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for shape, seed in (((128, 160), 3), ((96, 112), 8)):
            plane = realistic_nuclei(shape, seed=seed)[0][0]
            pixels = np.clip(plane / plane.max() * 4000 + 100, 0, 65535).astype(np.uint16)
            tif.write(pixels[None], metadata={"axes": "CYX", "Channel": {"Name": ["DAPI"]}})
    result = run_analysis(nuclei_settings(), [path], tmp_path / "out")
    store = tmp_path / "out" / "images" / "plate" / "nucleus.ome.zarr"
    found = 0
    for scene in (0, 1):
        analysed = open_image(store, scene=scene).read()[0, 0, 0, 0]
        segmented = segment(path, "nuclei", tmp_path / f"seg{scene}.ome.zarr", scene=scene,
                            outputs=("instances",)).instances.read()[0, 0, 0, 0]  # fmt: skip
        np.testing.assert_array_equal(analysed, segmented)
        assert analysed.max() >= 5
        found += int(analysed.max())
    assert result.counts["plate"]["nucleus"] == found


def test_an_analysis_class_runs_its_model_at_its_scale(tmp_path: Path) -> None:
    image = nuclei_series(tmp_path / "series.ome.tif", shape=(96, 96))
    run_analysis(nuclei_settings(scale=1.5), [image], tmp_path / "out")
    analysed = open_image(tmp_path / "out" / "images" / "series" / "nucleus.ome.zarr").read()
    segmented = segment(image, "nuclei", tmp_path / "seg.ome.zarr", outputs=("instances",),
                        scale=1.5).instances.read()[0, 0, 0, 0]  # fmt: skip
    at_one = segment(image, "nuclei", tmp_path / "one.ome.zarr",
                     outputs=("instances",)).instances.read()[0, 0, 0, 0]  # fmt: skip
    np.testing.assert_array_equal(analysed[0, 0, 0, 0] > 0, segmented > 0)
    assert not np.array_equal(segmented > 0, at_one > 0)  # the scale reached the model


@pytest.mark.parametrize(
    ("kind", "post"), [("instances", [RemoveSmall(min_size=40)]),
                       ("model", [FillHoles(), RemoveSmall(min_size=40)])],
)  # fmt: skip
def test_out_of_core_model_classes_inside_parents_equal_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, post: list
) -> None:
    """Instances (with area filters) and a model's class mask (with mask steps too), cut to
    their parents, run tile by tile past memory_mb (nothing whole-plane), and give what the
    in-memory plane gives."""
    image = write_image(tmp_path / "img.ome.tif", cell_image((200, 220), seed=6, n_cells=0))
    classes = [
        ClassSettings(name="cell", segmenter=ThresholdSegmenter(channel="GFP", sigma=1.0),
                      post=[FillHoles(), RemoveSmall(min_size=100)]),
        ClassSettings.model_validate({
            "name": "nucleus", "parent": "cell", "post": post,
            "segmenter": {"kind": kind, "model": "nuclei", "class": "nucleus",
                          "channels": ["DAPI"]}}),
    ]  # fmt: skip
    settings = AnalysisSettings(channels=["DAPI", "GFP"], classes=classes, tile_size=64)
    whole_plane: list[str] = []
    real = image_module.segment_class

    def spy(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
        whole_plane.append(cls.name)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(image_module, "segment_class", spy)
    stored = {}
    for budget in (0, 512):
        out = tmp_path / f"mb{budget}"
        run_analysis(settings.model_copy(update={"memory_mb": budget}), [image], out)
        stored[budget] = open_image(out / "images" / "img" / "nucleus.ome.zarr").read()[0, 0, 0, 0]
    assert whole_plane == []
    np.testing.assert_array_equal(stored[0], stored[512])
    cells = open_image(tmp_path / "mb0" / "images" / "img" / "cell.ome.zarr").read()[0, 0, 0, 0]
    assert not stored[0][cells == 0].any()  # inside the cells: one nucleus in each
    assert len(np.unique(stored[0])) == len(np.unique(cells)) == 7


def test_a_whole_plane_class_past_memory_mb_is_announced(tmp_path: Path) -> None:
    image = nuclei_series(tmp_path / "series.ome.tif", (96, 96))
    settings = nuclei_settings().model_copy(update={"memory_mb": 0})
    nucleus = settings.classes[0].model_copy(update={"post": [FillHoles()]})
    settings = settings.model_copy(update={"classes": [nucleus]})
    with pytest.warns(UserWarning, match=r"class 'nucleus' runs on its whole 96×96 plane.*"
                      r"FillHoles.*over memory_mb 0"):  # fmt: skip
        result = run_analysis(settings, [image], tmp_path / "out")
    assert result.counts["series"]["nucleus"] > 0


def test_a_model_runs_in_the_engines_default_tile_not_wider(tmp_path: Path, monkeypatch) -> None:
    """Every worker process holds one model tile, so an analysis keeps it at ``DEFAULT_TILE``
    (512²) where ``segment`` widens its own default to eight halos (896² for ``nuclei``: about
    1.6× the peak memory), whatever the settings' larger ``tile_size``."""
    import scopeml.api
    from scopeml.model import open_model
    from scopeml.tiling.engine import DEFAULT_TILE, default_tile

    image = nuclei_series(tmp_path / "series.ome.tif", (96, 96))
    asked: list[object] = []
    real = scopeml.api.segment

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        asked.append(kwargs["tile_size"])
        return real(*args, **kwargs)

    monkeypatch.setattr(scopeml.api, "segment", spy)
    settings = nuclei_settings()
    assert settings.tile_size > DEFAULT_TILE[2]
    run_analysis(settings, [image], tmp_path / "out")
    assert min(default_tile(open_model("nuclei").spec)) > DEFAULT_TILE[2]
    assert asked == [DEFAULT_TILE[2]]  # one scene, one model class


def test_a_class_mask_of_a_model_that_splits_at_a_boundary_is_warned_about(tmp_path: Path) -> None:
    """``kind: model`` with ``nuclei`` takes the nucleus pixels alone: touching nuclei joined,
    each without its boundary ring (smaller than segment's). Said once, before any image;
    ``kind: instances`` (segment's objects) and the boundary class itself are not warned about."""
    import warnings

    from scopeml.analysis.settings import ModelSegmenter

    image = nuclei_series(tmp_path / "series.ome.tif", shape=(96, 96))

    def run(segmenter: object, name: str) -> list[str]:
        settings = AnalysisSettings(channels=["DAPI"], classes=[
            ClassSettings(name="nucleus", segmenter=segmenter)])  # fmt: skip
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            run_analysis(settings, [image], tmp_path / name)
        return [str(w.message) for w in seen if "kind: instances gives" in str(w.message)]

    mask = {"model": "nuclei", "class": "nucleus", "channels": ["DAPI"]}
    (said,) = run(ModelSegmenter.model_validate(mask), "mask")
    assert said.startswith("class nucleus: kind: model takes the nucleus pixels of nuclei alone")
    assert "boundary ring" in said
    assert in_job_words(said, analysis=True) == said  # a server's job read "segment the
    # settings' outputs: instances"
    assert not run(ModelSegmenter.model_validate({**mask, "class": "boundary"}), "ring")
    assert not run(InstancesSegmenter.model_validate(mask), "objects")


def test_a_model_needs_no_class_or_channels_where_the_settings_say_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``kind: instances`` / ``model`` with only ``model: nuclei`` (it asked for ``class:``
    and ``channels:``): the model's one object class, the settings' channels; a model that
    reads one channel among two is told to name it, at the file's line."""
    from scopeml.analysis.settings import parse_settings
    from scopeml.cli import main

    image = nuclei_series(tmp_path / "series.ome.tif")
    explicit = run_analysis(nuclei_settings(), [image], tmp_path / "explicit")
    blob = {"name": "nucleus", "segmenter": {"kind": "instances", "model": "nuclei"}}
    short = parse_settings({"version": 1, "channels": ["DAPI"], "classes": [blob]})
    assert short.classes[0].segmenter.channels == ["DAPI"]
    result = run_analysis(short, [image], tmp_path / "short")
    assert result.counts == explicit.counts
    names = ("explicit", "short")
    read = [
        open_image(tmp_path / n / "images" / "series" / "nucleus.ome.zarr").read() for n in names
    ]
    np.testing.assert_array_equal(*read)
    mask = {"name": "nucleus", "segmenter": {"kind": "model", "model": "nuclei"}}
    masked = run_analysis(
        parse_settings({"version": 1, "channels": ["DAPI"], "classes": [mask]}), [image],
        tmp_path / "mask",
    )  # fmt: skip
    assert masked.counts["series"]["nucleus"] > 0
    settings = tmp_path / "two.yaml"
    settings.write_text(
        "version: 1\nchannels: [DAPI, GFP]\nclasses:\n  - name: nucleus\n    segmenter:\n"
        "      kind: instances\n      model: nuclei\n"
    )
    assert main(["analyze", str(settings), str(image), "-o", str(tmp_path / "two")]) == 2
    err = capsys.readouterr().err
    assert "two.yaml: line 5: classes[0].segmenter.channels: model 'nuclei' expects 1" in err
