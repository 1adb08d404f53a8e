"""Choosing an image reads its file's metadata (channel names, shape) once while the file is
unchanged: choosing it again, or another channel's layer of the same file, parses nothing;
a changed file is read again."""

from __future__ import annotations

import os

import pytest

import scopeml as sm
from tests.napari.conftest import sample_classifier


@pytest.fixture
def two_channels(tmp_path):
    image, _ = sample_classifier(
        tmp_path / "cells.ome.zarr", size=96, block=96, seed=3, every=6, n_estimators=2,
        features="gaussian_smoothing:1",
    )  # fmt: skip
    return image


@pytest.fixture
def opens(monkeypatch):
    calls: list = []
    open_image = sm.open_image
    monkeypatch.setattr(sm, "open_image", lambda *a, **k: calls.append(a) or open_image(*a, **k))
    return calls


def choose(widget, names: list[str]) -> None:
    for name in names:
        widget.image_choice.setCurrentText(name)


def test_the_apply_widget_reads_a_file_once(viewer, two_channels, opens):
    from scopeml.napari.apply_widget import AUTO_CHANNELS, ApplyWidget

    viewer.open(str(two_channels), plugin="scopeml")
    names = [layer.name for layer in viewer.layers]
    assert len(names) == 2, names
    opens.clear()
    widget = ApplyWidget(viewer)
    choose(widget, [names[0], names[1], names[0], names[1]])
    items = [widget.channels.itemText(i) for i in range(widget.channels.count())]
    assert items == [AUTO_CHANNELS, *names], items
    assert len(opens) == 1, opens

    metadata = two_channels / "zarr.json"  # the file changed since: read again
    os.utime(metadata, ns=(metadata.stat().st_atime_ns, metadata.stat().st_mtime_ns + 10**9))
    widget.image_choice.setCurrentText(names[0])
    widget.image_choice.setCurrentText(names[1])
    assert len(opens) == 2, opens


def test_the_pixel_widget_reads_a_file_once(viewer, two_channels, opens):
    from scopeml.napari.pixel_widget import SCRIBBLES, PixelClassifierWidget

    viewer.open(str(two_channels), plugin="scopeml")
    names = [layer.name for layer in viewer.layers]
    opens.clear()
    widget = PixelClassifierWidget(viewer)
    choose(widget, [names[1], names[0], names[1]])
    assert widget.channels.text() == f"trains on channels {', '.join(names)}"
    assert viewer.layers[SCRIBBLES].data.shape == (96, 96)
    assert len(opens) == 1, opens
