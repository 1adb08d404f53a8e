from __future__ import annotations

import numpy as np
import pytest

from scopeml.synthetic import synthetic_nuclei


@pytest.fixture(scope="session")
def nuclei_pair() -> tuple[np.ndarray, np.ndarray]:
    """A small synthetic nuclei image (1×64×64 float32) and its binary nucleus labels."""
    image, instances = synthetic_nuclei((64, 64), density=0.004, radius=(4, 7), seed=3)
    return image.astype(np.float32), (instances > 0).astype(np.int64)


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    """One torch thread: tiny networks gain nothing from more, and the test machine is shared."""
    import torch

    torch.set_num_threads(1)
