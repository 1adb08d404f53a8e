"""A segment store gets the permissions any folder made there gets (the umask's), so the
people sharing a project folder can open it: it was made by ``tempfile.mkdtemp``, 0700."""

from __future__ import annotations

import os
import stat

import numpy as np

import scopeml as sm


def test_a_store_has_the_umasks_permissions(tmp_path) -> None:
    previous = os.umask(0o022)
    try:
        seg = sm.segment(np.full((64, 80), 200, np.uint8), "nuclei", tmp_path / "s.ome.zarr")
    finally:
        os.umask(previous)
    for folder in (seg.path, seg.path / "labels"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder
