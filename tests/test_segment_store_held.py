"""A segment call holds its store until its own steps after the engine are done: a second
call with ``overwrite`` replaced the store while the first still made its instances and table
from it, and both said they succeeded (the table of one image beside the labels of another)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import scopeml as sm
from scopeml.errors import InvalidRequestError
from scopeml.synthetic import synthetic_nuclei


def test_a_store_is_not_replaced_while_its_call_adds_its_instances(tmp_path):
    first, _ = synthetic_nuclei((192, 192), seed=5)
    other, _ = synthetic_nuclei((96, 96), seed=6)
    out, table = tmp_path / "o.ome.zarr", tmp_path / "o.csv"
    refused: list[str] = []

    def meanwhile(event) -> None:  # the engine's store is published: other calls try
        if event.stage != "segment" and not refused and out.is_dir():
            for _ in range(2):  # a refused call released the first one's lock: the second won
                with pytest.raises(InvalidRequestError) as caught:
                    sm.segment(other.astype(np.uint16), "nuclei", out, overwrite=True)
                refused.append(str(caught.value))

    seg = sm.segment(first.astype(np.uint16), "nuclei", out, outputs=("labels", "instances"),
                     measure=table, progress=meanwhile)  # fmt: skip
    assert len(refused) == 2, refused
    assert all("another run is still writing this store" in said for said in refused), refused
    assert seg.labels.read().shape[-2:] == (192, 192)  # the first call's store, whole
    assert len(pd.read_csv(table)) == seg.n_objects > 0
    assert not (out / ".scopeml-lock").exists()  # released: a later call may replace it
    again = sm.segment(other.astype(np.uint16), "nuclei", out, overwrite=True)
    assert again.labels.read().shape[-2:] == (96, 96)


def test_a_finished_store_that_cannot_be_written_resumes_as_a_no_op(tmp_path, monkeypatch):
    """Resuming a complete store takes its lock, which needs a file in it: a store on a
    read-only file system (an archive) was refused where "already complete" is the answer."""
    import errno
    import os

    image, _ = synthetic_nuclei((96, 96), seed=6)
    out = tmp_path / "o.ome.zarr"
    sm.segment(image.astype(np.uint16), "nuclei", out)
    real_open = os.open

    def read_only(path, flags, *args):  # the file system refuses any file made in the store
        if flags & os.O_CREAT and os.fspath(path).startswith(os.fspath(out)):
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    again = sm.segment(image.astype(np.uint16), "nuclei", out, resume=True)
    assert again.path == out and not (out / ".scopeml-lock").exists()
