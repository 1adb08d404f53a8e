"""Whole-image jobs: segment a server-side image, record progress, survive restarts.

A job is a database record plus an output directory ``jobs/<id>/``. Its run is the facade's
(:func:`scopeml.api.segment`: the engine, then instances and their table where asked for),
written in ``jobs/<id>/stage/`` and moved to ``result.ome.zarr`` (and ``objects.csv``) when
every output is made; a job the server was running when it stopped (even killed) is resumed
from the tiles already written when the server starts again, and ends identical to an
uninterrupted run. Image paths from requests are resolved and must lie below the configured
root (:func:`~scopeml.server.paths.resolve_image_path`); uploaded images live under
``uploads/`` with a random name. What a request may ask, and what it may cost, are checked
before it is queued (:mod:`scopeml.server.job_options`, :mod:`scopeml.server.limits`).
Each attempt runs in a child process (:mod:`scopeml.server._job_child`): a reader that crashes
on a corrupt file fails the job, not the server. An analysis job (model id ``analysis``) runs a
settings file over images into ``jobs/<id>/results/``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import zipfile
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from scopeml.analysis.results_lock import LOCK
from scopeml.errors import Cancelled, InvalidRequestError, ScopeMLError
from scopeml.model.registry import BUILTIN_MODELS
from scopeml.server._job_child import ChildDied, InternalJobError, TimedOut, run_in_child
from scopeml.server.config import ServerConfig, private_dir, private_tree
from scopeml.server.database import Database
from scopeml.server.fair import FairQueue
from scopeml.server.job_options import INSTANCES
from scopeml.server.models import CONTAINER_SUFFIXES, ModelRegistry
from scopeml.server.paths import hide_server_paths, image_name, image_names, public_error

log = logging.getLogger(__name__)

RESULT_NAME = "result.ome.zarr"
ZIP_NAME = "result.zip"
ANALYSIS = "analysis"  # the model id of an analysis job (no model of its own)
SETTINGS_NAME = "settings.yaml"
IMAGES_NAME = "images.json"
RESULTS_NAME = "results"
TABLE_STEM = "objects"  # objects.csv or objects.parquet beside the result
STAGE_NAME = "stage"  # where a run writes; its outputs are moved out of it when all are made
MODEL_DIR = "model"  # the job's own link to its uploaded model, while it runs
MODEL_RECORD = "model.json"  # beside it: the model's record as the job started


class JobRunner:
    """Runs jobs on ``config.job_workers`` threads; resumes unfinished ones on start; cancels on
    request.

    Queued jobs are shared fairly between users (:class:`~scopeml.server.fair.FairQueue`, as
    the predict workers are): a free worker takes the next job of the user served longest ago,
    and no user runs more than ``config.user_job_workers`` jobs at once, so one user's long
    queue never holds back another's job behind all of it.

    A job that was running when the server stopped counts one attempt; after
    ``config.max_job_attempts`` it is marked failed instead of being resumed again, so a job that
    crashes or hangs the server is not retried for ever.
    """

    def __init__(self, config: ServerConfig, db: Database, registry: ModelRegistry) -> None:
        self.config = config
        self.db = db
        self.registry = registry
        self._stop = threading.Event()
        self._cancel: dict[str, threading.Event] = {}
        self._futures: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # a job queued, a worker freed, a stop
        self._queue: FairQueue[str] = FairQueue(
            config.job_workers, config.user_job_workers or config.job_workers
        )
        self._owners: dict[str, str] = {}  # of the jobs queued or running here
        private_dir(config.jobs_dir)
        self._workers = [
            threading.Thread(target=self._work, name=f"scopeml-job-{i}", daemon=True)
            for i in range(config.job_workers)
        ]
        for worker in self._workers:
            worker.start()

    def output_dir(self, job_id: str) -> Path:
        return self.config.jobs_dir / job_id

    def result_path(self, job_id: str) -> Path:
        return self.output_dir(job_id) / RESULT_NAME

    def table_path(self, job_id: str) -> Path | None:
        """The objects table of a job that asked for one (``measure``), else ``None``."""
        job = self.db.get_job(job_id)
        kind = None if job is None else job["options"].get("measure")
        return self.output_dir(job_id) / f"{TABLE_STEM}.{kind}" if kind else None

    def resume_unfinished(self) -> list[str]:
        """Queue every job a previous server process left queued or running; one that has
        been stopped ``--max-job-attempts`` times while running is failed instead (its
        partial output kept: ``POST /jobs/{id}/resume`` gives it another run)."""
        jobs = self.db.unfinished_jobs()
        queued = []
        for job in jobs:
            unclean = int(job["attempts"]) - int(job.get("stops") or 0)
            if job["status"] == "running" and unclean >= self.config.max_job_attempts:
                self._give_up(job, unclean)
                continue
            if job["status"] == "running":  # said where the server's operator sees it
                log.warning(
                    "resuming job %s of %s: it was running when the server stopped (step %s, "
                    "%d/%d); it continues from its partial output (run %d; stopped %d of at "
                    "most %d times, --max-job-attempts)",
                    job["id"], job["owner"], job.get("step") or "-", job["done"], job["total"],
                    job["attempts"] + 1, unclean, self.config.max_job_attempts,
                )  # fmt: skip
            else:
                log.info("job %s of %s was queued when the server stopped; queued again",
                         job["id"], job["owner"])  # fmt: skip
            self.submit(job["id"])
            queued.append(job["id"])
        return queued

    def _give_up(self, job: dict[str, Any], stopped: int) -> None:
        """Fail a job that was stopped ``stopped`` times while running (the server crashed or
        was killed each time), keeping its partial output for a resume by its owner."""
        self.db.update_job(job["id"], status="failed", error=_gave_up(stopped))
        self._drop_model(job["id"])
        log_failure(job, f"{_gave_up(stopped)} (--max-job-attempts)")

    def submit(self, job_id: str) -> None:
        """Queue a job (behind its owner's earlier ones; see :class:`JobRunner`)."""
        job = self.db.get_job(job_id)
        owner = "" if job is None else job["owner"]
        with self._wake:
            self._cancel[job_id] = threading.Event()
            self._futures[job_id] = Future()
            self._owners[job_id] = owner
            self._queue.put(owner, job_id)
            self._wake.notify()

    def counts(self) -> dict[str, int]:
        """Jobs of this process waiting for a worker (``queued``) and running (``running``)."""
        with self._lock:
            return {"queued": self._queue.waiting, "running": self._queue.busy}

    def _work(self) -> None:
        """A job worker: runs the queue's next job (:class:`FairQueue`'s turn) until the stop."""
        while True:
            with self._wake:
                while not self._stop.is_set() and (taken := self._queue.take()) is None:
                    self._wake.wait()
                if self._stop.is_set():
                    return
                owner, job_id = taken
                future = self._futures.get(job_id)
            try:
                if future is None or future.set_running_or_notify_cancel():
                    self._run(job_id)
            except Exception as err:
                log.exception("job %s: its worker failed", job_id)
                if future is not None:
                    future.set_exception(err)
            else:
                if future is not None and not future.cancelled():
                    future.set_result(None)
            finally:
                with self._wake:
                    self._queue.release(owner)
                    self._wake.notify_all()

    def cancel(self, job_id: str) -> Future[None] | None:
        """Ask a queued or running job to stop at its next batch; its future, if it has one.
        The job's record is marked ``cancelled`` (by its run when it stops, or by the caller)
        and its output folder kept: :meth:`resume` continues from the tiles it wrote."""
        with self._lock:
            event, future = self._cancel.get(job_id), self._futures.get(job_id)
            owner = self._owners.get(job_id, "")
            unqueued = self._queue.remove(owner, job_id)  # waiting: it never starts
            if unqueued:
                self._forget(job_id)
        if event is not None:
            event.set()
        if unqueued and future is not None:
            future.set_result(None)
        return future

    def running(self, job_id: str) -> bool:
        """Whether a run of the job is still queued or under way in this process."""
        with self._lock:
            future = self._futures.get(job_id)
        return future is not None and not future.done()

    def resume(self, job_id: str) -> bool:
        """Queue a cancelled, timed-out or failed job again; it resumes from its partial
        output (the engine's tiles, an analysis's finished images). Whether it was one."""
        if self.running(job_id) or not self.db.requeue_job(job_id):
            return False
        self.submit(job_id)
        return True

    def close(self) -> None:
        """Stop running jobs at their next batch (they resume at the next start)."""
        with self._wake:
            self._stop.set()
            self._wake.notify_all()
            waiting = list(self._queue.items())
            for owner, job_id in waiting:
                self._queue.remove(owner, job_id)
                future = self._futures.get(job_id)
                if future is not None:
                    future.cancel()
                self._forget(job_id)
        for worker in self._workers:
            worker.join()

    def image_roots(self, image: str | Path) -> list[Path]:
        """The folders a job's image may read from: its upload's folder, or the allowed root."""
        path = Path(image)
        if path.parent.parent == self.config.uploads_dir:
            return [path.parent]
        if path.parent == self.config.uploads_dir:  # a single-file upload of an older server
            return [path]
        return [] if self.config.allowed_root is None else [self.config.allowed_root]

    def _run(self, job_id: str) -> None:
        try:
            job = self.db.get_job(job_id)
            if job is None or self._stop.is_set() or self._cancelled(job_id):
                return
            if job["status"] not in ("queued", "running"):  # cancelled while queued
                return
            if self.result_path(job_id).exists():  # finished writing before the server stopped
                self.db.update_job(job_id, status="done", done=job["total"])
                return
            unclean = self.db.start_job_attempt(job_id)  # this one, and those a crash ended
            if unclean > self.config.max_job_attempts:  # (resume_unfinished fails it first)
                self._give_up(job, unclean - 1)
                return
            self._attempt(job)
        finally:
            with self._lock:
                self._forget(job_id)
            now = self.db.get_job(job_id)
            if now is None:  # deleted while queued or running
                shutil.rmtree(self.output_dir(job_id), ignore_errors=True)
            elif now["status"] != "running":  # done, failed, cancelled while queued: let go
                self._drop_model(job_id)  # (a job the server's stop left running keeps it)

    def _attempt(self, job: dict[str, Any]) -> None:
        """Run one attempt of a job in a child process (see :mod:`scopeml.server._job_child`);
        the warnings its run gives are added to the job's ``warnings``, server paths hidden."""
        job_id = job["id"]
        outcome: dict[str, Any] = {"status": "done"}
        restarts = False  # stopped by the server's stop: the next start resumes it
        try:
            task, already = self._task(job)
            progress = _JobProgress(self.db, job_id, already, _tile_total(job, already))
            progress.start(task.get("progress_stage", "segment"))
            private_dir(self.output_dir(job_id))
            note = self._run_child(job, task, progress)
            outcome["done"] = progress.total
            if note:
                outcome["error"] = hide_server_paths(note, self.config)
        except TimedOut:  # stopped as a cancel stops it: kept, resumable
            outcome = {}
            self.db.stopped_cleanly(job_id)  # not the job's crash: no attempt off the limit
            if not self._cancelled(job_id) and self.db.time_out_job(
                job_id, self.config.max_job_seconds
            ):
                log.warning("job %s ran past --max-job-seconds; stopped, resumable", job_id)
            else:  # cancelled meanwhile
                self.db.cancel_job(job_id)
        except Cancelled:  # cancelled (kept, resumable) or the server stops (it resumes)
            outcome = {}
            self.db.stopped_cleanly(job_id)  # a run (attempts), but not the job's fault
            if self._cancelled(job_id):
                self.db.cancel_job(job_id)
                log.info("job %s cancelled; its partial output is kept for a resume", job_id)
            else:
                restarts = True
                log.info("job %s stopped; it resumes when the server starts again", job_id)
        except ChildDied as err:  # counts as an attempt: a crashing job is not resumed for ever
            outcome = {"status": "failed", "error": self._reason(err, job)}  # its image named
        except ScopeMLError as err:  # name the file, not where the server keeps it
            outcome = {"status": "failed", "error": self._reason(err, job)}
        except InternalJobError as err:  # the child wrote its traceback to the server's log
            log.error("job %s failed in its process: %s (traceback above)", job_id, err)
            outcome = {"status": "failed", "error": str(err)}
        except Exception as err:
            log.exception("job %s failed", job_id)
            outcome = {"status": "failed", "error": f"internal error ({type(err).__name__})"}
        if self.output_dir(job_id).exists():  # the engine's writer makes files 0644
            private_tree(self.output_dir(job_id))
        if outcome.get("status") == "failed":
            log_failure(job, outcome["error"])
        if outcome:
            self.db.update_job(job_id, **outcome)
        if not restarts:  # the job is not resumed by the next start: its model let go
            self._drop_model(job_id)

    def _run_child(self, job: dict[str, Any], task: dict[str, Any], progress: Any) -> str | None:
        """The job's task run in its child (:func:`run_in_child`), its warnings recorded as
        they come; an analysis's then say what every image it has finished warned of, also
        those of earlier runs and of a run cancelled or stopped (:meth:`_note_channels_read`:
        its run's own line for the images read in order, of those it analysed, is left out)."""
        job_id, analysis = job["id"], job["model_id"] == ANALYSIS

        def warned(line: str) -> None:
            if not (analysis and said_channels_read(line)):
                self.db.add_job_warning(job_id, hide_server_paths(line, self.config))

        try:
            return run_in_child(
                task,
                progress,
                self._stops(job_id),
                self.config.job_memory_limit,
                progress.step,
                time_limit=self.config.max_job_seconds or None,
                on_warning=warned,
            )
        finally:
            if analysis:
                self._note_channels_read(job_id)

    def _note_channels_read(self, job_id: str) -> None:
        """The job's one line for its finished images whose files name no channels (read in
        order: :func:`~scopeml.analysis.image.unnamed_warning`), in place of the line an earlier
        run gave. A run says it only as it ends, of the images it analysed: a cancelled run
        said nothing of those it finished, and a resumed one named only its own."""
        from scopeml.analysis.image import unnamed_warning
        from scopeml.analysis.resume import finished_images
        from scopeml.analysis.settings import load_settings

        try:
            channels = load_settings(self.output_dir(job_id) / SETTINGS_NAME).channels
            finished = finished_images(self.output_dir(job_id) / RESULTS_NAME)
            line = unnamed_warning(list(finished.values()), channels)
        except Exception:  # the run says what is wrong (a bad settings file): not this
            log.warning("job %s: its images' warnings were not read", job_id, exc_info=True)
            return
        said = None if line is None else hide_server_paths(line, self.config)
        self.db.replace_job_warnings(job_id, said_channels_read, said)

    def model_problem(self, job: dict[str, Any]) -> str | None:
        """Why a job's model may no longer run for its owner (deleted, or no longer shared
        with them), checked where the job is resumed and where it starts: a job queued or
        resumed after its model was unshared ran on with it; ``None``: it may."""
        if job["model_id"] == ANALYSIS:  # an analysis names its model files in its settings
            return None
        if self.registry.visible(job["model_id"], self.db.user(job["owner"])) is None:
            return f"the job's model {job['model_id']!r} was deleted or is no longer shared"
        return None

    def _task(self, job: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """What the child runs for ``job``, and how much an earlier attempt already did."""
        job_id, options = job["id"], job["options"]
        if job["model_id"] == ANALYSIS:
            if (problem := self.model_problem(job)) is not None:
                raise InvalidRequestError(problem)
            images = json.loads((self.output_dir(job_id) / IMAGES_NAME).read_text())
            roots = self.analysis_roots(images)
            task = {
                "kind": "analyze",
                "settings": str(self.output_dir(job_id) / SETTINGS_NAME),
                "images": images,
                "output": str(self.output_dir(job_id) / RESULTS_NAME),
                "roots": [str(root) for root in roots],
                "base": None if self.config.allowed_root is None else str(self.config.allowed_root),
                "progress_stage": "analyze",
                "names": image_names(images, self.config),
                "max_job_pixels": self.config.max_job_pixels,  # checked again once auto chooses
            }
            return task, 0
        result, table = self.result_path(job_id), self.table_path(job_id)
        model_file, model = self._job_model(job)  # model None: a built-in one
        task = {
            "kind": "segment",
            "model": str(model_file),
            # what the store records instead of the server's paths (the names the user knows)
            "name": image_name(job["image"], self.config)[0],
            "model_name": None if model is None else model["spec"].get("name"),
            "time_budget": self.config.model_time_budget,
            "image": job["image"],
            "options": options,
            "output": str(result),
            "table": None if table is None else str(table),
            "stage": str(self.output_dir(job_id) / STAGE_NAME),
            "roots": [str(root) for root in self.image_roots(job["image"])],
            # checked again once auto chooses its factor (at submit it counted ×1)
            "max_job_pixels": self.config.max_job_pixels,
            "max_tile_memory": self.config.max_tile_memory,
            "runtime_per_pixel": self._runtime_per_pixel(job["model_id"], model),
        }
        staged = self.output_dir(job_id) / STAGE_NAME / RESULT_NAME
        _adopt_partial(result, staged)
        return task, _tiles_written(staged)

    def _job_model(self, job: dict[str, Any]) -> tuple[Path, dict[str, Any] | None]:
        """The model file a segment job runs, and its record (``None``: a built-in model).

        A job takes its own hard link of an uploaded model's file (a copy across file
        systems) in ``jobs/<id>/model/`` when it starts, with its record: deleting or
        unsharing the model then does not take it from a job already running, which finishes
        with it, even when a restart of the server resumes it. A job that starts (queued,
        resumed by its owner) checks the model for its owner first and fails saying so."""
        model_id = job["model_id"]
        folder = self.output_dir(job["id"]) / MODEL_DIR
        kept = _kept_model(folder, model_id)
        if job["status"] == "running" and kept is not None:  # running when the server stopped
            return kept
        if (problem := self.model_problem(job)) is not None:  # unshared since it was queued
            raise InvalidRequestError(problem)
        if model_id in BUILTIN_MODELS:
            return self.registry.path(model_id), None
        record = self.db.get_model(model_id)
        try:
            source = self.registry.path(model_id)
            private_dir(folder)
            target = folder / source.name
            if not target.exists():
                _link_or_copy(source, target)
        except FileNotFoundError as err:  # deleted since the check above
            raise InvalidRequestError(
                f"the job's model {model_id!r} was deleted or is no longer shared"
            ) from err
        (folder / MODEL_RECORD).write_text(json.dumps(record))
        return target, record

    def _drop_model(self, job_id: str) -> None:
        """Let go of the job's own link to its model (the job is not running any more)."""
        shutil.rmtree(self.output_dir(job_id) / MODEL_DIR, ignore_errors=True)

    def _runtime_per_pixel(self, model_id: str, record: dict[str, Any] | None) -> float:
        """The runtime's bytes per input pixel that submit counted in a batch's memory
        (:func:`~scopeml.server.limits.job_memory`): from the model's record, a built-in
        model's as served."""
        from scopeml.model.registry import BUILTIN_MODELS
        from scopeml.server.models import RUNTIME_KEY

        if record is None and model_id in BUILTIN_MODELS:
            record = self.registry.builtin(model_id)
        return float((record or {}).get("spec", {}).get(RUNTIME_KEY, 0) or 0)

    def save_analysis_images(self, job_id: str, images: list[str]) -> None:
        """Keep an analysis job's image paths with its settings (its record shows only the
        names the user gave)."""
        target = private_dir(self.output_dir(job_id)) / IMAGES_NAME
        target.write_text(json.dumps(images))
        os.chmod(target, 0o600)

    def analysis_roots(self, images: list[str]) -> list[Path]:
        """The folders an analysis job may read: the allowed root and its uploads' folders."""
        roots = [] if self.config.allowed_root is None else [self.config.allowed_root]
        for image in images:
            for root in self.image_roots(image):
                if root not in roots:
                    roots.append(root)
        return roots

    def _reason(self, err: ScopeMLError, job: dict[str, Any]) -> str:
        """The failure as the user knows the files (a model by its display name), with no
        server path (:func:`hide_server_paths`)."""
        return hide_server_paths(self._named(err, job), self.config)

    def _named(self, err: ScopeMLError, job: dict[str, Any]) -> str:
        model_dirs = (self.config.models_dir, self.output_dir(job["id"]) / MODEL_DIR)
        if err.path and Path(err.path).parent in model_dirs:
            record = self.db.get_model(job["model_id"]) or _kept_model_record(
                self.output_dir(job["id"]) / MODEL_DIR
            )
            return public_error(err, f"model {record['name']}" if record else "model")
        if job["model_id"] == ANALYSIS:  # the settings by the user's file name, an image by its
            settings = self.output_dir(job["id"]) / SETTINGS_NAME  # public name
            if err.path and Path(err.path) == settings:
                return public_error(err, job["options"].get("settings") or SETTINGS_NAME)
            if err.path:  # an image (each is checked before any is read)
                return public_error(err, image_name(err.path, self.config)[0], Path(err.path))
            return public_error(err)
        image = Path(job["image"])
        return public_error(err, image_name(image, self.config)[0], image)

    def _forget(self, job_id: str) -> None:
        """Drop a job's run state (the caller holds the lock)."""
        self._cancel.pop(job_id, None)
        self._futures.pop(job_id, None)
        self._owners.pop(job_id, None)

    def _cancelled(self, job_id: str) -> bool:
        with self._lock:
            event = self._cancel.get(job_id)
        return event is not None and event.is_set()

    def _stops(self, job_id: str) -> tuple[threading.Event, ...]:
        with self._lock:
            event = self._cancel.get(job_id)
        return (self._stop,) if event is None else (self._stop, event)

    def remove(self, job_id: str) -> None:
        """Delete a job's record and output folder (a running job removes it when it stops)."""
        self.db.delete_job(job_id)
        shutil.rmtree(self.output_dir(job_id), ignore_errors=True)

    def result_zip(self, job_id: str) -> Path:
        """A zip of the job's output (made once, atomically): ``result.ome.zarr/…`` of a
        segmentation job (and its objects table beside it, ``objects.csv``), ``results/…`` of
        an analysis job."""
        target = self.output_dir(job_id) / ZIP_NAME
        if target.exists():
            return target
        source = self.output_dir(job_id) / RESULTS_NAME
        table = None
        if not source.is_dir():
            source, table = self.result_path(job_id), self.table_path(job_id)
        partial = target.with_name(f".{ZIP_NAME}.{os.getpid()}.{threading.get_ident()}")
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:
            for path in sorted(source.rglob("*")):
                inside = path.relative_to(source).parts
                if any(part.endswith(".partial") for part in inside):  # a stopped run's scratch
                    continue
                if inside == (LOCK,):  # a killed run's lock on the folder, not a result
                    continue
                if path.is_file() and not path.is_symlink():
                    archive.write(path, Path(source.name) / path.relative_to(source))
            if table is not None and table.is_file():
                archive.write(table, table.name)
        os.replace(partial, target)
        return target


def _gave_up(attempts: int) -> str:
    return (
        f"stopped {attempts} times while running (the server crashed, was killed or restarted "
        "during each attempt); not resumed again by the server: its partial output is kept, "
        "POST /jobs/{id}/resume continues it"
    )


def log_failure(job: dict[str, Any], reason: str) -> None:
    """The server log's one line for a failed job: its id, its owner and why."""
    log.warning("job %s of %s failed: %s", job["id"], job["owner"], reason)


def _kept_model(folder: Path, model_id: str) -> tuple[Path, dict[str, Any] | None] | None:
    """The model file a job took when it started (see :meth:`JobRunner._job_model`) and its
    record, if it holds one."""
    for path in sorted(folder.glob(f"{model_id}.*")) if folder.is_dir() else ():
        if path.suffix in CONTAINER_SUFFIXES and path.is_file():
            return path, _kept_model_record(folder)
    return None


def _kept_model_record(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MODEL_RECORD).read_text())
    except (OSError, ValueError):
        return None


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link of ``source``, or a copy where no link can be made (another
    file system); written whole or not at all."""
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        os.link(source, partial)
    except FileNotFoundError:
        raise
    except OSError:
        shutil.copyfile(source, partial)
    os.replace(partial, target)


#: :func:`~scopeml.analysis.image.unnamed_warning`'s line, of one image or of several.
CHANNELS_READ = re.compile(
    r"(?:\d+ images name no channels \(|.*: the file names no channels: read ).* \(in order\)"
)


def said_channels_read(line: str) -> bool:
    """Whether a job's warning is an analysis's line for its images read in order.

    >>> from scopeml.analysis.image import unnamed_warning
    >>> read = {"file": ["C0"], "read": [0]}
    >>> records = [{"image": f"p/{i}.tif", "channels_read": read} for i in "ab"]
    >>> said_channels_read(unnamed_warning(records, ["DNA"]))
    True
    >>> said_channels_read(unnamed_warning(records[:1], ["DNA"]))
    True
    >>> said_channels_read("p/a.tif: 5 pages read as Z")
    False
    """
    return CHANNELS_READ.fullmatch(line) is not None


def _tile_total(job: dict[str, Any], already: int) -> int:
    """The job's tile count as its record last showed it, while a resumed attempt has not
    counted its tiles yet: its ``total`` where that counted the engine's tiles (not the blocks
    of step ``statistics``) and at least the ``already`` written; in the steps after the
    engine (whose ``total`` counts their own passes) the ``already`` written, which are all;
    0 (not counted yet) otherwise, so that a resume never reads as finished (``done`` =
    ``total``) before its work restarts.

    Examples
    --------
    >>> _tile_total({"step": "segment", "total": 64}, 5)
    64
    >>> _tile_total({"step": "statistics", "total": 16}, 5), _tile_total({"total": 0}, 0)
    (0, 0)
    >>> _tile_total({"step": "instances", "total": 192}, 64)
    64
    """
    total, step = int(job.get("total") or 0), job.get("step")
    if already and step in OWN_COUNT_STEPS and step != "statistics":
        return already
    if already and step != "statistics" and total >= already:
        return total
    return 0


#: Steps whose ``done``/``total`` count their own units, not the engine's tiles: the blocks of
#: the normalisation's pass; the tiles of the instances' and the table's passes
#: (:class:`~scopeml.server._job_child.PassCounter`); the chunks of an output's lower
#: resolutions.
OWN_COUNT_STEPS = ("statistics", INSTANCES, "measure", "pyramid")


class _JobProgress:
    """Records the child's progress and step on the job (``already``: tiles of an earlier
    attempt; ``expected``: all its tiles, as an earlier attempt counted them, 0 if unknown).
    In the ``statistics`` step ``done``/``total`` count the blocks its pass reads; in
    ``segment``, the engine's tiles (with those of earlier attempts); in ``instances`` and
    ``measure``, the tiles of their passes over the labels (:data:`OWN_COUNT_STEPS`)."""

    def __init__(self, db: Database, job_id: str, already: int, expected: int = 0) -> None:
        self.db, self.job_id, self.already = db, job_id, already
        self.expected = expected
        self.total = already
        self.current: str | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.current in OWN_COUNT_STEPS:
            if self.current != "statistics":  # the job's last count, when it is done
                self.total = total
            self.db.update_job(self.job_id, done=done, total=total)
            return
        self.total = self.already + total
        self.db.update_job(self.job_id, done=self.already + done, total=self.total)

    def start(self, name: str) -> None:
        """The attempt's first step: ``starting`` for a segment job with no tiles counted yet
        (not ``segment`` at 0 of 0 before its ``statistics``; the child names its steps as they
        begin), else ``name`` (a resume's tiles so far, an analysis's ``analyze``)."""
        fresh = name == "segment" and not self.already and not self.expected
        self.step("starting" if fresh else name)

    def step(self, name: str) -> None:
        """The step the job is in (``statistics``, ``segment``, then ``instances``,
        ``measure``; ``analyze`` for an analysis)."""
        self.current = name
        if name == "segment":  # the tiles an earlier attempt wrote, until the engine counts
            total = self.total if self.total > self.already else self.expected
            self.db.update_job(self.job_id, step=name, done=self.already, total=total)
        else:
            self.db.update_job(self.job_id, step=name)


def _adopt_partial(result: Path, staged: Path) -> None:
    """Move the partial store that a server from before the stage folder left beside the
    result into the stage, so that its tiles resume instead of being run again."""
    from scopeml.tiling.store import partial_path

    old, new = partial_path(result), partial_path(staged)
    if old.is_dir() and not new.exists():
        private_dir(staged.parent)
        os.replace(old, new)


def _tiles_written(output: Path) -> int:
    """Tiles an earlier attempt already wrote to ``output`` (0 when it has not started)."""
    from scopeml.tiling.store import OutputStore

    try:
        return len(OutputStore(output, {}).done())
    except FileNotFoundError:  # nothing written yet
        return 0
