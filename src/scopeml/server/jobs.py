"""Whole-image jobs: run the engine on a server-side image, record progress, survive restarts.

A job is a database record plus an output directory ``jobs/<id>/``. The engine writes its
resumable output there; a job the server was running when it stopped (even killed) is resumed
from the tiles already written when the server starts again, and ends identical to an
uninterrupted run. Image paths from requests are resolved and must lie below the configured
root (:func:`resolve_image_path`); uploaded images live under ``uploads/`` with a random name.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scopeml.errors import InvalidRequestError, ScopeMLError
from scopeml.model.spec import Model, ModelSpec
from scopeml.server.config import ServerConfig
from scopeml.server.database import Database
from scopeml.server.models import ModelRegistry

log = logging.getLogger(__name__)

RESULT_NAME = "result.ome.zarr"
ZIP_NAME = "result.zip"
IMAGE_SUFFIXES = (".czi", ".ome.tiff", ".ome.tif", ".tiff", ".tif", ".png", ".ome.zarr", ".zarr")
UPLOAD_SUFFIXES = tuple(s for s in IMAGE_SUFFIXES if "zarr" not in s)


class JobOptions(BaseModel):
    """Engine options a job may set; everything else is the server's choice."""

    model_config = ConfigDict(extra="forbid")

    outputs: list[Literal["labels", "probabilities", "confidence", "mask"]] | None = Field(
        default=None, min_length=1, max_length=4
    )
    tile_size: int | None = Field(default=None, ge=16, le=8192)
    halo: int | None = Field(default=None, ge=0, le=1024)
    batch_size: int | None = Field(default=None, ge=1, le=64)
    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    extract_class: str | None = Field(default=None, max_length=200)
    blend: bool | None = None
    normalize: str | None = Field(default=None, max_length=100)
    probability_dtype: Literal["float32", "float16", "uint8"] | None = None
    scene: int | None = Field(default=None, ge=0, le=100_000)

    def segment_options(self) -> dict[str, Any]:
        """The options as :class:`~scopeml.tiling.options.SegmentOptions` fields (checked)."""
        from scopeml.tiling.options import SegmentOptions

        options = self.model_dump(exclude_none=True)
        SegmentOptions(**options)  # raises InvalidRequestError on a bad combination
        return options


def resolve_image_path(user_path: str, allowed_root: Path | None) -> Path:
    """Resolve a request's image path and check it stays below ``allowed_root``.

    Relative paths are taken relative to the root; symlinks are resolved before the check, so
    neither ``..`` nor a link leads out.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "a.tif").write_bytes(b"")
    >>> resolve_image_path("a.tif", root) == (root / "a.tif").resolve()
    True
    >>> resolve_image_path("../etc/passwd", root)
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: image path '../etc/passwd' is outside the allowed root
    """
    if allowed_root is None:
        raise InvalidRequestError("this server accepts no image paths (no --allowed-root); upload")
    if not user_path or "\x00" in user_path or len(user_path) > 4096:
        raise InvalidRequestError("image path is empty, too long or contains NUL")
    root = allowed_root.resolve()
    candidate = (root / user_path).resolve()
    if not candidate.is_relative_to(root):
        raise InvalidRequestError(f"image path {user_path!r} is outside the allowed root")
    if not candidate.exists():
        raise InvalidRequestError(f"image path {user_path!r} does not exist below the root")
    if not candidate.name.lower().endswith(IMAGE_SUFFIXES):
        raise InvalidRequestError(
            f"image path {user_path!r} has an unknown suffix; known: {', '.join(IMAGE_SUFFIXES)}"
        )
    return candidate


def upload_suffix(filename: str) -> str:
    """The image suffix of an upload's file name, from the known ones (never the name itself).

    Examples
    --------
    >>> upload_suffix("cells.OME.TIFF")
    '.ome.tiff'
    """
    lower = filename.lower()
    for suffix in UPLOAD_SUFFIXES:
        if lower.endswith(suffix):
            return suffix
    raise InvalidRequestError(
        f"upload {filename!r} has an unknown image suffix; known: {', '.join(UPLOAD_SUFFIXES)}"
    )


class _Stopped(Exception):
    """The server is shutting down: leave the job to be resumed at the next start."""


class _JobModel:
    """A model that counts tiles for progress and stops the engine when the server stops."""

    def __init__(self, model: Model, stop: threading.Event, on_tiles: Any) -> None:
        self._model = model
        self._stop = stop
        self._on_tiles = on_tiles
        self.spec: ModelSpec = model.spec

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if self._stop.is_set():
            raise _Stopped()
        result = self._model.predict(batch)
        self._on_tiles(len(batch))
        return result

    def __getattr__(self, name: str) -> Any:  # identity attributes the engine may record
        return getattr(self._model, name)


