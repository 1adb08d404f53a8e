"""Data shipped with scopeml: the default nuclei model (the built-in model ``"nuclei"``).

``nuclei.czann`` is a U-Net (depth 4, width 8) for single-channel fluorescence nuclei, with the
classes background, nucleus and boundary; ``scopeml segment -m nuclei --outputs instances``
turns its output into instance labels (:mod:`scopeml.objects.instances`). It was trained on
realistic synthetic nuclei (:func:`scopeml.synthetic.realistic_nuclei`) by the seeded
``scripts/train_nuclei.py``; its input normalisation (percentiles over the whole image) is
recorded in the container and applied by the engine.
"""

from __future__ import annotations

from pathlib import Path


def default_model_path() -> Path:
    """Path of the shipped default nuclei model container (``nuclei.czann``); the registry's
    built-in ``"nuclei"`` (:data:`scopeml.model.registry.BUILTIN_MODELS`) is the one record.

    Examples
    --------
    >>> default_model_path().name
    'nuclei.czann'
    """
    from scopeml.model.registry import BUILTIN_MODELS

    return BUILTIN_MODELS["nuclei"].path
