"""The time step of an image (OME ``TimeIncrement``) reaches what is made from it: the NGFF
``t`` axis of a segment store's outputs and of instance labels (unit ``second``, scale), and
the OME-TIFF copies (``TimeIncrement``)."""

from __future__ import annotations

import numpy as np
import tifffile
import zarr

import scopeml as sm
from scopeml.io import open_image
from scopeml.model.spec import ModelSpec


class Threshold:
    spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0))

    def predict(self, batch):
        fg = (batch > 5).astype(np.float32)
        return np.concatenate([1 - fg, fg], axis=1)


def _t_axis(group) -> tuple[dict, float]:
    multiscale = zarr.open_group(str(group), mode="r").attrs["ome"]["multiscales"][0]
    scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
    names = [a["name"] for a in multiscale["axes"]]
    return multiscale["axes"][names.index("t")], scale[names.index("t")]


def test_the_time_step_reaches_the_outputs_ngff_t_axis_and_ome_tiff(tmp_path):
    frames = np.zeros((3, 12, 12), np.uint8)
    frames[:, 3:7, 3:7] = 9
    file = tmp_path / "t.ome.tif"
    tifffile.imwrite(file, frames, ome=True, metadata={"axes": "TYX", "TimeIncrement": 45.0,
                                                        "TimeIncrementUnit": "s"})  # fmt: skip
    with open_image(file) as image:
        seg = sm.segment(image, Threshold(), tmp_path / "out.ome.zarr", ome_tiff=True,
                         outputs=("labels",))  # fmt: skip
    axis, scale = _t_axis(seg.path / "labels")
    assert axis == {"name": "t", "type": "time", "unit": "second"} and scale == 45.0
    with open_image(seg.path / "labels") as labels:
        assert labels.pixel_sizes["T"] == 45.0
    copies = list(tmp_path.glob("*.ome.tif*"))
    with open_image(next(c for c in copies if c.name != "t.ome.tif")) as copy:
        assert copy.pixel_sizes.get("T") == 45.0
    objects = sm.label_objects(seg.path / "labels", tmp_path / "obj.ome.zarr", class_="fg")
    assert objects.pixel_sizes["T"] == 45.0
    axis, scale = _t_axis(tmp_path / "obj.ome.zarr")
    assert axis["unit"] == "second" and scale == 45.0
