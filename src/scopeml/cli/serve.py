"""``scopeml serve`` (the REST server) and ``scopeml admin`` (API tokens)."""

from __future__ import annotations

from pathlib import Path

import typer

DATA_DIR_HELP = "Folder for models, uploads, job outputs and (by default) the database."
DB_HELP = "SQLite database of tokens, models and jobs (default: DATA_DIR/scopeml.db)."

admin = typer.Typer(help="Administer a scopeml server: API tokens.", no_args_is_help=True)


def serve(
    data_dir: Path = typer.Option(Path("scopeml-data"), "--data-dir", help=DATA_DIR_HELP),
    db: Path | None = typer.Option(None, "--db", help=DB_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on."),
    allowed_roots: list[Path] | None = typer.Option(
        None, "--allowed-root", help="Jobs may read server-side images only below this folder."
    ),
    max_model_mb: float = typer.Option(
        512, "--max-model-mb", min=0.001, help="Model upload limit."
    ),
    max_image_mb: float = typer.Option(
        2048, "--max-image-mb", min=0.001, help="Image upload limit."
    ),
    max_tile_mb: float | None = typer.Option(
        None, "--max-tile-mb", min=0.001, help="Tile body limit (default: a quarter of the next)."
    ),
    max_tile_memory_mb: float = typer.Option(
        2048, "--max-tile-memory-mb", min=0.001, help="Server memory one tile request may hold."
    ),
    max_batch: int = typer.Option(8, "--max-batch", min=1, help="Most tiles per predict call."),
    batch_wait_ms: float = typer.Option(
        5.0, "--batch-wait-ms", min=0, help="How long a tile waits for others to batch with."
    ),
    predict_workers: int = typer.Option(
        2, "--predict-workers", min=1, help="Predict calls that run at once (all users)."
    ),
    user_predict_workers: int | None = typer.Option(
        None,
        "--user-predict-workers",
        min=1,
        help="Predict calls one user's tiles may hold at once (default: all but one).",
    ),
    model_time_budget: float = typer.Option(
        300.0,
        "--model-time-budget",
        min=0,
        help="Seconds one model call may run before it is stopped (0: no limit).",
    ),
    upload_quota_mb: float = typer.Option(
        10240, "--upload-quota-mb", min=0.001, help="Uploaded images one user may keep."
    ),
    max_json_kb: float = typer.Option(64, "--max-json-kb", min=1, help="JSON body limit."),
    job_workers: int = typer.Option(
        2,
        "--job-workers",
        min=1,
        help="Jobs run at once (2: one user's long job leaves one for the others; 1 makes "
        "every user wait behind it).",
    ),
    user_job_workers: int | None = typer.Option(
        None,
        "--user-job-workers",
        min=1,
        help="Jobs one user may run at once (default: all but one of --job-workers). Queued "
        "jobs are taken in turn between users, not first come first served.",
    ),
    max_user_jobs: int = typer.Option(
        100, "--max-user-jobs", min=1, help="Jobs one user may have queued or running at once."
    ),
    max_job_attempts: int = typer.Option(
        3, "--max-job-attempts", min=1, help="Starts of a job before a crashing one fails."
    ),
    job_memory_mb: float = typer.Option(
        4096,
        "--job-memory-mb",
        min=64,
        help="Address space one job's process may map (jobs run in child processes).",
    ),
    max_job_pixels: int = typer.Option(
        2**34,
        "--max-job-pixels",
        min=1,
        help="Most pixels one job may process (time points × planes × height × width, as the "
        "image declares it; default 2^34, a 131072² plane); a larger image is refused at submit.",
    ),
    max_job_seconds: float = typer.Option(
        86400,
        "--max-job-seconds",
        min=0,
        help="Seconds one run of a job may take before it is stopped as timed_out, resumable "
        "(0: no limit).",
    ),
    body_timeout: float = typer.Option(
        60,
        "--body-timeout",
        min=0,
        help="Seconds a request body may stall (no byte arriving) before it is answered 408 "
        "(0: no limit).",
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve models over HTTP: registry, batched tile prediction, whole-image jobs.

    Create a token first with `scopeml admin create-token USER`. Unfinished jobs of an earlier
    run resume on start. The API schema is at /docs.
    """
    from scopeml.errors import InvalidRequestError
    from scopeml.server import ServerConfig, run_server

    # Checked here, so a bad folder is a one-line error rather than a failed server startup.
    if data_dir.exists() and not data_dir.is_dir():
        raise InvalidRequestError("the data folder is a file", path=data_dir)
    if allowed_roots and len(allowed_roots) > 1:  # click would keep the last one alone
        raise InvalidRequestError(
            f"given {len(allowed_roots)} times; give one folder, one above every folder the "
            "jobs may read",
            path="--allowed-root",
        )
    allowed_root = allowed_roots[0] if allowed_roots else None
    if allowed_root is not None and not allowed_root.is_dir():
        raise InvalidRequestError("the allowed root is not an existing folder", path=allowed_root)
    if user_predict_workers is not None and user_predict_workers > predict_workers:
        raise InvalidRequestError(
            f"--user-predict-workers {user_predict_workers} is more than --predict-workers "
            f"{predict_workers}"
        )
    if user_job_workers is not None and user_job_workers > job_workers:
        raise InvalidRequestError(
            f"--user-job-workers {user_job_workers} is more than --job-workers {job_workers}"
        )
    config = ServerConfig(
        data_dir=data_dir,
        db=db,
        allowed_root=allowed_root,
        max_model_bytes=_bytes(max_model_mb),
        max_image_bytes=_bytes(max_image_mb),
        max_tile_bytes=None if max_tile_mb is None else _bytes(max_tile_mb),
        max_tile_memory=_bytes(max_tile_memory_mb),
        max_batch=max_batch,
        batch_wait_ms=batch_wait_ms,
        max_json_bytes=max(1, int(max_json_kb * 1024)),
        upload_quota_bytes=_bytes(upload_quota_mb),
        predict_workers=predict_workers,
        user_predict_workers=user_predict_workers,
        model_time_budget=model_time_budget,
        job_workers=job_workers,
        user_job_workers=user_job_workers,
        max_user_jobs=max_user_jobs,
        max_job_attempts=max_job_attempts,
        job_memory_limit=_bytes(job_memory_mb),
        max_job_pixels=max_job_pixels,
        max_job_seconds=max_job_seconds,
        body_timeout=body_timeout,
    )
    run_server(config, host=host, port=port, log_level=log_level)


@admin.command("create-token")
def create_token(
    user: str = typer.Argument(..., help="User the token belongs to."),
    is_admin: bool = typer.Option(False, "--admin", help="The user may see every model and job."),
    data_dir: Path = typer.Option(Path("scopeml-data"), "--data-dir", help=DATA_DIR_HELP),
    db: Path | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Create an API token and print it (only its hash is stored: it cannot be shown again)."""
    from scopeml.errors import InvalidRequestError
    from scopeml.server.database import Database

    path = db or data_dir / "scopeml.db"
    new = not path.exists()
    database = Database(path)
    try:
        token = database.create_token(user, admin=is_admin)
    except ValueError as err:
        raise InvalidRequestError(str(err)) from err
    finally:
        database.close()
    typer.echo(token)
    if new:  # a mistyped --data-dir makes a token no running server knows
        where = f"--db {path}" if db else f"--data-dir {data_dir}"
        typer.echo(f"note: {path} is a new database: only a server started with {where} "
                   "accepts this token", err=True)  # fmt: skip


@admin.command("revoke-tokens")
def revoke_tokens(
    user: str = typer.Argument(..., help="User whose tokens to delete."),
    data_dir: Path = typer.Option(Path("scopeml-data"), "--data-dir", help=DATA_DIR_HELP),
    db: Path | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Delete every token of a user."""
    from scopeml.server.database import Database

    database = Database(db or data_dir / "scopeml.db")
    try:
        count = database.revoke_tokens(user)
    finally:
        database.close()
    typer.echo(f"revoked {count} token(s) of {user}")


def _bytes(megabytes: float) -> int:
    return max(1, int(megabytes * 1024 * 1024))
