"""Job routes: segment a whole image on the server, follow it, fetch or delete its result."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse, JSONResponse

from scopeml.errors import InvalidRequestError
from scopeml.server.database import RESUMABLE, UNFINISHED, new_id
from scopeml.server.deps import (
    Config,
    Db,
    Jobs,
    OwnJob,
    Registry,
    User,
    check_job_room,
    find_model,
    image_check,
)
from scopeml.server.job_options import check_instances, engine_options
from scopeml.server.jobs import ANALYSIS
from scopeml.server.limits import (
    check_job_channels,
    check_job_memory,
    check_job_pixels,
    check_job_scene,
    describe_job_image,
)
from scopeml.server.models import RUNTIME_KEY, spec_from_dict
from scopeml.server.paths import image_name, resolve_image_path
from scopeml.server.schemas import ERRORS, JobInfo, JobRequest, job_images, job_info
from scopeml.tiling.outputs import class_index, model_outputs

router = APIRouter(prefix="/jobs", tags=["jobs"])

CANCEL_WAIT_S = 10.0
TABLE_MEDIA_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
ZIP_RESPONSE = {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}


def _job_image(job: JobRequest, user: dict, config: Config, db: Db) -> tuple[str, str]:
    """The server path of the job's image (an upload of the caller's, or one below the root)
    and the name to show for it."""
    if (job.image_path is None) == (job.upload_id is None):
        raise InvalidRequestError("give exactly one of image_path and upload_id")
    if job.upload_id is None:
        path = resolve_image_path(job.image_path or "", config.allowed_root)
        return str(path), job.image_path or ""
    upload = db.get_upload(job.upload_id)
    if upload is None or upload["owner"] != user["user"]:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no upload {job.upload_id!r}")
    return upload["path"], Path(upload["path"]).name


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=ERRORS)
async def submit_job(
    request: Request,
    job: JobRequest,
    user: User,
    config: Config,
    db: Db,
    registry: Registry,
    jobs: Jobs,
) -> JobInfo:
    """Segment a whole image on the server; poll ``GET /jobs/{id}`` for progress."""
    check_job_room(db, config, user["user"])
    record = find_model(registry, job.model_id, user)
    options = job.options.segment_options()
    spec = spec_from_dict(record["spec"])
    # outputs the model cannot write (image of a classifier, classes of a Regression model)
    # are refused now with the engine's message, not when the job runs
    engine = engine_options(options)
    model_outputs(
        spec.extra.get("model_type"), engine.get("outputs", ("labels",)),
        engine.get("min_confidence"),
    )  # fmt: skip
    if engine.get("extract_class") is not None:  # a class the model lacks: now, named
        class_index(spec.classes, engine["extract_class"])
    check_instances(options, spec, record["name"])  # a model with no object class, say
    image, name = _job_image(job, user, config, db)
    with image_check(request, user["user"]):
        await _check_job_image(image, name, options, record, config, jobs)
    check_job_room(db, config, user["user"])  # again: others may have come in meanwhile
    job_id = new_id()
    db.add_job(
        {
            "id": job_id,
            "owner": user["user"],
            "model_id": job.model_id,
            "image": image,
            "options": options,
        }
    )
    for line in job.options.instances.renamed if job.options.instances else ():
        db.add_job_warning(job_id, line)  # given at validation: the client reads them here
    jobs.submit(job_id)
    return job_info(db.get_job(job_id), config)


async def _check_job_image(
    image: str, name: str, options: dict, record: dict, config: Any, jobs: Any
) -> None:
    """The image read as the job will read it (pixels, channels, sizes) and checked against
    the model and the server's limits: at submit, and again at a resume (the file may have
    been replaced, the limits lowered)."""
    spec = spec_from_dict(record["spec"])
    found = await asyncio.to_thread(
        describe_job_image,
        image,
        options.get("scene"),
        jobs.image_roots(image),
        name,
        config,
        axes=options.get("axes"),
    )
    check_job_scene(found, options.get("scene"), name)
    shape = tuple(int(n) for n in found["shape"])
    check_job_channels(shape, options, spec, repr(record["name"]), name, found["channel_names"])
    check_job_pixels(shape, options, spec, config.max_job_pixels, name)
    runtime = record["spec"].get(RUNTIME_KEY, 0)
    check_job_memory(shape, options, spec, runtime, config.max_tile_memory, config.job_memory_limit)


#: A job's status, as ``GET /jobs?status=`` chooses by it.
JobStatus = Literal["queued", "running", "done", "failed", "cancelled", "timed_out"]


@router.get("", responses={401: ERRORS[401], 422: ERRORS[422]})
async def list_jobs(
    request: Request,
    user: User,
    db: Db,
    config: Config,
    job_status: JobStatus | None = Query(
        None,
        alias="status",
        description="Only the jobs in this status (`done`, `failed`, `running`, …).",
    ),
    limit: int | None = Query(
        None,
        ge=1,
        le=100_000,
        description="Only the newest N (of those chosen by status), still oldest first.",
    ),
) -> list[JobInfo]:
    """Your jobs (an admin's: everyone's), oldest first, cancelled ones included; a query
    parameter it does not know is refused (422), not ignored (it would list every job)."""
    unknown = sorted(set(request.query_params) - {"status", "limit"})
    if unknown:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown query parameter "
                            f"{unknown[0]!r}; GET /jobs takes status and limit")  # fmt: skip
    rows = db.list_jobs(user["user"], admin=user["admin"])
    rows = [row for row in rows if job_status is None or row["status"] == job_status]
    return [job_info(row, config) for row in rows[-limit if limit else 0 :]]


@router.get("/{job_id}", responses=ERRORS)
async def get_job(job: OwnJob, config: Config) -> JobInfo:
    """A job's status, its image and progress: ``done`` of ``total`` tiles in step ``segment``
    (blocks of the normalisation's pass over the image in step ``statistics``; in steps
    ``instances`` and ``measure``, the tiles of their passes over the labels so far; step
    ``starting`` while its process starts, ``analyze`` an analysis's images)."""
    return job_info(job, config)


async def _cancel(job: dict, jobs: Jobs, db: Db) -> None:
    """Stop a queued or running job and mark it cancelled. A running job stops at its next
    batch of tiles; this waits for that up to ``CANCEL_WAIT_S`` seconds (a job stuck in one
    model call is marked now and stops when the call returns)."""
    future = jobs.cancel(job["id"])
    if future is not None and job["status"] == "running":
        with contextlib.suppress(Exception):  # timed out, or the job failed meanwhile
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), CANCEL_WAIT_S)
    db.cancel_job(job["id"])  # queued (never started), or still stopping; a done job stays


