"""Data shipped with scopeml: the default nuclei model.

``nuclei.czann`` is a U-Net (depth 3, width 8) for single-channel fluorescence nuclei, with the
classes background, nucleus and boundary; ``scopeml.train.nuclei_instances`` turns its output
into instance labels. It was trained on synthetic images by ``scripts/train_default_model.py``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def default_model_path() -> Path:
    """Path of the shipped default nuclei model container (``nuclei.czann``).

    Examples
    --------
    >>> default_model_path().name
    'nuclei.czann'
    """
    # scopeml is installed as files (not zipped), so the resource is a real path on disk
    return Path(str(files("scopeml.data") / "nuclei.czann"))
