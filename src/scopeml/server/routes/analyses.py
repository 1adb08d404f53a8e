"""Analysis routes: run an image-analysis settings file over server-side or uploaded images.

The settings file is the raw body (YAML, size-limited); it is saved into the job's folder
first, so its errors name their lines (422, one line). The job is an ordinary job record
(model id ``analysis``): follow it with ``GET /jobs/{id}``, fetch ``results/…`` as a zip from
``GET /jobs/{id}/result``, cancel or delete it with ``DELETE /jobs/{id}``.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status

from scopeml.errors import InvalidRequestError, ScopeMLError
from scopeml.io.confine import Confinement
from scopeml.server.config import ServerConfig, private_dir
from scopeml.server.database import new_id
from scopeml.server.deps import Config, Db, Jobs, User, check_job_room, image_check, save_body
from scopeml.server.jobs import ANALYSIS, SETTINGS_NAME
from scopeml.server.limits import analysis_scale, check_analysis_pixels
from scopeml.server.paths import (
    check_relative,
    hide_server_paths,
    public_error,
    resolve_below,
    resolve_image_path,
)
from scopeml.server.schemas import BINARY_BODY, ERRORS, STREAMED, JobInfo, job_info

if TYPE_CHECKING:
    from scopeml.analysis import AnalysisSettings

router = APIRouter(prefix="/analyses", tags=["analyses"])

MAX_IMAGES = 1000


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra=BINARY_BODY,
    max_body_size=STREAMED,
    responses={**ERRORS, 413: {"description": "Settings file too large"}},
)
async def submit_analysis(
    request: Request,
    user: User,
    config: Config,
    db: Db,
    jobs: Jobs,
    image_path: Annotated[list[str] | None, Query(max_length=MAX_IMAGES)] = None,
    upload_id: Annotated[list[str] | None, Query(max_length=MAX_IMAGES)] = None,
    filename: Annotated[str, Query(max_length=255)] = SETTINGS_NAME,
) -> JobInfo:
    """Run the settings file in the body over images below the allowed root (``image_path``,
    repeated) and your uploads (``upload_id``, repeated); poll ``GET /jobs/{id}``.

    An ``image_path`` may name a folder or a glob pattern below the root, expanded as
    ``scopeml analyze`` expands them (:mod:`scopeml.analysis.inputs`, with the settings'
    ``inputs``: subfolders too unless ``recursive: false``, label images left out, each image
    named by its path below the folder); at most 1000 images in all. A folder in which a file
    (or a subfolder) links outside the root answers 422 naming it; the job checks every file
    again where it opens it.

    Models and classifiers the settings name are built-in names or files below the allowed
    root, a relative path taken from the root (as ``image_path``, and as it without ``..``); one
    that is missing, outside the root or of the wrong kind (from its header: a segmentation
    model under ``model:``, an object classifier under ``classifier:``) answers 422 naming its
    line, as does a model that lacks the ``class`` to extract or does not take the ``channels``
    given (the models are opened as the job opens them, in a child process, no tile run); the
    job checks them again where it opens them. So does a first image (the first that opens)
    that lacks a channel the settings read, or the pixel size their rules or classifiers in
    µm need, as ``scopeml analyze`` stops before any image. Errors name files as below the
    root, never where the server keeps them. Images that fail are listed in the job's ``error``
    and in the results' summary; the batch goes on.
    Images that together declare more pixels than ``--max-job-pixels`` (read with the
    settings' ``axes``, × their largest ``scale`` per axis) answer 422, as a segment job's
    image does.
    """
    check_job_room(db, config, user["user"])
    image_path = list(dict.fromkeys(image_path or []))  # each once, as the analysis takes them
    upload_id = list(dict.fromkeys(upload_id or []))
    sources = [_resolve_source(path, config.allowed_root) for path in image_path]
    images = [source for source, _ in sources]
    for upload in upload_id or []:
        record = db.get_upload(upload)
        if record is None or record["owner"] != user["user"]:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no upload {upload!r}")
        images.append(record["path"])
    if not images:
        raise InvalidRequestError("name at least one image (image_path or upload_id)")
    job_id = new_id()
    folder = private_dir(jobs.output_dir(job_id))
    try:
        await save_body(request, folder / SETTINGS_NAME, config.max_settings_bytes)
        with image_check(request, user["user"]):  # each image opened in a child
            settings = await asyncio.to_thread(
                _check_settings,
                folder / SETTINGS_NAME,
                filename,
                config,
                jobs.analysis_roots(images),
            )
            files = await asyncio.to_thread(
                _expand, sources, image_path or [], images[len(sources) :], settings, config
            )
            await asyncio.to_thread(
                check_analysis_pixels,
                files,
                jobs.analysis_roots(images),
                analysis_scale(settings),
                config,
                [settings.axes_of(image) for image in files],  # as the job reads them
                # its models' classes and channels; the first image as the run checks it
                (folder / SETTINGS_NAME, filename),
                settings.scene,
            )
        check_job_room(db, config, user["user"])  # again: others may have come in meanwhile
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    names = [*(image_path or []), *(f"upload {upload}" for upload in upload_id or [])]
    options = {"images": names, "settings": filename}  # what the user named, not server paths
    jobs.save_analysis_images(job_id, images)
    db.add_job(
        {"id": job_id, "owner": user["user"], "model_id": ANALYSIS, "image": images[0],
         "options": options}
    )  # fmt: skip
    jobs.submit(job_id)
    return job_info(db.get_job(job_id), config)


def _resolve_source(user_path: str, allowed_root: Path | None) -> tuple[str, bool]:
    """A request's ``image_path`` as a server path, and whether it is a folder or a pattern to
    expand: an image file as :func:`~scopeml.server.paths.resolve_image_path` takes it, else a
    folder (resolved: below the root) or a glob pattern below the root (no ``..``)."""
    try:
        return str(resolve_image_path(user_path, allowed_root)), False
    except InvalidRequestError:
        if allowed_root is None:
            raise
        check_relative(user_path)  # raises again, as the file's check did (one rule)
        root = allowed_root.resolve()
        candidate, kind = resolve_below(root, user_path)
        if candidate.is_relative_to(root) and kind == "folder":
            return str(candidate), True
        pattern = root / user_path  # taken as a file's path is (absolute: below the root)
        if glob.has_magic(user_path) and kind is None and pattern.is_relative_to(root):
            return str(pattern), True
        raise


def _expand(
    sources: list[tuple[str, bool]],
    names: list[str],
    uploads: list[str],
    settings: AnalysisSettings,
    config: ServerConfig,
) -> list[Any]:
    """The images the job will analyse: ``sources``' folders and patterns expanded as the
    job's :func:`~scopeml.analysis.run_analysis` expands them (the settings' ``inputs``; with
    ``channel_files``, every source's files grouped into fields together, a field as its
    :class:`~scopeml.io.registry.ChannelFiles`), each file below the allowed root (a link out
    of it refused, named by its place below the root), then the ``uploads``."""
    from scopeml.analysis.inputs import find_images
    from scopeml.io.registry import ChannelFiles, input_files

    root = Path(config.allowed_root or "/").resolve()
    confinement = Confinement.of([root])
    inputs = settings.inputs
    grouped = bool(inputs.channel_files)  # files and folders alike, as the job groups them
    if grouped and uploads:  # each upload has a folder of its own: they never make a field
        raise InvalidRequestError(
            "uploaded images with the settings' inputs: channel_files: a field's files are "
            "grouped in their folder, and each upload is alone in its own; name the files' "
            "folder below the allowed root (image_paths), or upload each field stacked in "
            "one file of these channels (scopeml convert) without channel_files"
        )
    expanded = [(s, n) for (s, expand), n in zip(sources, names, strict=True) if expand or grouped]
    images: list[Any] = [s for s, expand in sources if not (expand or grouped)]
    by_source = dict(expanded)
    try:
        found = find_images(
            [s for s, _ in expanded], recursive=inputs.recursive, include=inputs.include,
            exclude=inputs.exclude, skip_labels=inputs.skip_labels, warn=False,
            channel_files=inputs.channel_files,
        ) if expanded else None  # fmt: skip
    except (ScopeMLError, OSError) as err:
        problem = err.problem if isinstance(err, ScopeMLError) else "matches no file"
        where = by_source.get(str(getattr(err, "path", "")), ", ".join(n for _, n in expanded))
        said = hide_server_paths(problem, config)  # a field's files: by their place below root
        raise InvalidRequestError(f"image path {where!r}: {said}") from err
    for image in found.paths if found is not None else ():
        for path in input_files(image):
            if confinement is not None and not confinement.allows(os.path.realpath(path)):
                raise InvalidRequestError(
                    f"image path {_source_of(path, expanded)!r}: "
                    f"{_link_out(Path(path), root, confinement)} links outside the allowed "
                    "root; remove the link, or leave it out (the settings' inputs: exclude)"
                )
        images.append(image if isinstance(image, ChannelFiles) else str(image))
    if len(images) > MAX_IMAGES:
        raise InvalidRequestError(
            f"the analysis's images come to more than {MAX_IMAGES}; name fewer, or give "
            "include or exclude in the settings' inputs"
        )
    return list(dict.fromkeys([*images, *uploads]))


def _source_of(path: str | Path, expanded: list[tuple[str, str]]) -> str:
    """The request's name of the source a found file came from (the first one above it)."""
    for source, name in expanded:
        if Path(path) == Path(source) or Path(source) in Path(path).parents:
            return name
    return expanded[0][1] if len(expanded) == 1 else ", ".join(n for _, n in expanded)


def _link_out(path: Path, root: Path, confinement: Confinement) -> str:
    """The first part of ``path`` below ``root`` that links out of it (a folder's link: the
    names of the files behind it, outside the root, are not told)."""
    parts = path.relative_to(root).parts
    for end in range(1, len(parts) + 1):
        if not confinement.allows(os.path.realpath(root.joinpath(*parts[:end]))):
            return Path(*parts[:end]).as_posix()
    return Path(*parts).as_posix()


def _check_settings(
    path: Path, filename: str, config: ServerConfig, roots: list[Path]
) -> AnalysisSettings:
    """Validate the saved settings file and the model and classifier files it names (below
    ``roots``, relative to the allowed root, no ``..``; their kind read from their headers, not
    opened here: :func:`~scopeml.server.limits.check_analysis_pixels` opens them in its child
    process); its errors name
    ``filename`` and the line, and no server path."""
    from scopeml.analysis import load_settings
    from scopeml.analysis.check import check_settings_files

    try:
        settings = load_settings(path)
        check_settings_files(settings, source=path, allowed_roots=roots, base=config.allowed_root)
    except ScopeMLError as err:
        message = hide_server_paths(public_error(err, filename), config)
        raise InvalidRequestError(message) from err
    return settings
