"""A Python client of the scopeml REST server, with client-side tiling.

:class:`Client` wraps the HTTP API (models, tiles, jobs). :meth:`Client.segment` runs the local
tiling engine on a local image with a :class:`RemoteModel` — a :class:`~scopeml.model.spec.Model`
whose ``predict`` sends the batch to the server — so the tile plan, halo, fusion and writing are
the engine's own and the result equals a local ``scopeml segment`` with the same model, bit for
bit. Only tiles travel; the image and the output stay on the client.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from os import PathLike
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from scopeml.errors import (
    Cancelled,
    InvalidRequestError,
    ServerResponseError,
    ServerUnreachableError,
)
from scopeml.model.spec import ModelSpec
from scopeml.progress import Progress, ProgressCallback, ProgressEvent, as_progress

if TYPE_CHECKING:
    from scopeml.segmentation import Segmentation

__all__ = ["Client", "RemoteModel", "ServerResponseError", "ServerUnreachableError", "Upload"]

NPY_MEDIA_TYPE = "application/x-npy"
#: What a job's ``done``/``total`` count, by its step (others count tiles).
JOB_STEP_UNITS = {"statistics": "block", "analyze": "image", "sizes": "image", "pyramid": "chunk"}
#: A segment job's steps in their order: a poll that finds a later step than the last one seen
#: means that one ended, though the poll missed its last count.
JOB_STEP_ORDER = ("statistics", "segment", "pyramid", "instances", "measure")


class RemoteModel:
    """A model that lives on a server: ``predict`` posts the batch, the spec comes from the server.

    Thread-safe (one pooled HTTP client), so the engine's workers send tiles concurrently.
    """

    def __init__(self, client: Client, model_id: str) -> None:
        self.client = client
        self.model_id = model_id
        self.spec: ModelSpec = client.model_spec(model_id)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """``N×C×[Z×]Y×X`` float32 → ``N×K×[Z×]Y×X`` float32, computed by the server."""
        return self.client.predict_tile(self.model_id, np.asarray(batch, np.float32))

    def __repr__(self) -> str:
        return f"RemoteModel({self.client.url!r}, {self.model_id!r})"


class Client:
    """Talk to a scopeml server.

    Parameters
    ----------
    url
        Base URL, e.g. ``http://127.0.0.1:8000``.
    token
        API token from ``scopeml admin create-token``.
    timeout
        Seconds per request (connect, read, write).
    max_connections
        Pooled connections; at least the number of threads that send tiles.
    """

    def __init__(
        self, url: str, token: str, *, timeout: float = 120.0, max_connections: int = 16
    ) -> None:
        import httpx

        from scopeml.errors import InvalidRequestError

        self.url = url.rstrip("/")
        if not self.url.lower().startswith(("http://", "https://")):  # httpx: "no answer"
            raise InvalidRequestError(
                f"server URL {url!r} names no protocol: give http://{self.url} (or https://)"
            )
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # plumbing ----------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._reaching(path):
            response = self._http.request(method, path, **kwargs)
        self._check(response, path)
        return response

    @contextlib.contextmanager
    def _reaching(self, path: str) -> Iterator[None]:
        """httpx's transport errors (which name no address) as one that names the URL."""
        import httpx

        try:
            yield
        except httpx.InvalidURL as err:  # a 70,000-character job id, say: never sent
            raise InvalidRequestError(
                f"cannot make a request of it ({err})", path=f"{self.url}{path[:80]}"
            ) from err
        except httpx.TransportError as err:
            raise ServerUnreachableError(
                f"no answer from the server ({type(err).__name__}: {err})", path=f"{self.url}{path}"
            ) from err

    def _check(self, response: Any, path: str) -> None:
        if response.status_code < 400:
            return
        try:
            detail = _detail_text(response.json().get("detail", response.text))
        except (ValueError, AttributeError):  # not JSON, or JSON that is not an object
            detail = response.text
        raise ServerResponseError(
            f"server answered {response.status_code}: {detail}",
            status_code=response.status_code,
            path=f"{self.url}{path}",
        )

    # service -----------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/health").json()

    # models ------------------------------------------------------------------------------------

    def list_models(self) -> list[dict[str, Any]]:
        """Models you own and shared ones."""
        return self._request("GET", "/models").json()

    def upload_model(self, path: str | PathLike[str], *, shared: bool = False) -> dict[str, Any]:
        """Upload a container file; returns its record (``id`` is what the other calls take)."""
        path = Path(path)
        with path.open("rb") as file:
            return self._request(
                "POST",
                "/models",
                params={"filename": path.name, "shared": str(shared).lower()},
                content=file,
                headers={"Content-Type": "application/octet-stream"},
            ).json()

    def get_model(self, model_id: str) -> dict[str, Any]:
        return self._request("GET", f"/models/{_segment(model_id)}").json()

    def model_spec(self, model_id: str) -> ModelSpec:
        """The model's :class:`ModelSpec`, as the server loaded it."""
        from scopeml.server.models import spec_from_dict

        return spec_from_dict(self.get_model(model_id)["spec"])

    def share_model(self, model_id: str, shared: bool = True) -> dict[str, Any]:
        return self._request(
            "PATCH", f"/models/{_segment(model_id)}", json={"shared": shared}
        ).json()

    def delete_model(self, model_id: str) -> None:
        self._request("DELETE", f"/models/{_segment(model_id)}")

    def model(self, model_id: str) -> RemoteModel:
        """The server's model as a local :class:`~scopeml.model.spec.Model`."""
        return RemoteModel(self, model_id)

    # tiles -------------------------------------------------------------------------------------

    def predict_tile(self, model_id: str, array: np.ndarray, *, labels: bool = False) -> np.ndarray:
        """Predict a tile ``C×[Z×]Y×X`` or a batch ``N×C×[Z×]Y×X`` on the server.

        Returns float32 probabilities ``[N×]K×[Z×]Y×X`` or, with ``labels=True``, the labels
        as ``segment`` writes them: class ``k`` as ``k + 1`` (the argmax + 1), 0 where a pixel
        was NaN or infinite.
        """
        array = np.ascontiguousarray(array)
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array, allow_pickle=False)
        response = self._request(
            "POST",
            f"/models/{_segment(model_id)}/predict",
            params={"output": "labels" if labels else "probabilities"},
            content=buffer.getvalue(),
            headers={"Content-Type": NPY_MEDIA_TYPE},
        )
        return np.load(io.BytesIO(response.content), allow_pickle=False)

    def segment(
        self,
        image: Any,
        model_id: str,
        output: str | PathLike[str],
        **options: Any,
    ) -> Segmentation:
        """Segment a local image with a server's model; write the result locally; returns its
        :class:`~scopeml.segmentation.Segmentation` (the store's path, with its outputs).

        The local engine (:func:`scopeml.api.segment`, same options) plans the tiles, reads them
        from the local image, and fuses and writes the result; each batch of tiles is predicted
        by the server, several at once from the engine's worker threads (``workers``, default
        4: the threads mostly wait for the network). ``outputs=(..., "instances")``,
        ``instances`` and ``measure`` make instances and their table locally, as there.
        """
        from scopeml.api import segment

        options.setdefault("workers", 4)
        return segment(image, self.model(model_id), output, **options)

    # jobs --------------------------------------------------------------------------------------

    def upload_image(self, path: str | PathLike[str]) -> Upload:
        """Upload an image file for a job; returns its record, as :meth:`upload_model` does
        (``["id"]`` is what :meth:`submit_job` and :meth:`submit_analysis` take, ``["name"]``
        the name jobs and results show, ``["size"]`` its bytes). The record is an
        :class:`Upload`: also the upload id itself, a ``str``, as this method returned before."""
        path = Path(path)
        with path.open("rb") as file:
            return Upload(
                self._request(
                    "POST",
                    "/images",
                    params={"filename": path.name},
                    content=file,
                    headers={"Content-Type": "application/octet-stream"},
                ).json()
            )

    def list_uploads(self) -> list[Upload]:
        """Your uploaded images, as :meth:`upload_image` returns them (:class:`Upload`: the id,
        and ``id``, ``size`` and ``name`` by key: the file name it is kept under, which jobs
        and analysis results show), so one passes on as ``upload_id`` as it is."""
        return [Upload(record) for record in self._request("GET", "/images").json()]

    def delete_upload(self, upload_id: str) -> None:
        """Delete an uploaded image on the server (frees its bytes of your quota)."""
        self._request("DELETE", f"/images/{_segment(upload_id)}")

    def submit_job(
        self,
        model_id: str,
        *,
        image_path: str | None = None,
        upload_id: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Start a whole-image job on a server-side image or an uploaded one.

        ``options`` are those of :func:`scopeml.api.segment` that a server takes
        (``outputs``, ``tile_size``, ``halo``, ``batch_size``, ``min_confidence``,
        ``extract_class``, ``blend``, ``normalize``, ``probability_dtype``, ``scene``, ``scale``:
        a number or ``"auto"``, chosen from the image when the job runs; left out, the model's
        default; ``axes``: a plain TIFF's axes, as ``--axes`` takes them; ``channels``: the
        image's channels fed to the model, by index or name, in the model's order), and:
        ``outputs=[..., "instances"]`` with ``instances`` an
        :class:`~scopeml.objects.instances.InstanceOptions` (or a dict of the JSON fields,
        the settings YAML's names: ``class``, ``boundary_class``, ``seed_threshold``, …);
        ``measure=True`` (or ``"csv"``, ``"parquet"``) for the objects table, fetched with
        :meth:`download_table` (or beside the store by :meth:`download_result`). They may
        also come as one ``options={...}`` dict, as the request's JSON holds them.
        """
        if isinstance(options.get("options"), dict):  # the REST body's form
            options = {**options.pop("options"), **options}
        if dataclasses.is_dataclass(options.get("instances")):
            fields = dataclasses.asdict(options["instances"])
            fields["class"] = fields.pop("class_")  # the JSON name (class_ only in Python)
            options["instances"] = fields
        body: dict[str, Any] = {"model_id": model_id, "options": options}
        if image_path is not None:
            body["image_path"] = str(image_path)
        if upload_id is not None:
            body["upload_id"] = upload_id
        return self._request("POST", "/jobs", json=body).json()

    def submit_analysis(
        self,
        settings: str | PathLike[str],
        *,
        image_paths: Sequence[str | PathLike[str]] | str | PathLike[str] = (),
        upload_ids: Sequence[str] | str = (),
    ) -> dict[str, Any]:
        """Run an analysis settings file (YAML) on the server over images below its allowed
        root and uploaded ones; a job record (follow it with :meth:`wait_job`, fetch the
        ``<job id>-results`` folder with :meth:`download_result`). An ``image_paths`` entry is
        a file, a folder (its images and its subfolders', as ``scopeml analyze`` takes one) or
        a glob pattern, relative to the server's root; one path (or upload id) may be given
        alone, as ``run_analysis`` takes it. Uploaded images are named in the results by their
        file names."""
        path = Path(settings)
        params: list[tuple[str, str]] = [("filename", path.name)]
        params += [("image_path", str(image)) for image in _listed(image_paths)]
        params += [("upload_id", str(upload)) for upload in _listed(upload_ids)]
        return self._request(
            "POST",
            "/analyses",
            params=params,
            content=path.read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
        ).json()

    def job(self, job_id: str) -> dict[str, Any]:
        """A job's record: ``status`` (queued, running, done, failed, cancelled), ``image``
        (its path below the server's root, or the uploaded file's name), ``step`` and
        ``done``/``total`` (the engine's tiles in step ``segment``; blocks of the
        normalisation's pass in step ``statistics``; in ``instances`` and ``measure`` the
        tiles of their passes so far, ``total`` growing as each pass begins), ``warnings``
        (what its run warned of, one line each, as a local run would warn: label images an
        analysis left out, say)."""
        return self._request("GET", f"/jobs/{_segment(job_id)}").json()

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job; its record stays (status ``cancelled``) with its
        partial output, which :meth:`resume_job` continues. Returns the record."""
        return self._request("POST", f"/jobs/{_segment(job_id)}/cancel").json()

    def resume_job(self, job_id: str) -> dict[str, Any]:
        """Queue a cancelled job again; it continues from the tiles (images) it had done."""
        return self._request("POST", f"/jobs/{_segment(job_id)}/resume").json()

    def delete_job(self, job_id: str) -> dict[str, Any] | None:
        """Delete a finished (done, failed or cancelled) job and its output on the server:
        returns ``None``. A queued or running job is cancelled instead, and stays listed as
        ``cancelled``: returns its record (delete it again to remove it)."""
        response = self._request("DELETE", f"/jobs/{_segment(job_id)}")
        return response.json() if response.status_code == 202 else None

    def list_jobs(
        self, *, status: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Your jobs, oldest first: only those in ``status`` (``"done"``, ``"failed"``, …),
        only the newest ``limit``."""
        params = {k: v for k, v in (("status", status), ("limit", limit)) if v is not None}
        return self._request("GET", "/jobs", params=params).json()

    def wait_job(
        self,
        job_id: str,
        *,
        timeout: float = 3600.0,
        interval: float = 0.5,
        progress: Progress = None,
    ) -> dict[str, Any]:
        """Poll until the job is no longer queued or running: done, failed, cancelled or
        timed_out (``TimeoutError`` after ``timeout`` seconds).

        ``progress`` follows the job as ``segment``'s does a local run: ``True`` for bars on
        stderr (in a log, a line per step as it ends, and one with the job's final status), or
        a callable given a :class:`~scopeml.progress.ProgressEvent` (the job's ``step``,
        ``done``, ``total``) at each poll where they moved, and a step at its total when a
        poll finds the next one (polls miss a step's last count). A callable that raises
        :class:`~scopeml.errors.Cancelled` cancels the job on the server (kept, resumable with
        :meth:`resume_job`), and this call re-raises it. Each of the job's ``warnings`` is
        given once, as it appears, as a :class:`UserWarning` (``job ID: …``), as a local run
        gives it.
        """
        report = as_progress(progress)
        deadline = time.monotonic() + timeout
        last: ProgressEvent | None = None
        warned: set[str] = set()
        try:
            while True:
                job = self.job(job_id)
                last = _report_job(report, job, last)
                for line in job.get("warnings") or ():
                    if line not in warned:
                        warned.add(line)
                        warnings.warn(f"job {job_id}: {line}", UserWarning, stacklevel=2)
                if job["status"] not in ("queued", "running"):
                    if progress is True:
                        report.close()  # type: ignore[attr-defined]
                        _say_status(job)
                    return job
                if time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout} s")
                time.sleep(interval)
        except Cancelled:
            try:
                self.cancel_job(job_id)
            except ServerResponseError as err:
                if err.status_code != 409:  # 409: it ended meanwhile, nothing to stop
                    raise
            raise
        finally:
            if progress is True:
                report.close()  # type: ignore[attr-defined]

    def download_result(
        self, job_id: str, target: str | PathLike[str], *, overwrite: bool = False
    ) -> Path:
        """Fetch a done job's output into folder ``target``, named by the job's id so that
        several jobs' results share a folder; return its path there: a segmentation's
        ``<job id>.ome.zarr``, with its objects table ``<job id>.csv`` (``.parquet``) beside it
        where the job measured them (the name :meth:`download_table` gives it); an analysis's
        ``<job id>-results`` folder. An existing one is refused, unless ``overwrite``; a table
        identical to the job's (fetched by :meth:`download_table` before) is kept as it is."""
        _check_file_id(job_id)  # it names files in target
        with _folder(target) as target:
            return self._download_result(job_id, target, overwrite)

    def _download_result(self, job_id: str, target: Path, overwrite: bool) -> Path:
        import shutil

        for name in (f"{job_id}.ome.zarr", f"{job_id}-results"):  # before the download
            _refuse_existing(target / name, overwrite)
        staging = target / f".{job_id}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        archive_path = target / f".{job_id}.zip.partial"
        try:
            self._download(f"/jobs/{_segment(job_id)}/result", archive_path)
            root, files = _extract_zip(archive_path, staging)
            moves = [(root, target / _result_name(job_id, root.name))]
            moves += [
                (file, target / f"{job_id}{file.suffix}")
                for file in files
                if not _same_file(file, target / f"{job_id}{file.suffix}")  # fetched before
            ]
            for _, destination in moves:
                _refuse_existing(destination, overwrite)
            for source, destination in moves:
                if destination.is_dir() and not destination.is_symlink():
                    shutil.rmtree(destination)
                elif destination.exists() or destination.is_symlink():
                    destination.unlink()
                source.replace(destination)
        finally:
            archive_path.unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
        return moves[0][1]

    def download_table(
        self, job_id: str, target: str | PathLike[str], *, overwrite: bool = False
    ) -> Path:
        """Fetch a done job's objects table (a job with ``measure``) into folder ``target``;
        return its path there (``<job id>.csv`` or ``.parquet``). An existing one is refused,
        unless ``overwrite`` (as :meth:`download_result`), or kept where it is identical (the
        table :meth:`download_result` unpacked beside the store)."""
        _check_file_id(job_id)  # it names files in target
        with _folder(target) as target:
            return self._download_table(job_id, target, overwrite)

    def _download_table(self, job_id: str, target: Path, overwrite: bool) -> Path:
        partial = target / f".{job_id}.table.partial"
        try:
            kind = self._download(f"/jobs/{_segment(job_id)}/objects", partial)
            path = target / f"{job_id}.{'parquet' if 'parquet' in kind else 'csv'}"
            if _same_file(partial, path):
                return path
            _refuse_existing(path, overwrite)
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        return path

    def _download(self, path: str, destination: Path) -> str:
        """Stream a GET answer's body into ``destination``; its content type."""
        with self._reaching(path), self._http.stream("GET", path) as response:
            if response.status_code >= 400:
                response.read()
                self._check(response, path)
            with destination.open("wb") as file:
                for block in response.iter_bytes():
                    file.write(block)
            return response.headers.get("content-type", "")


class Upload(str):
    """An uploaded image's record, as :meth:`Client.upload_image` returns it: its fields by key
    like :meth:`Client.upload_model`'s dict (``upload["id"]``, ``["name"]``, ``["size"]``;
    ``dict(upload)`` copies them), and itself the upload id, a ``str`` (what ``upload_image``
    returned before), so code that passes it on as the id keeps working.

    Examples
    --------
    >>> upload = Upload({"id": "0a1b", "name": "cells.tif", "size": 1024})
    >>> upload["id"], upload["name"], upload == "0a1b", dict(upload)["size"]
    ('0a1b', 'cells.tif', True, 1024)
    """

    record: dict[str, Any]

    def __new__(cls, record: dict[str, Any]) -> Upload:
        upload = super().__new__(cls, record["id"])
        upload.record = dict(record)
        return upload

    def __getnewargs__(self) -> tuple[dict[str, Any]]:  # type: ignore[override]
        return (self.record,)

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return self.record[key]
        return str(self)[key]

    def keys(self) -> Any:
        return self.record.keys()

    def __repr__(self) -> str:
        return f"Upload({self.record!r})"


def _listed(values: Any) -> list[Any]:
    """``values`` as a list, one path or id given alone as a list of it: a ``str`` is a
    sequence, and its characters were sent as paths (``'b' does not exist``).

    >>> _listed("plate"), _listed(["a", "b"]), _listed(Path("a.tif")) == [Path("a.tif")]
    (['plate'], ['a', 'b'], True)
    """
    return [values] if isinstance(values, (str, PathLike)) else list(values)


def _detail_text(detail: Any) -> str:
    """A 422's list of validation errors as one line, each field by its place in the body:
    ``options.tile_size: Input should be less than or equal to 8192`` (shown as a Python list
    of dicts before); any other detail as it came.

    Examples
    --------
    >>> _detail_text([{"loc": ["body", "options", "halo"], "msg": "Input should be >= 0"}])
    'options.halo: Input should be >= 0'
    """
    if not isinstance(detail, list) or not all(
        isinstance(item, dict) and "msg" in item for item in detail
    ):
        return str(detail)
    parts = []
    for item in detail:
        place = [str(part) for part in item.get("loc", ())]
        if place[:1] == ["body"] and len(place) > 1:  # the body's fields by their own names
            place = ["body"] if place[1].isdigit() else place[1:]  # a position: no field
        parts.append(f"{'.'.join(place)}: {item['msg']}" if place else str(item["msg"]))
    return "; ".join(parts)


def _report_job(
    report: ProgressCallback, job: dict[str, Any], last: ProgressEvent | None
) -> ProgressEvent | None:
    """Report the job's step and counts if they moved since ``last``; the event reported. A
    later step than ``last``'s ends that one: it is reported at its total first (a log writes
    a stage's line when it ends; one left short would read as still open). The step
    ``starting`` (the job's process starts) counts nothing and is not reported."""
    step = job.get("step")
    if not step or step == "starting":
        return last
    event = ProgressEvent(
        step, int(job.get("done") or 0), job.get("total") or None, JOB_STEP_UNITS.get(step, "tile")
    )
    if last is not None and _ended(last, step):
        report(dataclasses.replace(last, done=last.total))
    if event != last:
        report(event)
    return event


def _ended(last: ProgressEvent, step: str) -> bool:
    """Whether step ``step`` follows ``last``'s, which a poll left short of its total.

    >>> levels = ProgressEvent("pyramid", 5, 20)
    >>> _ended(ProgressEvent("segment", 60, 64), "pyramid"), _ended(levels, "instances")
    (True, True)
    >>> _ended(levels, "segment")
    False
    """
    order = JOB_STEP_ORDER
    if last.total is None or last.done >= last.total or last.stage not in order:
        return False
    return step in order and order.index(step) > order.index(last.stage)


def _say_status(job: dict[str, Any]) -> None:
    """The job's final status on stderr, after its progress lines (``job ID: failed: …``)."""
    import sys

    error = f": {job['error']}" if job.get("error") else ""
    with contextlib.suppress(OSError, ValueError):  # no stderr to write to
        sys.stderr.write(f"job {job['id']}: {job['status']}{error}\n")
        sys.stderr.flush()


def _result_name(job_id: str, root: str) -> str:
    """The local name of a job's downloaded output folder.

    Examples
    --------
    >>> _result_name("ab12", "result.ome.zarr"), _result_name("ab12", "results")
    ('ab12.ome.zarr', 'ab12-results')
    """
    return f"{job_id}.ome.zarr" if root.endswith(".zarr") else f"{job_id}-{root}"


def _same_file(new: Path, old: Path) -> bool:
    """Whether ``old`` is a plain file with the bytes of ``new`` (not a link)."""
    import filecmp

    if old.is_symlink() or not old.is_file() or not new.is_file():
        return False
    return filecmp.cmp(new, old, shallow=False)


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if not overwrite and (path.exists() or path.is_symlink()):
        raise InvalidRequestError(
            "exists (downloaded before?); pass overwrite=True to replace it", path=path
        )


def _extract_zip(archive_path: Path, target: Path) -> tuple[Path, list[Path]]:
    """Extract a result zip; member names are checked so nothing lands outside ``target``.
    It holds one folder (the store, or an analysis's results) and perhaps files beside it (the
    objects table): their paths."""
    roots, files = set(), set()
    with zipfile.ZipFile(archive_path) as archive:
        for member in archive.infolist():
            name = PurePosixPath(member.filename)
            if name.is_absolute() or ".." in name.parts or "\\" in member.filename:
                raise InvalidRequestError(f"result zip has an unsafe member {member.filename!r}")
            (files if len(name.parts) == 1 and not member.is_dir() else roots).add(name.parts[0])
            destination = target.joinpath(*name.parts)
            if member.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, destination.open("wb") as file:
                while block := source.read(1 << 20):
                    file.write(block)
    if len(roots) != 1 or files & roots:
        raise InvalidRequestError(f"result zip should hold one store; it holds {sorted(roots)}")
    return target / roots.pop(), [target / name for name in sorted(files)]


def _segment(value: str) -> str:
    """An id as one path segment, percent-encoded: ``../models/x`` given as a job id reached
    the model route (and deleted the model); ``..`` alone is encoded too, never resolved."""
    from urllib.parse import quote

    if not str(value):
        raise InvalidRequestError("an id is empty (a job's, a model's or an upload's)")
    text = quote(str(value), safe="")
    return text.replace(".", "%2E") if text.strip(".") == "" else text


@contextlib.contextmanager
def _folder(target: str | PathLike[str]) -> Iterator[Path]:
    """Folder ``target``, made if missing, and removed again if made and still empty after a
    failure (a job not done: 409 left an empty folder behind)."""
    target = Path(target)
    made = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        yield target
    except BaseException:
        if made:
            with contextlib.suppress(OSError):
                target.rmdir()
        raise


def _check_file_id(job_id: str) -> None:
    """Refuse a job id that is no plain name before it names local files (``../x`` would
    stage, and clear, a folder outside the target); the server's ids are letters and digits."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(job_id)):
        raise InvalidRequestError(f"{str(job_id)[:80]!r} is not a job id (letters and digits)")
