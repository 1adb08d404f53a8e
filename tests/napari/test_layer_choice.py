"""The widgets' layer lists follow renames: a layer renamed (a reader's ``C0`` to ``DAPI``)
stays chosen under its new name, instead of every button saying no image is open."""

from __future__ import annotations

import numpy as np


def test_a_renamed_layer_stays_chosen(viewer):
    import napari
    from scopeml.napari._qt import LayerChoice

    viewer.add_image(np.zeros((8, 8)), name="C0")
    viewer.add_image(np.ones((8, 8)), name="C1")
    choice = LayerChoice(viewer, napari.layers.Image)
    choice.setCurrentText("C1")
    viewer.layers["C1"].name = "GFP"
    assert [choice.itemText(i) for i in range(choice.count())] == ["C0", "GFP"]
    assert choice.currentText() == "GFP" and choice.layer() is viewer.layers["GFP"]
    later = viewer.add_image(np.ones((8, 8)), name="C2")  # added after: followed too
    choice.setCurrentText("C2")
    later.name = "DAPI"
    assert choice.currentText() == "DAPI" and choice.layer() is later


def test_the_apply_widget_runs_on_a_renamed_layer(viewer):
    from scopeml.napari.apply_widget import ApplyWidget

    layer = viewer.add_image(np.zeros((8, 8)), name="C0")
    widget = ApplyWidget(viewer)
    layer.name = "DAPI"
    assert widget.image_choice.layer() is layer
