"""The server's settings: one frozen dataclass shared by ``scopeml serve`` and the tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024


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
    max_model_bytes, max_image_bytes, max_tile_bytes
        Size limits of a model upload, an image upload and one tile request body.
    max_batch, batch_wait_ms
        The micro-batcher collects tile requests for up to ``batch_wait_ms`` milliseconds or
        ``max_batch`` tiles, whichever comes first, into one ``predict`` call.
    predict_workers
        ``predict`` calls of one model that may run at once.
    model_cache
        How many loaded models (runtime sessions) stay in memory.
    job_workers
        Whole-image jobs run at the same time.

    Examples
    --------
    >>> config = ServerConfig(Path("/tmp/scopeml-data"))
    >>> config.db.name, config.max_batch
    ('scopeml.db', 8)
    """

    data_dir: Path
    db: Path | None = None
    allowed_root: Path | None = None
    max_model_bytes: int = 512 * MB
    max_image_bytes: int = 2048 * MB
    max_tile_bytes: int = 256 * MB
    max_batch: int = 8
    batch_wait_ms: float = 5.0
    predict_workers: int = 2
    model_cache: int = 4
    job_workers: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).resolve())
        db = self.data_dir / "scopeml.db" if self.db is None else Path(self.db).resolve()
        object.__setattr__(self, "db", db)
        if self.allowed_root is not None:
            object.__setattr__(self, "allowed_root", Path(self.allowed_root).resolve())
        for name in ("max_model_bytes", "max_image_bytes", "max_tile_bytes", "max_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if min(self.model_cache, self.job_workers, self.predict_workers) < 1:
            raise ValueError("model_cache, job_workers and predict_workers must be at least 1")

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"
