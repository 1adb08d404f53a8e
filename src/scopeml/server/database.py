"""The server's SQLite database: API tokens (hashed), the model registry and job records.

One :class:`Database` per process holds one connection behind a lock (WAL mode, so the
``scopeml admin`` command can add tokens while a server runs). Rows come back as plain dicts.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any

from scopeml.errors import InvalidRequestError

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    shared INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    spec TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    model_id TEXT NOT NULL,
    image TEXT NOT NULL,
    options TEXT NOT NULL,
    status TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    step TEXT,
    stops INTEGER NOT NULL DEFAULT 0,
    warnings TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL
);
"""

TOKEN_PREFIX = "sml_"
UNFINISHED = ("queued", "running")
#: A stopped job that ``POST /jobs/{id}/resume`` continues: cancelled, past its time limit,
#: or failed (given up after restarts, out of memory, a model or image gone: another run goes
#: on from its partial output; one whose input is bad fails again, saying why).
RESUMABLE = ("cancelled", "timed_out", "failed")
#: A cancelled job's ``error``: what can be done with it.
CANCELLED_NOTE = (
    "cancelled; its partial output is kept: POST /jobs/{id}/resume continues it, "
    "DELETE /jobs/{id} removes it"
)
#: The most warnings a job's record keeps (the last of them says when more were left out).
MAX_JOB_WARNINGS = 20
MORE_WARNINGS = "more warnings were left out here; the server's log has them all"
#: The ``error`` of a job cancelled while queued, before any run of it started.
CANCELLED_QUEUED_NOTE = (
    "cancelled while queued, before it started; it has no partial output: "
    "POST /jobs/{id}/resume queues it again, DELETE /jobs/{id} removes it"
)


def hash_token(token: str) -> str:
    """SHA-256 of a token: tokens are 256 random bits, so a salt or a slow hash adds nothing.

    Examples
    --------
    >>> len(hash_token("sml_abc"))
    64
    """
    return hashlib.sha256(token.encode()).hexdigest()


def new_id() -> str:
    """A fresh random id for a model or a job (never a user-given name)."""
    return secrets.token_hex(16)