class JobRunner:
    """Runs jobs in a small thread pool; resumes unfinished ones on start."""

    def __init__(self, config: ServerConfig, db: Database, registry: ModelRegistry) -> None:
        self.config = config
        self.db = db
        self.registry = registry
        self._stop = threading.Event()
        self._executor = ThreadPoolExecutor(config.job_workers, thread_name_prefix="scopeml-job")
        config.jobs_dir.mkdir(parents=True, exist_ok=True)

    def output_dir(self, job_id: str) -> Path:
        return self.config.jobs_dir / job_id

    def result_path(self, job_id: str) -> Path:
        return self.output_dir(job_id) / RESULT_NAME

    def resume_unfinished(self) -> list[str]:
        """Queue every job a previous server process left queued or running."""
        ids = [job["id"] for job in self.db.unfinished_jobs()]
        for job_id in ids:
            log.info("resuming job %s", job_id)
            self.submit(job_id)
        return ids

    def submit(self, job_id: str) -> None:
        self._executor.submit(self._run, job_id)

    def close(self) -> None:
        """Stop running jobs at their next batch (they resume at the next start)."""
        self._stop.set()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _run(self, job_id: str) -> None:
        job = self.db.get_job(job_id)
        if job is None or self._stop.is_set():
            return
        result = self.result_path(job_id)
        if result.exists():  # finished writing before the server stopped
            self.db.update_job(job_id, status="done", done=job["total"])
            return
        self.db.update_job(job_id, status="running")
        counter = _Progress(self.db, job_id)
        try:
            model = _JobModel(self.registry.get(job["model_id"]), self._stop, counter.add)
            _segment(job["image"], model, result, job["options"], counter)
        except _Stopped:
            log.info("job %s stopped; it resumes when the server starts again", job_id)
            return
        except ScopeMLError as err:  # name the file, not where the server keeps it
            where = f"{Path(err.path).name}: " if err.path else ""
            self.db.update_job(job_id, status="failed", error=where + err.problem)
            return
        except Exception as err:
            log.exception("job %s failed", job_id)
            self.db.update_job(
                job_id, status="failed", error=f"internal error ({type(err).__name__})"
            )
            return
        self.db.update_job(job_id, status="done", done=counter.total or counter.done)

    def remove(self, job_id: str) -> None:
        """Delete a job's record and output folder."""
        self.db.delete_job(job_id)
        shutil.rmtree(self.output_dir(job_id), ignore_errors=True)

    def result_zip(self, job_id: str) -> Path:
        """A zip of the job's OME-Zarr output (made once, atomically)."""
        target = self.output_dir(job_id) / ZIP_NAME
        if target.exists():
            return target
        source = self.result_path(job_id)
        partial = target.with_name(f".{ZIP_NAME}.{os.getpid()}.{threading.get_ident()}")
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:
            for path in sorted(source.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    archive.write(path, Path(RESULT_NAME) / path.relative_to(source))
        os.replace(partial, target)
        return target


class _Progress:
    """Tiles done and total of one job, written to the database at most a few times a second."""

    def __init__(self, db: Database, job_id: str) -> None:
        self.db = db
        self.job_id = job_id
        self.done = 0
        self.total = 0
        self._lock = threading.Lock()

    def set_total(self, total: int, done: int = 0) -> None:
        with self._lock:
            self.total, self.done = int(total), int(done)
        self.db.update_job(self.job_id, total=self.total, done=self.done)

    def add(self, n_tiles: int) -> None:
        with self._lock:
            self.done += n_tiles
            done = self.done
        self.db.update_job(self.job_id, done=done)


def _segment(
    image_path: str, model: Model, output: Path, options: dict[str, Any], progress: _Progress
) -> None:
    """Run the engine, resuming from whatever an earlier process left in ``output``."""
    from scopeml.api import segment
    from scopeml.io import open_image
    from scopeml.tiling.engine import build_plan
    from scopeml.tiling.options import SegmentOptions
    from scopeml.tiling.store import OutputStore

    output.parent.mkdir(parents=True, exist_ok=True)
    settings = {**options, "resume": True, "quiet": True}
    with open_image(image_path, scene=options.get("scene")) as image:
        total = len(build_plan(image, model, SegmentOptions(**settings)))
        try:
            already = len(OutputStore(output, {}).done())
        except FileNotFoundError:  # nothing written yet
            already = 0
        progress.set_total(total, already)
        segment(image, model, output, **settings)
