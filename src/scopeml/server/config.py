"""The server's settings: one frozen dataclass shared by ``scopeml serve`` and the tests."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
GB = 1024 * MB


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) readable by the server's user only (0700).

    Examples
    --------
    >>> import tempfile
    >>> folder = private_dir(Path(tempfile.mkdtemp()) / "a" / "b")
    >>> oct(folder.stat().st_mode & 0o777)
    '0o700'
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)  # mkdir's mode is masked by the umask, and exist_ok keeps an old mode
    return path


def private_tree(path: Path) -> None:
    """Make every folder (0700) and file (0600) below ``path`` private to the server's user.

    Files are created under the server's umask (077), but a job's child process or a library
    may set its own modes; a job's output is made private again once written. Links are not
    followed.
    """
    for folder, dirs, files in os.walk(path):
        with contextlib.suppress(FileNotFoundError):  # a job being deleted meanwhile
            os.chmod(folder, 0o700)
            for name in files:
                file = os.path.join(folder, name)
                if not os.path.islink(file):
                    os.chmod(file, 0o600)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]


@dataclass(frozen=True)
class ServerConfig:
    """Where the server keeps its state and how much it accepts.

    Attributes
    ----------
    data_dir
        Models (``models/<id>``), uploaded images and job outputs live here.
    db
        The SQLite database of tokens, models and jobs; ``data_dir/scopeml.db`` by default.
    allowed_root
        Jobs may name server-side images only below this directory; ``None`` disables
        server-side paths (uploads only).
    max_model_bytes, max_image_bytes, max_tile_bytes, max_json_bytes
        Size limits of a model upload, an image upload, one tile request body and a JSON body.
        ``max_tile_bytes`` defaults to a quarter of ``max_tile_memory`` (a tile's server memory
        is at least four times its body: the body, its float32 batch, output and encoding).
    max_tile_memory
        Server memory one tile request, or one batch of a job, may hold (body, float32 batch,
        output and its encoding, see :func:`~scopeml.server.tiles.tile_memory`); a larger tile
        answers 413. 2 GiB: a job of the built-in ``nuclei`` model in its default 896² tiles
        counts about 1.1 GB a batch. Tile requests side by side hold at most
        ``predict_workers`` times this; more wait their turn (in arrival order).
    upload_quota_bytes
        Total size of the images one user may keep uploaded (``DELETE /images/{id}`` frees).
    max_batch, batch_wait_ms
        The micro-batcher collects tile requests for up to ``batch_wait_ms`` milliseconds or
        ``max_batch`` tiles, whichever comes first, into one ``predict`` call.
    predict_workers
        ``predict`` calls that may run at once, over all models and users.
    user_predict_workers
        Of those, how many one user's tiles may hold at once (default: all but one, so another
        user's tile finds a free worker however slow the first user's model is).
    model_time_budget
        Seconds one model call may run before it is stopped (a tile answers 422, a job fails);
        ``0`` for none.
    model_cache
        How many loaded models (runtime sessions) stay in memory.
    job_workers
        Whole-image jobs run at the same time (default 2, so that one user's long job leaves
        a worker for the others; each runs in its own process within ``job_memory_limit``).
    user_job_workers
        Of those, how many one user's jobs may hold at once (default: all but one, so another
        user's job starts when submitted however many the first user queued). Queued jobs
        are taken in turn between users (:class:`~scopeml.server.fair.FairQueue`).
    max_user_jobs
        Jobs one user may have queued or running at once; one more answers 429 (a script that
        submits in a loop fills the queue, and each submit's image check costs the server
        about a second, however many are refused later).
    max_job_attempts
        A job that was running when the server stopped (crashed, was killed) is resumed at the
        next start at most this many times in all; then it is marked failed.
    job_memory_limit
        Bytes of address space one job's process (and one image check at upload) may map
        (``RLIMIT_AS``): a job runs in a child process, so a file that makes a reader allocate
        without bound fails that job, not the server.
    image_check_timeout
        Seconds the child that opens an uploaded or named image at submit time may take.
    max_settings_bytes
        Size limit of an analysis settings file (YAML) in a request.
    max_job_pixels
        Most pixels one job may process: the product of its image's axes but the channels
        (time points × planes × height × width), times ``scale`` per spatial axis where a job
        magnifies. Checked at submit from the size the image declares, so a small file that
        declares a huge image (a 16 KB OME-Zarr of 200000², 4·10¹⁰ pixels) is refused before
        it occupies a job worker for hours. The default, 2³⁴ (a 131072² plane, 1.7·10¹⁰), passes
        the largest whole-slide scans (about 100000 × 150000) and stops what no microscope
        writes; a job runs roughly 10⁸ pixels a minute on a CPU core, so lower it on a shared
        server. An analysis counts all its images (every scene), times its largest ``scale``.
        ``scale: auto`` counts 1 at submit; the job's process checks the factor it chose
        before the engine runs (:func:`~scopeml.server._job_child.check_job_inputs`).
    max_job_seconds
        Seconds one run of a job may take; past it the run is stopped as a cancel stops it, the
        job marked ``timed_out`` with its partial output kept (``POST /jobs/{id}/resume`` gives
        it another run of as long). ``0`` for none. The default, a day, lets through the
        largest job ``max_job_pixels`` admits (about 3 CPU-hours at 10⁸ pixels a minute) many
        times over, and frees a job worker that a reader hung on a stalled file system (which
        no model time budget sees) would hold for ever; nothing is lost by stopping.
    body_timeout
        Seconds a request's body may stall (no byte arriving) before it is answered 408 and
        its connection closed; ``0`` for none. A slow link still sends a chunk far more often.

    Examples
    --------
    >>> config = ServerConfig(Path("/tmp/scopeml-data"))
    >>> config.db.name, config.max_batch, config.user_predict_workers, config.max_tile_bytes // MB
    ('scopeml.db', 8, 1, 512)
    """

    data_dir: Path
    db: Path | None = None
    allowed_root: Path | None = None
    max_model_bytes: int = 512 * MB
    max_image_bytes: int = 2048 * MB
    max_tile_bytes: int | None = None
    max_tile_memory: int = 2 * GB
    max_json_bytes: int = 64 * 1024
    upload_quota_bytes: int = 10 * GB
    max_batch: int = 8
    batch_wait_ms: float = 5.0
    predict_workers: int = 2
    user_predict_workers: int | None = None
    model_time_budget: float = 300.0
    model_cache: int = 4
    job_workers: int = 2
    user_job_workers: int | None = None
    max_user_jobs: int = 100
    max_job_attempts: int = 3
    job_memory_limit: int = 4 * GB
    image_check_timeout: float = 60.0
    max_settings_bytes: int = 256 * 1024
    max_job_pixels: int = 2**34
    max_job_seconds: float = 86400.0
    body_timeout: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).resolve())
        db = self.data_dir / "scopeml.db" if self.db is None else Path(self.db).resolve()
        object.__setattr__(self, "db", db)
        if self.allowed_root is not None:
            object.__setattr__(self, "allowed_root", Path(self.allowed_root).resolve())
            kept = (self.models_dir, self.uploads_dir, self.jobs_dir)
            _check_apart(self.allowed_root, self.data_dir, db, kept)
        if self.max_tile_bytes is None:
            object.__setattr__(self, "max_tile_bytes", max(1, self.max_tile_memory // 4))
        for name in (
            *("max_model_bytes", "max_image_bytes", "max_tile_bytes", "max_json_bytes"),
            *("upload_quota_bytes", "max_batch", "model_cache", "job_workers"),
            *("predict_workers", "max_job_attempts", "max_tile_memory", "job_memory_limit"),
            *("max_settings_bytes", "max_job_pixels", "max_user_jobs"),
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.body_timeout >= 0:  # 0: none
            raise ValueError(f"body_timeout must be 0 or more, got {self.body_timeout}")
        if self.user_predict_workers is None:
            object.__setattr__(self, "user_predict_workers", max(1, self.predict_workers - 1))
        if not 1 <= self.user_predict_workers <= self.predict_workers:
            raise ValueError(
                f"user_predict_workers must be 1 to predict_workers ({self.predict_workers}), "
                f"got {self.user_predict_workers}"
            )
        if self.user_job_workers is None:
            object.__setattr__(self, "user_job_workers", max(1, self.job_workers - 1))
        if not 1 <= self.user_job_workers <= self.job_workers:
            raise ValueError(
                f"user_job_workers must be 1 to job_workers ({self.job_workers}), "
                f"got {self.user_job_workers}"
            )
        if not self.model_time_budget >= 0:
            raise ValueError(f"model_time_budget must be >= 0, got {self.model_time_budget}")
        if not self.max_job_seconds >= 0:
            raise ValueError(f"max_job_seconds must be >= 0, got {self.max_job_seconds}")

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"


def _check_apart(root: Path, data_dir: Path, db: Path, kept: tuple[Path, ...]) -> None:
    """Refuse a data folder (or database) below the allowed root, or a root inside the
    folders users' files are kept in (``kept``): a job may read any file below the root, so
    every user's uploads, models and results would be open to every other user's jobs (a
    folder analysis listed them all). A root beside them in the data folder is no such leak."""
    from scopeml.errors import InvalidRequestError

    below = [(p, o) for p, o in ((data_dir, "--data-dir"), (db, "--db")) if p.is_relative_to(root)]
    holding = [(k, "--data-dir") for k in kept if root.is_relative_to(k)]
    if below or holding:
        (path, option), where = (below + holding)[0], "lies below" if below else "holds"
        raise InvalidRequestError(
            f"the server keeps users' files here, and it {where} the allowed root {root}: "
            "every user's uploads, models and results would be open to every user's jobs; "
            f"give a {option} outside it",
            path=path,
        )
