"""What :func:`scopeml.api.segment` returns: its finished OME-Zarr store, with its outputs as
lazy images, and whether a store's instances are complete."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scopeml.io import open_image
from scopeml.io.image import Image

#: The output of :func:`~scopeml.api.segment` made from its labels after the engine run, not by
#: the engine.
INSTANCES = "instances"


class Segmentation(type(Path())):  # type: ignore[misc]
    """The finished OME-Zarr store of :func:`~scopeml.api.segment`, with its outputs as lazy
    ``Image`` views (every axis kept: ``S T C Z Y X``).

    It *is* the store's path (a :class:`pathlib.Path`: ``seg / "labels"``, ``seg.exists()``,
    ``seg == path`` work), so code written for the path keeps working.

    Attributes
    ----------
    classes
        The model's class names; class ``classes[k]`` has label value ``k + 1``.
    already_complete
        ``True`` when :func:`~scopeml.api.segment` with ``resume=True`` found the store
        complete and made by this same run, so it did nothing (a script that always resumes
        can be rerun).

    Examples
    --------
    >>> from pathlib import Path
    >>> seg = Segmentation("out.ome.zarr", classes=("background", "nucleus"))
    >>> seg.label_values, seg.path.name, seg == Path("out.ome.zarr")
    ({'background': 1, 'nucleus': 2}, 'out.ome.zarr', True)
    """

    already_complete = False

    def __new__(
        cls, path: str | os.PathLike[str], *, classes: Sequence[str] | None = None
    ) -> Segmentation:
        if sys.version_info >= (3, 12):
            return super().__new__(cls)
        return super().__new__(cls, path)

    def __init__(
        self, path: str | os.PathLike[str], *, classes: Sequence[str] | None = None
    ) -> None:
        if sys.version_info >= (3, 12):
            super().__init__(path)
        self._classes = None if classes is None else tuple(classes)

    @property
    def path(self) -> Path:
        """The store, as a plain :class:`~pathlib.Path`."""
        return Path(str(self))

    def with_segments(self, *segments: Any) -> Path:  # Python 3.12+: derived paths are plain
        return Path(*segments)

    def __truediv__(self, name: Any) -> Path:
        return self.path / name

    def joinpath(self, *names: Any) -> Path:
        return self.path.joinpath(*names)

    @property
    def classes(self) -> tuple[str, ...]:
        if getattr(self, "_classes", None) is None:  # read from the run's record in the store
            import zarr

            identity = zarr.open_group(str(self.path), mode="r").attrs.get("scopeml", {})
            self._classes = tuple(identity.get("model", {}).get("classes", ()))
        return self._classes

    @property
    def scale(self) -> float:
        """The factor the run magnified the image by for the model (1: none), as its record
        in the store says; for ``scale="auto"`` the factor chosen (see :attr:`auto_scale`)."""
        from scopeml.tiling.store import recorded_run

        options = (recorded_run(self.path) or {}).get("options") or {}
        return float(options.get("scale") or 1.0)

    @property
    def auto_scale(self) -> Any:
        """What ``scale="auto"`` chose and from what (an ``AutoScale``: ``scale``, the objects'
        ``diameter`` and the ``model_diameter`` in pixels); ``None`` when auto did not run."""
        from scopeml.tiling.size import recorded_auto_scale

        return recorded_auto_scale(self.path)

    @property
    def label_values(self) -> dict[str, int]:
        """Each class name with the value it has in :attr:`labels`."""
        return {name: value for value, name in enumerate(self.classes, 1)}

    @property
    def outputs(self) -> tuple[str, ...]:
        """The outputs written (``labels``, ``probabilities``, ``confidence``, ``mask``,
        ``instances``)."""
        from scopeml.tiling.options import OUTPUT_NAMES

        names = (*OUTPUT_NAMES, INSTANCES)
        return tuple(name for name in names if (self.path / name).is_dir())

    def check_exists(self) -> None:
        """Refuse a path where no store is (a typo, or a run still unfinished) before any
        reading, as every output and the label and measure calls do."""
        from scopeml.errors import ImageNotFoundError

        if not self.path.is_dir():
            from scopeml.tiling.store import partial_path

            partial = partial_path(self.path)
            said = "no such store"
            if partial.is_dir():
                said += (f"; an unfinished run is at {partial}: run it again with resume=True "
                         "(--resume) to finish it")  # fmt: skip
            raise ImageNotFoundError(said, path=self.path)

    def output(self, name: str) -> Image:
        """One output as a lazy 6-D ``Image`` (pixel sizes and channel names included)."""
        from scopeml.errors import MissingOutputError

        self.check_exists()
        if name not in self.outputs:
            raise MissingOutputError(
                f"no {name!r} output; this run wrote {', '.join(self.outputs) or 'nothing'} "
                "(choose with outputs=...)",
                path=self.path,
            )
        return open_image(self.path / name)

    @property
    def labels(self) -> Image:
        """Class labels: class ``k`` as ``k + 1``, 0 = unclassified."""
        return self.output("labels")

    @property
    def probabilities(self) -> Image:
        """One channel per class, named after it."""
        return self.output("probabilities")

    @property
    def confidence(self) -> Image:
        """The largest class probability per pixel."""
        return self.output("confidence")

    @property
    def mask(self) -> Image:
        """0/1 mask of the extracted class."""
        return self.output("mask")

    @property
    def instances(self) -> Image:
        """Instance labels (one id per object, 0 = none), written with
        ``outputs=(..., "instances")``; :func:`~scopeml.api.measure_objects` of a
        Segmentation measures these."""
        return self.output(INSTANCES)

    @property
    def image_path(self) -> Path | None:
        """The image file the run read, while it is still that file (size, time and sampled
        content as recorded): what to measure intensities on. ``None`` for an array or a file
        moved or changed since."""
        path, same = run_image(self.path)
        return path if same else None

    @property
    def n_objects(self) -> int | None:
        """How many objects :attr:`instances` holds; ``None`` without complete instances."""
        return _n_objects(self.path)

    def __reduce__(self) -> tuple[Any, ...]:  # copy and pickle keep the classes
        return _segmentation, (str(self), getattr(self, "_classes", None))

    def __repr__(self) -> str:
        """The path, what the run wrote and how many objects it found: what a notebook cell
        showing the result should tell."""
        outputs = self.outputs
        shown = [repr(str(self)), f"outputs={outputs}"]
        if INSTANCES in outputs:
            shown.append(f"n_objects={self.n_objects}")
        if getattr(self, "_classes", None) is not None:
            shown.append(f"classes={self._classes}")
        return f"Segmentation({', '.join(shown)})"


def _segmentation(path: str, classes: tuple[str, ...] | None) -> Segmentation:
    return Segmentation(path, classes=classes)


def run_image(store: Path) -> tuple[Path | None, bool]:
    """The image file a run recorded reading (``None`` for an array) and whether the file
    there is still the one it read (:meth:`RunRead.reads`)."""
    read = run_read(store)
    path = None if read is None else read.image.get("path")
    if read is None or not isinstance(path, str):
        return None, False
    return Path(path), read.unchanged_file() is not None


@dataclasses.dataclass(frozen=True)
class RunRead:
    """How the segment run that made a store read its image file (``image``, as the run
    records it): with the ``axes`` it was told (``None``: the file's own) and of one
    ``scene`` (``None``: every scene). Measuring that file again must read it so, or the
    objects and the pixels would not be of one view of it."""

    image: dict[str, Any]
    axes: str | None = None
    scene: int | None = None

    def unchanged_file(self) -> Path | None:
        """The file the run read while it is still that file (:meth:`reads`), else ``None``."""
        path = self.image.get("path")
        try:
            return Path(path) if isinstance(path, str) and self.reads(path) else None
        except OSError:  # moved or unreadable
            return None

    def reads(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` is the very file the run read: the same path and content, as a
        resume compares them."""
        from scopeml.tiling.identity import fingerprint

        here = Path(path)
        if not here.exists() or self.image.get("path") != str(here.resolve()):
            return False
        return self.image.get("content") == fingerprint(here)


#: A label store's record of the image its objects come from (``objects label`` and ``filter``
#: carry it from the store they read): ``{"image": …, "axes": …, "scene": …}``.
SOURCE_KEY = "scopeml_source"


def run_read(store: Path) -> RunRead | None:
    """How the run that made ``store`` read its image file (:class:`RunRead`), or, for a label
    store made from one, the source it carried along; ``None`` for a store naming no image."""
    from scopeml.tiling.store import AXES_RECORD, recorded_run

    recorded = recorded_run(store)
    if recorded is None:
        carried = _carried_source(store)
        recorded = {"image": carried.get("image"), AXES_RECORD: carried.get("axes"),
                    "image_view": {"scene": carried.get("scene")}}  # fmt: skip
    image, axes = recorded.get("image"), recorded.get(AXES_RECORD)
    scene = (recorded.get("image_view") or {}).get("scene")
    if not isinstance(image, dict):
        return None
    return RunRead(
        image,
        axes if isinstance(axes, str) else None,
        scene if isinstance(scene, int) and not isinstance(scene, bool) else None,
    )


def run_read_near(place: str | os.PathLike[str]) -> RunRead | None:
    """:func:`run_read` of the store at ``place``, or of the store whose array folder it is
    (an opened label store's image names its array); ``None`` for others."""
    place = Path(place).absolute()
    for candidate in (place, place.parent):
        if candidate.name and (candidate / "zarr.json").is_file():
            read = run_read(candidate)
            if read is not None:
                return read
    return None


def _carried_source(store: Path) -> dict[str, Any]:
    """The :data:`SOURCE_KEY` record in a store's ``zarr.json``, else ``{}``."""
    import json

    try:
        attributes = json.loads((Path(store) / "zarr.json").read_text()).get("attributes") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    carried = attributes.get(SOURCE_KEY)
    return carried if isinstance(carried, dict) else {}


def has_instances(store: Path) -> bool:
    """Whether the store holds complete instances: their array records the object count,
    which is written last (a half-written array lacks it)."""
    return _n_objects(store) is not None


def _n_objects(store: Path) -> int | None:
    import zarr

    try:
        return int(zarr.open_array(str(store / INSTANCES / "0"), mode="r").attrs["n_objects"])
    except (OSError, ValueError, LookupError, TypeError):
        return None