class Database:
    """The registry and job records of one server, in one SQLite file.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     db = Database(Path(tmp) / "s.db")
    ...     token = db.create_token("ada")
    ...     user = db.user_for_token(token)
    ...     db.close()
    >>> user
    {'user': 'ada', 'admin': False}
    """

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        _create_private(self.path)  # token hashes and records: the server's user only
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        except sqlite3.DatabaseError as err:  # a folder, no permission
            raise InvalidRequestError(f"cannot open the database ({err})", path=path) from err
        self._conn.row_factory = sqlite3.Row
        try:
            with self._lock, self._conn:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.executescript(SCHEMA)
                _add_missing_columns(self._conn)
        except sqlite3.DatabaseError as err:  # another kind of file
            self._conn.close()
            raise InvalidRequestError(f"not a usable scopeml database ({err})", path=path) from err

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._conn:
            yield self._conn

    def _one(self, sql: str, args: tuple = ()) -> dict[str, Any] | None:
        with self._tx() as conn:
            row = conn.execute(sql, args).fetchone()
        return None if row is None else dict(row)

    def _all(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        with self._tx() as conn:
            return [dict(row) for row in conn.execute(sql, args).fetchall()]

    # tokens ---------------------------------------------------------------------------------

    def create_token(self, user: str, *, admin: bool = False) -> str:
        """Create an API token for ``user``; only its hash is stored, so show it once."""
        if not user or len(user) > 200 or not user.isprintable():
            raise ValueError(f"user name must be 1-200 printable characters, got {user!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO tokens (hash, user, admin, created) VALUES (?, ?, ?, ?)",
                (hash_token(token), user, int(admin), time.time()),
            )
        return token

    def user_for_token(self, token: str) -> dict[str, Any] | None:
        """The user a token belongs to (``{"user", "admin"}``), ``None`` for an unknown token."""
        row = self._one("SELECT user, admin FROM tokens WHERE hash = ?", (hash_token(token),))
        return None if row is None else {"user": row["user"], "admin": bool(row["admin"])}

    def user(self, user: str) -> dict[str, Any]:
        """``{"user", "admin"}`` of a user by name: an admin while any token of theirs is one
        (a user whose tokens are all revoked: no admin)."""
        row = self._one("SELECT MAX(admin) AS admin FROM tokens WHERE user = ?", (user,))
        return {"user": user, "admin": bool(row and row["admin"])}

    def revoke_tokens(self, user: str) -> int:
        """Delete every token of ``user``; return how many there were."""
        with self._tx() as conn:
            return conn.execute("DELETE FROM tokens WHERE user = ?", (user,)).rowcount

    # models ---------------------------------------------------------------------------------

    def add_model(self, record: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO models (id, owner, name, shared, size, sha256, spec, created)"
                " VALUES (:id, :owner, :name, :shared, :size, :sha256, :spec, :created)",
                {**record, "spec": json.dumps(record["spec"]), "shared": int(record["shared"])},
            )

    def get_model(self, model_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM models WHERE id = ?", (model_id,))
        return None if row is None else _model_row(row)

    def list_models(self, user: str, *, admin: bool = False) -> list[dict[str, Any]]:
        """Models ``user`` may see: their own and shared ones (an admin sees all)."""
        if admin:
            rows = self._all("SELECT * FROM models ORDER BY created")
        else:
            rows = self._all(
                "SELECT * FROM models WHERE owner = ? OR shared = 1 ORDER BY created", (user,)
            )
        return [_model_row(row) for row in rows]

    def set_model_shared(self, model_id: str, shared: bool) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE models SET shared = ? WHERE id = ?", (int(shared), model_id))

    def delete_model(self, model_id: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM models WHERE id = ?", (model_id,))

    # uploaded images ------------------------------------------------------------------------

    def add_upload(self, record: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO uploads (id, owner, path, size, created)"
                " VALUES (:id, :owner, :path, :size, :created)",
                record,
            )

    def get_upload(self, upload_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM uploads WHERE id = ?", (upload_id,))

    def list_uploads(self, user: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM uploads WHERE owner = ? ORDER BY created", (user,))

    def upload_usage(self, user: str) -> int:
        """Bytes of the images ``user`` keeps uploaded (for the quota)."""
        row = self._one(
            "SELECT COALESCE(SUM(size), 0) AS used FROM uploads WHERE owner = ?", (user,)
        )
        return int(row["used"]) if row else 0

    def delete_upload(self, upload_id: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))

    def jobs_on_image(self, image: str) -> list[dict[str, Any]]:
        """Queued or running jobs reading ``image``."""
        rows = self._all(
            "SELECT * FROM jobs WHERE image = ? AND status IN (?, ?)", (image, *UNFINISHED)
        )
        return [_job_row(row) for row in rows]

    # jobs -----------------------------------------------------------------------------------

    def add_job(self, record: dict[str, Any]) -> None:
        now = time.time()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO jobs (id, owner, model_id, image, options, status, created, updated)"
                " VALUES (:id, :owner, :model_id, :image, :options, 'queued', :now, :now)",
                {**record, "options": json.dumps(record["options"]), "now": now},
            )

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else _job_row(row)

    def list_jobs(self, user: str, *, admin: bool = False) -> list[dict[str, Any]]:
        if admin:
            rows = self._all("SELECT * FROM jobs ORDER BY created")
        else:
            rows = self._all("SELECT * FROM jobs WHERE owner = ? ORDER BY created", (user,))
        return [_job_row(row) for row in rows]

    def unfinished_count(self, user: str) -> int:
        """How many of ``user``'s jobs are queued or running."""
        row = self._one(
            "SELECT COUNT(*) AS n FROM jobs WHERE owner = ? AND status IN (?, ?)",
            (user, *UNFINISHED),
        )
        return int(row["n"]) if row else 0

    def unfinished_jobs(self) -> list[dict[str, Any]]:
        """Jobs a previous server process queued or was running when it stopped."""
        rows = self._all("SELECT * FROM jobs WHERE status IN (?, ?) ORDER BY created", UNFINISHED)
        return [_job_row(row) for row in rows]

    def update_job(self, job_id: str, **fields: Any) -> None:
        allowed = {"status", "done", "total", "error", "step"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"can update only {sorted(allowed)}; got {sorted(fields)}")
        assignments = ", ".join(f"{name} = :{name}" for name in fields)
        with self._tx() as conn:
            conn.execute(
                f"UPDATE jobs SET {assignments}, updated = :updated WHERE id = :id",
                {**fields, "updated": time.time(), "id": job_id},
            )

    def add_job_warning(self, job_id: str, line: str) -> None:
        """Add a warning of a job's run to its record's ``warnings`` (see :func:`with_warning`:
        each once, at most :data:`MAX_JOB_WARNINGS`), kept across its attempts."""
        self.replace_job_warnings(job_id, lambda _: False, line)

    def replace_job_warnings(
        self, job_id: str, replaced: Callable[[str], bool], line: str | None
    ) -> None:
        """Take the lines of a job's ``warnings`` that ``replaced`` picks out, and add ``line``
        (where given) as :meth:`add_job_warning` does: a line that a later run says again of
        more (every image an analysis has finished) in place of the earlier one."""
        with self._tx() as conn:
            row = conn.execute("SELECT warnings FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return
            listed = json.loads(row["warnings"] or "[]")
            kept = [said for said in listed if not replaced(said)]
            more = kept if line is None else with_warning(kept, line)
            if more != listed:
                conn.execute(
                    "UPDATE jobs SET warnings = ?, updated = ? WHERE id = ?",
                    (json.dumps(more), time.time(), job_id),
                )

    def start_job_attempt(self, job_id: str) -> int:
        """Mark a job running and count the attempt (``attempts``: every run started); the
        number of its runs that did not end in a clean stop (see :meth:`stopped_cleanly`),
        this one included: the runs a crash or a kill of the server may have ended."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, updated = ?"
                " WHERE id = ?",
                (time.time(), job_id),
            )
            row = conn.execute(
                "SELECT attempts, stops FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        return 0 if row is None else int(row["attempts"]) - int(row["stops"])

    def stopped_cleanly(self, job_id: str) -> None:
        """Record that the current attempt ended in a clean stop (a cancel, or the server
        stopping): it still counts in ``attempts``, but not towards the attempts a job that
        keeps crashing the server is given (``--max-job-attempts``)."""
        with self._tx() as conn:
            conn.execute("UPDATE jobs SET stops = stops + 1 WHERE id = ?", (job_id,))

    def cancel_job(self, job_id: str) -> bool:
        """Mark a queued or running job ``cancelled`` (a finished one keeps its status); whether
        it was unfinished. Its ``error`` says whether it has partial output: none when it was
        queued and no run of it ever started."""
        with self._tx() as conn:
            return bool(
                conn.execute(
                    "UPDATE jobs SET status = 'cancelled', error = CASE WHEN status = 'queued'"
                    " AND attempts = 0 THEN ? ELSE ? END, updated = ?"
                    " WHERE id = ? AND status IN (?, ?)",
                    (CANCELLED_QUEUED_NOTE, CANCELLED_NOTE, time.time(), job_id, *UNFINISHED),
                ).rowcount
            )

    def time_out_job(self, job_id: str, seconds: float) -> bool:
        """Mark a running job ``timed_out``: its run was stopped after ``seconds`` (the
        server's ``--max-job-seconds``) as a cancel stops it, its partial output kept for a
        resume; whether it was running."""
        note = (
            f"timed out: ran past this server's limit of {seconds:g} s per run "
            "(--max-job-seconds) and was stopped; its partial output is kept: "
            "POST /jobs/{id}/resume continues it, DELETE /jobs/{id} removes it"
        )
        with self._tx() as conn:
            return bool(
                conn.execute(
                    "UPDATE jobs SET status = 'timed_out', error = ?, updated = ?"
                    " WHERE id = ? AND status = 'running'",
                    (note, time.time(), job_id),
                ).rowcount
            )

    def requeue_job(self, job_id: str) -> bool:
        """Queue a cancelled, timed-out or failed job again (it resumes from what it had
        written); whether it was one. The runs before count no more towards
        ``--max-job-attempts``: its owner asked for this one."""
        with self._tx() as conn:
            return bool(
                conn.execute(
                    "UPDATE jobs SET status = 'queued', error = NULL, stops = attempts,"
                    " updated = ? WHERE id = ? AND status IN (?, ?, ?)",
                    (time.time(), job_id, *RESUMABLE),
                ).rowcount
            )

    def delete_job(self, job_id: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))


def with_warning(listed: list[str], line: str, limit: int = MAX_JOB_WARNINGS) -> list[str]:
    """``listed`` with ``line`` added, unless it is there already; after ``limit`` lines, one
    more says that the rest were left out (:data:`MORE_WARNINGS`), and nothing is added.

    Examples
    --------
    >>> with_warning(["a"], "a"), with_warning(["a"], "b")
    (['a'], ['a', 'b'])
    >>> with_warning(["a", "b"], "c", limit=2)[2] == MORE_WARNINGS
    True
    """
    if line in listed or MORE_WARNINGS in listed:
        return listed
    if len(listed) >= limit:
        return [*listed, MORE_WARNINGS]
    return [*listed, line]


def _create_private(path: Path) -> None:
    """Create an empty file readable by its owner only (0600), if there is none yet."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    except OSError:  # a folder, no permission: sqlite3 says so below
        pass


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Columns added since a database was made (``attempts``, ``step``, ``stops`` and
    ``warnings`` of jobs)."""
    columns = {row["name"] for row in conn.execute("PRAGMA table_info(jobs)")}
    if "attempts" not in columns:
        conn.execute("ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")
    if "step" not in columns:
        conn.execute("ALTER TABLE jobs ADD COLUMN step TEXT")
    if "stops" not in columns:
        conn.execute("ALTER TABLE jobs ADD COLUMN stops INTEGER NOT NULL DEFAULT 0")
    if "warnings" not in columns:
        conn.execute("ALTER TABLE jobs ADD COLUMN warnings TEXT")


def _model_row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "shared": bool(row["shared"]), "spec": json.loads(row["spec"])}


def _job_row(row: dict[str, Any]) -> dict[str, Any]:
    warned = json.loads(row["warnings"]) if row.get("warnings") else []
    return {**row, "options": json.loads(row["options"]), "warnings": warned}
