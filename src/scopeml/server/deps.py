"""Dependencies of the routes: the caller, the server's state, records the caller may touch.

The server's long-lived objects live on ``request.app.state`` (opened by the app's lifespan);
routes reach them through these functions with FastAPI's ``Depends``, never through a closure.
"""

from __future__ import annotations

import os
import secrets
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from scopeml.errors import InvalidRequestError
from scopeml.server.config import ServerConfig
from scopeml.server.database import Database
from scopeml.server.jobs import JobRunner
from scopeml.server.models import ModelRegistry

bearer = HTTPBearer(auto_error=False, description="An API token from `scopeml admin create-token`")


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> dict[str, Any]:
    """The caller's ``{"user", "admin"}``; 401 without a valid token."""
    user = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        user = request.app.state.db.user_for_token(credentials.credentials)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or unknown API token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


def get_config(request: Request) -> ServerConfig:
    return request.app.state.config


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def get_jobs(request: Request) -> JobRunner:
    return request.app.state.jobs


User = Annotated[dict[str, Any], Depends(current_user)]
Config = Annotated[ServerConfig, Depends(get_config)]
Db = Annotated[Database, Depends(get_db)]
Registry = Annotated[ModelRegistry, Depends(get_registry)]
Jobs = Annotated[JobRunner, Depends(get_jobs)]


def find_model(registry: ModelRegistry, model_id: str, user: dict[str, Any]) -> dict[str, Any]:
    """The record of a model ``user`` may use; 404 when absent or private to another."""
    record = registry.visible(model_id, user)
    if record is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no model {model_id!r}{_model_hint(registry, model_id, user)}",
        )
    return record


def _model_hint(registry: ModelRegistry, model_id: str, user: dict[str, Any]) -> str:
    """What the caller may have meant: a model of theirs named ``model_id`` (models are given by
    id), or an id or built-in name spelt nearly so; ``""`` when none."""
    from scopeml.errors import close_matches
    from scopeml.model.registry import BUILTIN_MODELS

    models = registry.db.list_models(user["user"], admin=bool(user.get("admin")))
    named = [m["id"] for m in models if m.get("name") == model_id]
    if len(named) == 1:
        return f" (models are given by id: {model_id!r} is the name of model {named[0]!r})"
    if named:  # several uploads of one file name: each is a model of its own
        listed = ", ".join(map(repr, named[:5])) + (", …" if len(named) > 5 else "")
        return f" (models are given by id: {model_id!r} is the name of models {listed})"
    ids = [*sorted(BUILTIN_MODELS), *(m["id"] for m in models)]
    near = close_matches(model_id, ids, n=1, cutoff=0.75)
    return f"; did you mean {near[0]!r}?" if near else ""


def visible_model(model_id: str, user: User, registry: Registry) -> dict[str, Any]:
    """The record of the path's model, if the caller may use it (404 otherwise)."""
    return find_model(registry, model_id, user)


def owned_model(
    record: Annotated[dict[str, Any], Depends(visible_model)], user: User
) -> dict[str, Any]:
    """The record of a model the caller owns (or an admin); 403 for a shared one of another."""
    if record.get("builtin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a built-in model cannot be changed")
    if record["owner"] != user["user"] and not user["admin"]:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only the owner may change a model")
    return record


def own_job(job_id: str, user: User, db: Db) -> dict[str, Any]:
    """The caller's job record (an admin sees all); 404 otherwise."""
    job = db.get_job(job_id)
    if job is None or (job["owner"] != user["user"] and not user["admin"]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id!r}")
    return job


VisibleModel = Annotated[dict[str, Any], Depends(visible_model)]
OwnedModel = Annotated[dict[str, Any], Depends(owned_model)]
OwnJob = Annotated[dict[str, Any], Depends(own_job)]


# --- bodies -------------------------------------------------------------------------------------


def check_job_room(db: Database, config: ServerConfig, user: str) -> None:
    """429 when ``user`` has ``max_user_jobs`` jobs queued or running: checked before a submit's
    image checks (a refused loop costs nothing) and again just before the job is added (no
    await between, so submits sent at once cannot pass the cap together)."""
    if db.unfinished_count(user) >= config.max_user_jobs:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"you have {config.max_user_jobs} jobs queued or running, the most one user may "
            "have; wait for some to finish, or cancel some (DELETE /jobs/{id})",
        )