DELETE_RESPONSES = {
    202: {"model": JobInfo, "description": "The job was queued or running: it was cancelled, "
          "not removed (its record, status cancelled); a second DELETE removes it"},
    204: {"description": "The job was finished: it was removed with its output"},
}  # fmt: skip


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses={**DELETE_RESPONSES, **ERRORS})  # fmt: skip
async def delete_job(job: OwnJob, jobs: Jobs, db: Db, config: Config) -> Response:
    """Cancel a queued or running job, or delete a finished one with its output.

    A queued or running job is cancelled, not removed: the answer is 202 with its record
    (status ``cancelled``), and it stays listed with its partial output, for the record and
    for ``POST /jobs/{id}/resume``; a second ``DELETE`` removes it. A finished (done, failed,
    cancelled, timed out) job is removed: 204, no body.
    """
    if job["status"] in UNFINISHED:
        await _cancel(job, jobs, db)
        row = db.get_job(job["id"])
        if row is not None:  # else removed meanwhile, by another DELETE
            record = job_info(row, config).model_dump(mode="json")
            return JSONResponse(record, status.HTTP_202_ACCEPTED)
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    await asyncio.to_thread(jobs.remove, job["id"])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{job_id}/cancel", responses={409: {"description": "Job already finished"}, **ERRORS})
async def cancel_job(job: OwnJob, jobs: Jobs, db: Db, config: Config) -> JobInfo:
    """Cancel a queued or running job; it stays listed as ``cancelled``, its partial output
    kept (``POST /jobs/{id}/resume`` continues it)."""
    if job["status"] not in UNFINISHED:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"job is {job['status']}; only a queued or running job can be cancelled",
        )
    await _cancel(job, jobs, db)
    return job_info(db.get_job(job["id"]), config)


