"""The napari plugin (``pip install scopeml[napari]``): readers, the demo sample and widgets.

Every widget is a thin view over ``import scopeml as sm``: paint scribbles and train a pixel
classifier with a live preview (:mod:`.pixel_widget`), apply a model to the whole file behind a
layer (:mod:`.apply_widget`), label, measure and classify objects (:mod:`.objects_widget`), run
an analysis settings file (:mod:`.analysis_widget`). The manifest is ``napari.yaml``.

Importing this package imports neither napari nor Qt; the widget modules do.
"""