#: Submits (and uploads) of one user whose files may be being checked at once: each check
#: opens the file in a child, on threads every user shares, so a user's flood of slow files
#: stalled every other user's submits for minutes (one more answers 429).
USER_IMAGE_CHECKS = 2


@contextmanager
def image_check(request: Request, user: str) -> Iterator[None]:
    """Hold one of ``user``'s :data:`USER_IMAGE_CHECKS` while their request's files are
    checked, or answer 429 (the event loop's thread counts: no lock needed)."""
    running: Counter[str] = request.app.state.image_checks
    if running[user] >= USER_IMAGE_CHECKS:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"{running[user]} of your requests are having their files checked, the most one "
            "user may have at once; send this again when one has been answered",
        )
    running[user] += 1
    try:
        yield
    finally:
        running[user] -= 1


def too_large(limit: int, what: str = "the limit") -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE, f"request body is larger than {what} of {limit} bytes"
    )


def check_declared_length(request: Request, limit: int, what: str = "the limit") -> None:
    """413 before reading anything when ``Content-Length`` already says the body is too large."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large(limit, what)


async def read_body(request: Request, limit: int) -> bytearray:
    """The request body in one buffer, refused with 413 as soon as it passes ``limit`` bytes.

    With a ``Content-Length`` the buffer is allocated once at that size and filled in place, so
    the body is held once, not as chunks plus their joined copy.
    """
    check_declared_length(request, limit)
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        buffer = bytearray()
        async for chunk in request.stream():
            if len(buffer) + len(chunk) > limit:
                raise too_large(limit)
            buffer += chunk
        return buffer
    buffer = bytearray(int(length))
    view, size = memoryview(buffer), 0
    async for chunk in request.stream():
        if size + len(chunk) > len(buffer):
            raise InvalidRequestError("request body is longer than its Content-Length")
        view[size : size + len(chunk)] = chunk
        size += len(chunk)
    if size != len(buffer):
        raise InvalidRequestError("request body is shorter than its Content-Length")
    return buffer


#: How to send a file the routes take as the raw body (models, images).
RAW_BODY = "send the raw file (curl --data-binary @FILE), not a form (curl -F)"


def disposition_name(request: Request) -> str | None:
    """The file name a ``Content-Disposition`` header gives (without folders), if any; one
    longer than a file name may be keeps its start and its end (its suffix: what it is)."""
    header = request.headers.get("content-disposition")
    if not header:
        return None
    message = Message()
    message["content-disposition"] = header
    name = message.get_filename()
    if not name:
        return None
    name = Path(name.replace("\\", "/")).name
    return (name if len(name) <= 255 else name[:128] + name[-127:]) or None


def refuse_form(request: Request, where: str) -> None:
    """422 for a multipart form (``curl -F``) where the raw file is the body: its envelope
    would otherwise be read as the file and refused for the wrong reason."""
    if request.headers.get("content-type", "").lower().startswith("multipart/"):
        raise InvalidRequestError(f"{where}: the body is a multipart form; {RAW_BODY}")


def refuse_boundary(path: Path, where: str) -> None:
    """422 for a saved body that starts as a multipart body does (``--boundary`` and a line
    break; no image or model file does: they are zip, XML, TIFF, CZI or PNG)."""
    with path.open("rb") as file:
        head = file.read(256)
    line, _, rest = head.partition(b"\r\n")
    if line.startswith(b"--") and len(line) > 2 and bool(rest) and b" " not in line:
        raise InvalidRequestError(f"{where}: the body starts with a MIME boundary; {RAW_BODY}")


async def save_body(request: Request, target: Path, limit: int, what: str = "the limit") -> int:
    """Stream the body to ``target`` (a private temporary file first); 413 past ``limit`` bytes.

    Nothing is held in memory but one chunk, and a refused body leaves no file behind.
    """
    check_declared_length(request, limit, what)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    size = 0
    try:
        with os.fdopen(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "wb") as file:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large(limit, what)
                file.write(chunk)
        if size == 0:
            raise InvalidRequestError("request body is empty")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return size