@router.post(
    "/{job_id}/resume",
    responses={409: {"description": "Job not cancelled, timed out or failed"}, **ERRORS},
)
async def resume_job(
    request: Request, job: OwnJob, jobs: Jobs, db: Db, config: Config, registry: Registry
) -> JobInfo:
    """Queue a cancelled, timed-out or failed job again: it continues from the tiles (an
    analysis: the images) it had finished. A job that failed on its input fails again,
    saying why; one the server gave up after restarts (``--max-job-attempts``) gets that
    many again."""
    if job["status"] not in RESUMABLE:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"job is {job['status']}, not cancelled, timed out or failed",
        )
    gone = [image for image in job_images(job, config) if not Path(image).exists()]
    if gone:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"the job's image {image_name(gone[0], config)[0]} was deleted",
        )
    if (problem := jobs.model_problem(job)) is not None:  # deleted or unshared since
        raise HTTPException(status.HTTP_409_CONFLICT, problem)
    if job["model_id"] != ANALYSIS:  # the file replaced, the limits lowered since: as submit
        record = registry.visible(job["model_id"], {"user": job["owner"], "admin": False})
        if record is None:  # deleted since model_problem looked
            raise HTTPException(status.HTTP_409_CONFLICT, "the job's model was deleted")
        name = image_name(job["image"], config)[0]
        with image_check(request, job["owner"]):
            await _check_job_image(job["image"], name, job["options"], record, config, jobs)
    check_job_room(db, config, job["owner"])
    if not jobs.resume(job["id"]):
        raise HTTPException(status.HTTP_409_CONFLICT, "the job is still stopping; try again")
    return job_info(db.get_job(job["id"]), config)


@router.get(
    "/{job_id}/result",
    response_class=FileResponse,
    responses={200: ZIP_RESPONSE, 409: {"description": "Job not done"}, **ERRORS},
)
async def job_result(job: OwnJob, jobs: Jobs) -> FileResponse:
    """The job's OME-Zarr output as a zip (``result.ome.zarr/…``)."""
    if job["status"] != "done":
        raise HTTPException(status.HTTP_409_CONFLICT, f"job is {job['status']}, not done")
    path = await asyncio.to_thread(jobs.result_zip, job["id"])
    return FileResponse(path, media_type="application/zip", filename=f"{job['id']}.zip")


@router.get(
    "/{job_id}/objects",
    response_class=FileResponse,
    responses={
        200: {"content": {media: {} for media in TABLE_MEDIA_TYPES.values()}},
        409: {"description": "Job not done"},
        **ERRORS,
    },
)
async def job_objects(job: OwnJob, jobs: Jobs) -> FileResponse:
    """The objects table of a done job that asked for one (``measure``): one row per object
    per time point (also in the result zip, beside the store)."""
    table = jobs.table_path(job["id"])
    if table is None and job["model_id"] == ANALYSIS:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "an analysis keeps its tables in its results: GET /jobs/{id}/result (tables/, "
            "summary/)",
        )
    if table is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this job measured no objects (measure)")
    if job["status"] != "done":
        raise HTTPException(status.HTTP_409_CONFLICT, f"job is {job['status']}, not done")
    kind = table.suffix.lstrip(".")
    return FileResponse(table, media_type=TABLE_MEDIA_TYPES[kind], filename=f"{job['id']}.{kind}")
