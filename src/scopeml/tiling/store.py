"""The output store of a run: written under ``OUT.partial``, moved into place when complete.

Layout while running::

    OUT.ome.zarr.partial/
        zarr.json                 root group
        labels/ probabilities/ …  one NGFF image group per output (level "0")
        .scopeml-run.json         the run's identity (model, image, options)
        .scopeml-done/<index>     one empty file per finished tile, written after its chunks

A tile's done record is created only after all its chunks are written, so a run killed at any
moment resumes from exactly the tiles that are complete; a half-written chunk belongs to a tile
without a record and is rewritten whole (tiles own whole chunks). The final name appears only
through one rename at the end, so a half-written output is never taken for a finished one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from scopeml.errors import IncompleteOutputError, InvalidRequestError
from scopeml.io.replace import check_replaceable_store

_RUN = ".scopeml-run.json"
_DONE = ".scopeml-done"


def partial_path(output: str | os.PathLike[str]) -> Path:
    """Where an output lives until it is complete."""
    output = Path(output)
    return output.with_name(output.name + ".partial")


class OutputStore:
    """An output store being written; records finished tiles and publishes itself when done.

    Use :meth:`open` rather than the constructor.
    """

    def __init__(self, output: Path, identity: Mapping[str, Any]) -> None:
        self.output = output
        self.partial = partial_path(output)
        self.identity = dict(identity)

    @classmethod
    def open(
        cls,
        output: str | os.PathLike[str],
        identity: Mapping[str, Any],
        *,
        resume: bool = False,
        overwrite: bool = False,
        inputs: tuple[str | os.PathLike[str] | None, ...] = (),
    ) -> tuple[OutputStore, bool]:
        """Start a new store or reopen a partial one; return it and whether it was resumed.

        Raises
        ------
        InvalidRequestError
            The finished output exists and ``overwrite`` is false, or it is not a zarr store
            (or holds one of ``inputs``) and so may not be replaced.
        IncompleteOutputError
            A partial store exists and neither ``resume`` nor ``overwrite`` is set, or
            ``resume`` is set but the partial store belongs to a different run.
        """
        store = cls(Path(output), identity)
        if store.output.exists() and not overwrite:
            raise InvalidRequestError(
                "output exists; pass overwrite=True (--overwrite) to replace it", path=output
            )
        check_replaceable_store(store.output, inputs=inputs)
        if store.partial.exists():
            if resume:
                store._check_identity()
                (store.partial / _DONE).mkdir(exist_ok=True)
                return store, True
            if not overwrite:
                raise IncompleteOutputError(
                    "an interrupted run left this partial output; pass resume=True (--resume) "
                    "to continue it or overwrite=True (--overwrite) to start again",
                    path=store.partial,
                )
            _remove(store.partial)
        store.partial.mkdir(parents=True)
        import zarr

        zarr.open_group(store.partial, mode="w", zarr_format=3)
        _write_json_atomically(store.partial / _RUN, store.identity)
        (store.partial / _DONE).mkdir()
        return store, False

    def _check_identity(self) -> None:
        try:
            recorded = json.loads((self.partial / _RUN).read_text())
        except (OSError, ValueError) as err:
            raise IncompleteOutputError(
                f"cannot read the run record {_RUN}: {err}", path=self.partial
            ) from err
        expected = json.loads(json.dumps(self.identity))
        differences = [
            f"{key}: {recorded.get(key)!r} (recorded) vs {expected.get(key)!r} (now)"
            for key in sorted(set(recorded) | set(expected))
            if recorded.get(key) != expected.get(key)
        ]
        if differences:
            raise IncompleteOutputError(
                "cannot resume: the partial output comes from a different run; "
                + "; ".join(differences),
                path=self.partial,
            )

    def path_of(self, name: str) -> Path:
        """The NGFF image group of one output inside the (partial) store."""
        return self.partial / name

    def done(self) -> set[int]:
        """Indices of tiles whose results are completely written."""
        folder = self.partial / _DONE
        return {int(p.name) for p in folder.iterdir() if p.name.isdigit()}

    def mark_done(self, indices: Iterable[int]) -> None:
        """Record finished tiles (call only after their chunks are written)."""
        mark_done(self.partial, indices)

    def finalize(self, *, overwrite: bool = False) -> Path:
        """Publish the store under its final name and return that path.

        Every tile is done when this is called, so the bookkeeping is removed only after the
        rename: a crash in between leaves a complete output with a stale record, never a
        partial store that can no longer be resumed.
        """
        import zarr

        root = zarr.open_group(self.partial, mode="r+")
        root.attrs["scopeml"] = json.loads(json.dumps(self.identity))
        if self.output.exists():
            if not overwrite:
                raise InvalidRequestError("output appeared during the run", path=self.output)
            check_replaceable_store(self.output)
            _remove(self.output)
        os.replace(self.partial, self.output)
        shutil.rmtree(self.output / _DONE, ignore_errors=True)
        (self.output / _RUN).unlink(missing_ok=True)
        return self.output


def mark_done(partial: str | os.PathLike[str], indices: Iterable[int]) -> None:
    """Create the done records of tiles in a partial store (usable from remote workers)."""
    folder = Path(partial) / _DONE
    for index in indices:
        (folder / str(int(index))).touch()


def _write_json_atomically(path: Path, data: Mapping[str, Any]) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(temp, path)


def _remove(path: Path) -> None:
    """Remove a store: first rename it aside, so a crash never leaves a half-removed final name."""
    trash = path.with_name(path.name + ".removing")
    if trash.exists():
        shutil.rmtree(trash) if trash.is_dir() else trash.unlink()
    os.replace(path, trash)
    shutil.rmtree(trash) if trash.is_dir() else trash.unlink()
