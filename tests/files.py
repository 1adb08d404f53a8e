"""File helpers shared by tests: replacing a model or image under a running system, and loading
one of the repository's scripts (``scripts/``, ``bench/``) as a module."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from types import ModuleType


def replace_file(source: Path, target: Path) -> None:
    """Put ``source``'s content at ``target`` (a new file moved over the old one, as a user's
    copy does), with another modification time even on a coarse clock."""
    staged = target.with_suffix(".new")
    shutil.copy(source, staged)
    os.replace(staged, target)
    later = target.stat().st_mtime_ns + 2_000_000_000
    os.utime(target, ns=(later, later))


def load_script(relative: str) -> ModuleType:
    """The repository's script at ``relative`` (e.g. ``"bench/eval_nuclei.py"``), imported as a
    module without running its ``main``."""
    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
