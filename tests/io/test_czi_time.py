"""A CZI time series has its time step (``T``, seconds) in its pixel sizes, read where ZEN
writes it (``Information/Image/Dimensions/T/Positions``: ``Interval/Increment``, else
``List/Offsets``, as libCZI reads it), and the step reaches what is made from the image."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

import scopeml as sm
from scopeml.io import open_image
from scopeml.io.czi import _metadata
from scopeml.io.testing import ROOM, put_in_dimensions
from scopeml.model.spec import ModelSpec

pytest.importorskip("pylibCZIrw")

#: The ``T`` element as ZEN writes it for a time-lapse with a set interval.
ZEN_INTERVAL = (
    "<T><StartTime>2021-03-04T09:15:02.6163394Z</StartTime>"
    "<Positions><Interval><Start>0</Start><Increment>{}</Increment></Interval></Positions></T>"
)
#: ... and with the time of each point (offsets from the first, seconds).
ZEN_LIST = (
    "<T><StartTime>2021-03-04T09:15:02.6163394Z</StartTime>"
    "<Positions><List><Offsets>{}</Offsets></List></Positions></T>"
)


def write_time_series(path: Path, frames: np.ndarray, t_element: str) -> Path:
    """A gray CZI of ``frames`` (T×Y×X) whose metadata has ``t_element`` in its dimensions."""
    from pylibCZIrw import czi

    with czi.create_czi(str(path), exist_ok=True) as writer:
        for t, frame in enumerate(frames):
            writer.write(frame, plane={"T": t, "C": 0, "Z": 0})
        writer.write_metadata(
            "series", channel_names={0: "DAPI"}, scale_x=0.5e-6, scale_y=0.5e-6,
            custom_attributes=ROOM,
        )  # fmt: skip
    return put_in_dimensions(path, t_element)


@pytest.fixture
def frames() -> np.ndarray:
    out = np.zeros((3, 16, 20), np.uint16)
    for t in range(3):
        out[t, 4:9, 3 + 4 * t : 8 + 4 * t] = 500  # one square moving right
    return out


def test_a_czi_interval_gives_the_time_step_in_seconds(tmp_path: Path, frames) -> None:
    path = write_time_series(tmp_path / "series.czi", frames, ZEN_INTERVAL.format("2.5"))
    with open_image(path) as image:
        assert image.sizes["T"] == 3
        assert image.pixel_sizes == {"T": 2.5, "Y": 0.5, "X": 0.5}
        np.testing.assert_array_equal(image.read()[0, :, 0, 0], frames)


def test_a_czi_list_of_offsets_gives_its_mean_step(tmp_path: Path, frames) -> None:
    path = write_time_series(tmp_path / "list.czi", frames, ZEN_LIST.format("0 59.8 120.4"))
    with open_image(path) as image:
        assert image.pixel_sizes["T"] == pytest.approx(60.2)


def test_a_czi_without_time_positions_has_no_time_step(tmp_path: Path, frames) -> None:
    path = write_time_series(tmp_path / "plain.czi", frames, "")
    with open_image(path) as image:
        assert image.sizes["T"] == 3 and "T" not in image.pixel_sizes
        assert image.pixel_sizes == {"Y": 0.5, "X": 0.5}


class Bright:
    spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        fg = (batch > 100).astype(np.float32)
        return np.concatenate([1 - fg, fg], axis=1)


def test_the_czi_time_step_reaches_labels_and_objects(tmp_path: Path, frames) -> None:
    """As an OME-TIFF's TimeIncrement does (tests/io/test_time_step_outputs.py)."""
    path = write_time_series(tmp_path / "series.czi", frames, ZEN_INTERVAL.format("90"))
    with open_image(path) as image:
        seg = sm.segment(image, Bright(), tmp_path / "out.ome.zarr", outputs=("labels",))
    with open_image(seg.path / "labels") as labels:
        assert labels.pixel_sizes["T"] == 90.0
    objects = sm.label_objects(seg.path / "labels", tmp_path / "obj.ome.zarr", class_="fg")
    assert objects.pixel_sizes["T"] == 90.0
    multiscale = zarr.open_group(str(tmp_path / "obj.ome.zarr"), mode="r").attrs["ome"]
    multiscale = multiscale["multiscales"][0]
    names = [a["name"] for a in multiscale["axes"]]
    scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert multiscale["axes"][names.index("t")]["unit"] == "second"
    assert scale[names.index("t")] == 90.0


# The parser on ZEN-shaped metadata text (what libCZI returns as the file's raw metadata).
def zen_xml(t_element: str) -> str:
    return (
        '<?xml version="1.0"?>\n<ImageDocument><Metadata><Information><Image>'
        "<SizeX>20</SizeX><SizeY>16</SizeY><SizeT>4</SizeT><SizeC>1</SizeC>"
        f'<Dimensions>{t_element}<Channels><Channel Id="Channel:0" Name="H2B-GFP">'
        "<Fluor>EGFP</Fluor></Channel></Channels></Dimensions></Image></Information>"
        '<Scaling><Items><Distance Id="X"><Value>2.0757575757575757E-07</Value>'
        "<DefaultUnitFormat>µm</DefaultUnitFormat></Distance>"
        '<Distance Id="Y"><Value>2.0757575757575757E-07</Value>'
        "<DefaultUnitFormat>µm</DefaultUnitFormat></Distance></Items></Scaling>"
        "</Metadata></ImageDocument>"
    )


@pytest.mark.parametrize(
    ("t_element", "step"),
    [
        (ZEN_INTERVAL.format("300.24"), 300.24),
        (ZEN_INTERVAL.format(" 0.05 "), 0.05),
        (ZEN_INTERVAL.format("1.2E+01"), 12.0),
        (ZEN_LIST.format("0 0.51 0.99 1.5"), 0.5),
        (ZEN_LIST.format("12.0 42.0"), 30.0),  # offsets need not start at 0
        ("<T><StartTime>2021-03-04T09:15:02Z</StartTime></T>", None),
        ("<T><Positions><Interval><Start>0</Start></Interval></Positions></T>", None),
        (ZEN_LIST.format("0"), None),  # one time point: no step
        (ZEN_LIST.format("0 1 x"), None),
        ("", None),
    ],
)  # fmt: skip
def test_the_time_step_from_zen_metadata(t_element: str, step: float | None) -> None:
    sizes, names = _metadata(zen_xml(t_element), "a.czi")
    assert names == ["H2B-GFP"]
    assert sizes.get("T") == (None if step is None else pytest.approx(step))
    assert sizes["X"] == pytest.approx(0.20757575757575757)
    assert list(sizes) == ["T", "Y", "X"] if step is not None else ["Y", "X"]


def test_an_uneven_list_and_a_zero_interval_give_no_step_and_say_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="scopeml.io.czi"):
        sizes, _ = _metadata(zen_xml(ZEN_LIST.format("0 60 120 600 660")), "a.czi")
    assert "T" not in sizes
    assert "a.czi: the CZI's time points are not evenly spaced (steps 60 to 480 s)" in caplog.text
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sizes, _ = _metadata(zen_xml(ZEN_INTERVAL.format("0")), "b.czi")
    assert "T" not in sizes
    assert [str(w.message) for w in caught] == [
        "b.czi: T time increment 0 is not a size (≤ 0 or not finite); T time increment unknown"
    ]
