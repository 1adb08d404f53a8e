"""File helpers shared by tests that replace a model or image under a running system."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def replace_file(source: Path, target: Path) -> None:
    """Put ``source``'s content at ``target`` (a new file moved over the old one, as a user's
    copy does), with another modification time even on a coarse clock."""
    staged = target.with_suffix(".new")
    shutil.copy(source, staged)
    os.replace(staged, target)
    later = target.stat().st_mtime_ns + 2_000_000_000
    os.utime(target, ns=(later, later))
