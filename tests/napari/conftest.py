"""GUI-test fixtures: napari's viewer under a virtual X display, or a skip with the reason.

napari needs OpenGL, which Qt's ``offscreen`` platform does not give it here (vispy fails to
read the GL version); so without a ``DISPLAY`` an ``Xvfb`` server is started for the session.
Without napari, pytest-qt or Xvfb the GUI tests skip with the reason; with
``SCOPEML_REQUIRE_GUI=1`` (set by ``.ci/run``) they fail instead, so CI cannot pass on a
missing install.
"""

from __future__ import annotations

import importlib.util
import os
import select
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

SCREENSHOTS = Path(os.environ.get("SCOPEML_SCREENSHOTS", "/tmp/scopeml-napari-screenshots"))


def _missing(reason: str) -> None:
    if os.environ.get("SCOPEML_REQUIRE_GUI") == "1":
        pytest.fail(f"{reason} (SCOPEML_REQUIRE_GUI=1)")
    pytest.skip(reason)


def _gui_problem() -> str | None:
    for module in ("napari", "pytestqt", "qtpy"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'scopeml[napari]' pytest-qt)"
    if not os.environ.get("DISPLAY") and shutil.which("Xvfb") is None:
        return "no DISPLAY and no Xvfb to make one (apt-get install xvfb)"
    return None


@pytest.fixture(scope="session")
def display() -> Iterator[str]:
    """A ``DISPLAY`` for Qt: the user's, or a private Xvfb for the session."""
    problem = _gui_problem()
    if problem:
        _missing(problem)
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    # Xvfb must outlive the QApplication (Qt exits the process when its X connection breaks),
    # so it is not stopped in a finalizer: a watcher ends it once this process has exited.
    # Xvfb picks a free display itself (-displayfd) and writes its number: a number chosen
    # here could be another session's (a worker then drew on an Xvfb that went away with
    # that session, and Qt aborted the worker).
    watcher = subprocess.Popen(
        [
            "sh",
            "-c",
            "Xvfb -displayfd 3 -screen 0 1600x1200x24 -nolisten tcp 3>&1 >/dev/null & x=$!; "
            f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; kill $x",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ready, _, _ = select.select([watcher.stdout], [], [], 10)
    number = watcher.stdout.readline().strip().decode() if ready else ""
    if not number.isdigit() or not Path(f"/tmp/.X11-unix/X{number}").exists():
        _missing("Xvfb did not start")
    os.environ["DISPLAY"] = f":{number}"
    os.environ.pop("QT_QPA_PLATFORM", None)
    yield os.environ["DISPLAY"]


@pytest.fixture
def viewer(display: str, request: pytest.FixtureRequest):
    """A fresh napari viewer (napari's own ``make_napari_viewer`` fixture)."""
    make_napari_viewer = request.getfixturevalue("make_napari_viewer")
    viewer = make_napari_viewer()
    viewer.window._qt_window.resize(1500, 850)  # room for the canvas beside a dock widget
    return viewer


def save_screenshot(widget, name: str) -> np.ndarray:
    """Grab a widget (or a viewer's window) to ``SCREENSHOTS/name.png``; return its RGBA pixels,
    checked to be not blank (more than one colour, and not all one value)."""
    from qtpy.QtWidgets import QWidget

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if isinstance(widget, QWidget):
        widget.grab().save(str(path))
        import imageio.v3 as iio

        pixels = np.asarray(iio.imread(path))
    else:  # a napari viewer
        pixels = np.asarray(widget.screenshot(str(path), canvas_only=False, flash=False))
    assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50, pixels.shape
    colours = np.unique(pixels[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 20, f"{path} looks blank ({len(colours)} colours)"
    return pixels


def sample_classifier(
    path: Path, *, size: int, block: int, seed: int, every: int, n_estimators: int, features: str
):
    """The demo's sample image written to ``path`` and a pixel classifier trained on point
    labels every ``every`` px of its truth: ``(image path, classifier)``."""
    import zarr

    import scopeml as sm
    from scopeml.demo import write_sample_image

    image, truth = write_sample_image(path, size=size, block=block, seed=seed)
    truth = np.asarray(zarr.open_array(str(truth), mode="r")[:])
    labels = np.zeros(truth.shape, np.uint8)
    labels[::every, ::every] = (truth[::every, ::every] > 0) + 1
    with sm.open_image(image) as pixels:
        model = sm.train_pixel_classifier(
            pixels, labels, classes=["background", "nucleus"], n_estimators=n_estimators,
            features=features,
        )  # fmt: skip
    return image, model
