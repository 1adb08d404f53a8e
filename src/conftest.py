"""Doctests of ``src/``: their ``tempfile.mkdtemp()`` folders land in pytest's ``tmp_path``.

The examples write small files the way a user would (``Path(tempfile.mkdtemp()) / ...``); here
those folders are created under the test's own temporary directory, which pytest cleans up, so a
test run leaves nothing behind in the system temp folder.
"""

from __future__ import annotations

import tempfile

import pytest


@pytest.fixture(autouse=True)
def _doctest_temp_folder(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
