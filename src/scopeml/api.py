"""The scripting facade: one call from files (or objects) to finished outputs.

>>> from scopeml.api import segment   # segment("cells.czi", "nuclei.czann", "out.ome.zarr")
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from scopeml.io.image import Image
from scopeml.model.spec import Model
from scopeml.tiling.options import SegmentOptions

__all__ = ["open_model", "segment"]


def open_model(path: str | os.PathLike[str], *, threads: int | None = None) -> Model:
    """Open a model file for inference: the one place that maps model files to :class:`Model`.

    The kind is read from the content, not the suffix (a ``.czseg`` is either a legacy ZEN
    container or a scopeml pixel classifier). ``threads`` caps the runtime's own threads, for
    when several engine workers share the model. Dask workers call this too (through its
    path), so it must stay a module-level function.
    """
    from scopeml.model import load_model
    from scopeml.pixel import FORMAT, load_classifier

    if _container_format(path) == FORMAT:
        return load_classifier(path, n_jobs=threads or -1)
    return load_model(path, threads=threads)


def _container_format(path: str | os.PathLike[str]) -> str | None:
    """The ``Format`` key of a container's ``model.json`` (``None`` for czann and legacy).

    A cheap sniff of one small member; anything odd returns ``None`` and the container reader
    then reports the problem properly.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("model.json")
            if info.file_size > 1 << 20:
                return None
            value = json.loads(archive.read(info)).get("Format")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _open_scene(
    path: str, scene: int | None, channels: tuple[int | str, ...] | None = None
) -> Image:
    from scopeml.io import open_image

    image = open_image(path, scene=scene)
    return image if channels is None else image.select_channels(channels)


def segment(
    image: str | os.PathLike[str] | Image,
    model: str | os.PathLike[str] | Model,
    output: str | os.PathLike[str],
    **options: Any,
) -> Path:
    """Segment an image of any size with a model; return the finished OME-Zarr store.

    Parameters
    ----------
    image
        An image file (CZI, OME-TIFF, OME-Zarr, TIFF/PNG) or an :class:`Image`.
    model
        A model file (``.czann`` …) or any object with the :class:`Model` protocol.
    output
        The ``.ome.zarr`` store to create; it holds one NGFF image per output
        (``labels``, ``probabilities``, ``confidence``, ``mask``).
    **options
        Fields of :class:`~scopeml.tiling.options.SegmentOptions`: ``outputs``, ``tile_size``,
        ``halo``, ``batch_size``, ``workers``, ``scheduler``, ``min_confidence``,
        ``extract_class``, ``blend``, ``normalize``, ``probability_dtype``, ``scene``,
        ``channels``, ``resume``, ``overwrite``, ``quiet``, ``ome_tiff``. ``overwrite``
        replaces only an earlier zarr store, never a file, another folder or the input.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from scopeml.model.spec import ModelSpec
    >>> class Threshold:  # any object with a spec and predict() is a model
    ...     spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0))
    ...     def predict(self, batch):
    ...         fg = (batch > 5).astype(np.float32)
    ...         return np.concatenate([1 - fg, fg], axis=1)
    >>> pixels = np.arange(100, dtype=np.uint8).reshape(1, 1, 1, 1, 10, 10) % 10
    >>> out = segment(Image(pixels), Threshold(), Path(tempfile.mkdtemp()) / "out.ome.zarr",
    ...               tile_size=4, quiet=True)
    >>> from scopeml.io import open_image
    >>> open_image(out / "labels").read()[0, 0, 0, 0, 0].tolist()
    [1, 1, 1, 1, 1, 1, 2, 2, 2, 2]
    """
    from scopeml.tiling.engine import segment_image
    from scopeml.tiling.execute import LoadRef

    settings = SegmentOptions(**options)
    image_ref = model_ref = None
    if isinstance(image, Image):
        opened_image, close_image = image, False
        if settings.channels is not None:
            opened_image = image.select_channels(settings.channels)
    else:
        image_ref = LoadRef(
            _open_scene, (str(Path(image).resolve()), settings.scene, settings.channels)
        )
        opened_image, close_image = _open_scene(*image_ref.args), True
    if isinstance(model, (str, os.PathLike)):
        # Engine workers run tiles side by side: one runtime thread each uses the cores best.
        threads = 1 if settings.workers > 1 and settings.scheduler is None else None
        model_ref = LoadRef(open_model, (str(Path(model).resolve()),))
        opened_model = open_model(model_ref.args[0], threads=threads)
    else:
        opened_model = model
    try:
        return segment_image(
            opened_image,
            opened_model,
            output,
            settings,
            model_ref=model_ref,
            image_ref=image_ref,
        )
    finally:
        if close_image:
            opened_image.close()
