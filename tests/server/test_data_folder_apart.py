"""A data folder below the allowed root opened every user's uploads to every user's jobs (a
job on ``sdata/uploads/<id>/private.tif``, or a folder analysis of ``sdata``): the server
refuses to start so, in one line; a root beside the data folder's own folders is fine."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scopeml.errors import InvalidRequestError
from scopeml.server.config import ServerConfig


@pytest.mark.parametrize(
    ("data", "root", "db", "says"),
    [
        ("root/sdata", "root", None, "sdata: the server keeps users' files here, and it lies "
         "below the allowed root"),
        ("root", "root", None, "root: the server keeps users' files here, and it lies below"),
        ("data", "data/uploads/x", None, "data/uploads: the server keeps users' files here, and"
         " it holds the allowed root"),
        ("data", "root", "root/scopeml.db", "scopeml.db: the server keeps users' files here"),
    ],
)  # fmt: skip
def test_a_data_folder_in_the_allowed_root_is_refused(tmp_path, data, root, db, says):
    (tmp_path / root).mkdir(parents=True)
    with pytest.raises(InvalidRequestError, match=says):
        ServerConfig(tmp_path / data, allowed_root=tmp_path / root,
                     db=None if db is None else tmp_path / db)  # fmt: skip


def test_the_command_line_says_so_and_a_root_beside_the_data_is_taken(tmp_path):
    (tmp_path / "root").mkdir()
    args = ["serve", "--data-dir", str(tmp_path / "root" / "sdata"), "--port", "0"]
    run = subprocess.run(  # a server that starts would serve on: timed out, failed
        [sys.executable, "-m", "scopeml", *args, "--allowed-root", str(tmp_path / "root")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "give a --data-dir outside it" in run.stderr
    config = ServerConfig(tmp_path, allowed_root=tmp_path / "root")  # beside uploads, models
    assert config.allowed_root == (tmp_path / "root").resolve()
