"""The server's parts without HTTP: micro-batcher, database, tile decoding, admin command."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scopeml.cli.serve import admin
from scopeml.errors import InvalidRequestError
from scopeml.server.batcher import MicroBatcher
from scopeml.server.database import MAX_JOB_WARNINGS, MORE_WARNINGS, Database, hash_token
from scopeml.server.paths import resolve_image_path
from scopeml.server.tiles import decode_tile

from .conftest import run_async


class CountingModel:
    """Doubles its input; records the batch sizes it saw (from any thread)."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.calls: list[tuple[int, ...]] = []
        self.fail_on = fail_on
        self._lock = threading.Lock()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            self.calls.append(batch.shape)
        if self.fail_on is not None and (batch == self.fail_on).any():
            raise ValueError("bad tile")
        return np.concatenate([batch, 2 * batch], axis=1)


def run(coro):
    return run_async(coro)


def test_batcher_merges_waiting_requests_into_few_calls():
    model = CountingModel()

    async def main():
        batcher = MicroBatcher(model.predict, max_batch=4, wait_s=0.05)
        tiles = [np.full((1, 1, 4, 4), i, np.float32) for i in range(10)]
        results = await asyncio.gather(*(batcher.predict(t) for t in tiles))
        await batcher.close()
        return tiles, results

    tiles, results = run(main())
    for tile, result in zip(tiles, results, strict=True):
        assert np.array_equal(result, np.concatenate([tile, 2 * tile], axis=1))
    assert [shape[0] for shape in model.calls] == [4, 4, 2]


def test_batcher_keeps_shapes_apart_and_big_requests_whole():
    model = CountingModel()

    async def main():
        batcher = MicroBatcher(model.predict, max_batch=3, wait_s=0.05, concurrency=1)
        requests = [
            np.zeros((1, 1, 4, 4), np.float32),
            np.ones((1, 1, 8, 8), np.float32),
            np.full((5, 1, 4, 4), 2, np.float32),  # larger than max_batch: runs alone
            np.full((1, 1, 4, 4), 3, np.float32),
        ]
        results = await asyncio.gather(*(batcher.predict(r) for r in requests))
        await batcher.close()
        return requests, results

    requests, results = run(main())
    for request, result in zip(requests, results, strict=True):
        assert result.shape == (request.shape[0], 2, *request.shape[2:])
        assert np.array_equal(result[:, 0], request[:, 0])
    # first round: the 4×4 tile, the 8×8 tile and the 5-tile batch (which fills it); the 4×4
    # tile queued last is the second round
    assert model.calls == [(1, 1, 4, 4), (5, 1, 4, 4), (1, 1, 8, 8), (1, 1, 4, 4)]


def test_batcher_runs_calls_concurrently_up_to_its_limit():
    async def main(concurrency, timeout):
        barrier = threading.Barrier(2, timeout=timeout)  # breaks unless two calls run at once

        def predict(batch):
            barrier.wait()
            return batch

        executor = ThreadPoolExecutor(4)
        batcher = MicroBatcher(
            predict, max_batch=1, wait_s=0.0, concurrency=concurrency, executor=executor
        )
        tiles = [np.zeros((1, 1, 2, 2), np.float32) for _ in range(2)]
        try:
            return await asyncio.gather(
                *(batcher.predict(t) for t in tiles), return_exceptions=True
            )
        finally:
            await batcher.close()
            executor.shutdown()

    assert all(isinstance(r, np.ndarray) for r in run(main(2, timeout=10)))
    # one call at a time: the first waits alone at the barrier and breaks it
    assert any(isinstance(r, threading.BrokenBarrierError) for r in run(main(1, timeout=0.5)))


def test_batcher_error_reaches_only_its_batch():
    model = CountingModel(fail_on=7.0)

    async def main():
        batcher = MicroBatcher(model.predict, max_batch=1, wait_s=0.0)
        good = batcher.predict(np.ones((1, 1, 2, 2), np.float32))
        bad = batcher.predict(np.full((1, 1, 2, 2), 7.0, np.float32))
        results = await asyncio.gather(good, bad, return_exceptions=True)
        await batcher.close()
        return results

    good, bad = run(main())
    assert isinstance(good, np.ndarray)
    assert isinstance(bad, ValueError)


def test_database_tokens_are_stored_hashed(tmp_path: Path):
    db = Database(tmp_path / "s.db")
    token = db.create_token("ada", admin=True)
    assert db.user_for_token(token) == {"user": "ada", "admin": True}
    assert db.user_for_token(token + "x") is None
    raw = (tmp_path / "s.db").read_bytes() + (tmp_path / "s.db-wal").read_bytes()
    assert token.encode() not in raw
    assert hash_token(token).encode() in raw
    assert db.revoke_tokens("ada") == 1
    assert db.user_for_token(token) is None
    with pytest.raises(ValueError):
        db.create_token("")
    db.close()


def test_database_jobs_unfinished_and_update_whitelist(tmp_path: Path):
    db = Database(tmp_path / "s.db")
    for job_id in ("a", "b", "c"):
        db.add_job({"id": job_id, "owner": "u", "model_id": "m", "image": "i", "options": {}})
    db.update_job("a", status="done")
    db.update_job("b", status="running", done=3, total=9)
    assert [job["id"] for job in db.unfinished_jobs()] == ["b", "c"]
    assert db.get_job("b")["done"] == 3
    with pytest.raises(ValueError):
        db.update_job("b", owner="mallory")
    db.close()
    reopened = Database(tmp_path / "s.db")
    assert [job["id"] for job in reopened.unfinished_jobs()] == ["b", "c"]
    reopened.close()


def test_database_job_warnings_are_kept_once_and_capped(tmp_path: Path):
    db = Database(tmp_path / "s.db")
    db.add_job({"id": "a", "owner": "u", "model_id": "m", "image": "i", "options": {}})
    assert db.get_job("a")["warnings"] == []
    for line in ("left out 2 label images", "left out 2 label images", "x: scale 1"):
        db.add_job_warning("a", line)  # a resumed run warns again: kept once
    assert db.get_job("a")["warnings"] == ["left out 2 label images", "x: scale 1"]
    for n in range(MAX_JOB_WARNINGS + 5):
        db.add_job_warning("a", f"warning {n}")
    kept = db.get_job("a")["warnings"]
    assert len(kept) == MAX_JOB_WARNINGS + 1 and kept[-1] == MORE_WARNINGS
    db.add_job_warning("gone", "no such job: nothing recorded")
    db.close()
    with sqlite3.connect(tmp_path / "s.db") as conn:  # a database from before the column
        conn.execute("ALTER TABLE jobs DROP COLUMN warnings")
    conn.close()
    reopened = Database(tmp_path / "s.db")
    assert reopened.get_job("a")["warnings"] == []
    reopened.add_job_warning("a", "again")
    assert reopened.get_job("a")["warnings"] == ["again"]
    reopened.close()


def test_decode_tile_rejects_a_shape_larger_than_the_body():
    header = {"X-Tile-Dtype": "float32", "X-Tile-Shape": "100000,100000,100000"}
    with pytest.raises(InvalidRequestError, match="need"):
        decode_tile(b"\x00" * 16, header)


def test_image_path_with_nul_or_unknown_suffix_is_refused(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InvalidRequestError, match="unknown suffix"):
        resolve_image_path("notes.txt", tmp_path)
    with pytest.raises(InvalidRequestError, match="NUL"):
        resolve_image_path("a\x00.tif", tmp_path)
    for name, problem in (  # OSError "File name too long", UnicodeEncodeError: answered 500
        ("a" * 300 + ".tif", "a part of the path is longer than 255 bytes"),
        ("a" * 300 + "*.tif", "a part of the path is longer than 255 bytes"),
        ("\ud800.tif", "not valid text"),
        ("a/" * 2100 + "b.tif", "longer than 4096 bytes"),
    ):
        with pytest.raises(InvalidRequestError, match=problem):
            resolve_image_path(name, tmp_path)
    told = r"without --allowed-root\): upload the image \(POST /images, client.upload_image\)"
    with pytest.raises(InvalidRequestError, match=told):  # it said "…; upload"
        resolve_image_path("a.tif", None)


def test_every_format_the_readers_take_on_their_own_is_a_job_image(tmp_path: Path):
    """JPEG, BigTIFF and the bioio formats whose plugin reads only the one file (ND2, LIF,
    DV) may be named and uploaded, as the CLI reads them; a plugin reading companion files or
    folders (Bio-Formats' .ims) may not, below an allowed root."""
    from scopeml.server.paths import upload_name

    for name in ("a.jpg", "a.JPEG", "a.btf", "a.nd2", "a.lif", "a.dv", "a.ome.tif"):
        (tmp_path / name).write_bytes(b"x")
        assert resolve_image_path(name, tmp_path) == (tmp_path / name).resolve()
        assert upload_name(f"../{name}") == name.replace("JPEG", "jpeg")
    (tmp_path / "a.ims").write_bytes(b"x")
    with pytest.raises(InvalidRequestError, match="unknown suffix"):
        resolve_image_path("a.ims", tmp_path)


def test_admin_create_token_prints_a_working_token(tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(admin, ["create-token", "dave", "--admin", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    db = Database(tmp_path / "scopeml.db")
    assert db.user_for_token(token) == {"user": "dave", "admin": True}
    db.close()
    result = runner.invoke(admin, ["revoke-tokens", "dave", "--data-dir", str(tmp_path)])
    assert "revoked 1" in result.output


def test_a_token_made_in_a_new_data_folder_says_which_server_takes_it(tmp_path, capsys):
    from scopeml.cli import main

    folder = tmp_path / "typo"
    assert main(["admin", "create-token", "ada", "--data-dir", str(folder)]) == 0
    said = capsys.readouterr()
    assert said.err == (f"note: {folder / 'scopeml.db'} is a new database: only a server "
                        f"started with --data-dir {folder} accepts this token\n")  # fmt: skip
    assert main(["admin", "create-token", "bob", "--data-dir", str(folder)]) == 0
    assert capsys.readouterr().err == ""  # the database is known now


def test_bad_database_or_folders_are_one_line_errors(tmp_path: Path, capsys):
    from scopeml.cli import main

    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("not a database")
    assert main(["admin", "create-token", "ada", "--db", str(not_a_db)]) == 2
    assert main(["admin", "create-token", "ada", "--db", str(tmp_path)]) == 2
    assert main(["serve", "--data-dir", str(not_a_db)]) == 2
    assert main(["serve", "--data-dir", str(tmp_path), "--allowed-root", str(tmp_path / "no")]) == 2
    assert main(["serve", "--data-dir", str(tmp_path), "--allowed-root", str(tmp_path),
                 "--allowed-root", str(tmp_path)]) == 2  # fmt: skip
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[-1].split(" (")[0] for line in lines] == [
        "not a usable scopeml database",
        "cannot open the database",
        "the data folder is a file",
        "the allowed root is not an existing folder",
        "given 2 times; give one folder, one above every folder the jobs may read",
    ]
    assert not_a_db.read_text() == "not a database"


def test_fair_scheduler_caps_each_user_and_serves_users_in_turn():
    from scopeml.server.fair import FairScheduler

    scheduler = FairScheduler(slots=2, per_user=1)
    running: dict[str, int] = {"a": 0, "b": 0, "c": 0}
    most = dict(running)
    order: list[str] = []

    async def call(user: str) -> None:
        async with scheduler.slot(user):
            running[user] += 1
            most[user] = max(most[user], running[user])
            order.append(user)
            await asyncio.sleep(0.01)
            running[user] -= 1

    async def main() -> None:
        await asyncio.gather(*[call("a") for _ in range(4)], call("b"), call("c"))

    run(main())
    assert most == {"a": 1, "b": 1, "c": 1}  # never two of one user at once
    assert order[:3] == ["a", "b", "c"]  # b and c before a's second call
    assert scheduler.served == {"a": 4, "b": 1, "c": 1} and scheduler.busy == 0


def test_fair_scheduler_gives_back_slots_of_cancelled_waiters():
    from scopeml.server.fair import FairScheduler

    scheduler = FairScheduler(slots=1, per_user=1)

    async def main() -> bool:
        release = asyncio.Event()

        async def hold() -> None:
            async with scheduler.slot("a"):
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        waiter = asyncio.create_task(hold())  # waits for the only slot
        await asyncio.sleep(0)
        waiter.cancel()
        release.set()
        await holder
        with pytest.raises(asyncio.CancelledError):
            await waiter
        async with scheduler.slot("b"):  # the slot is free again
            return scheduler.busy == 1

    assert run(main())
    assert scheduler.busy == 0


@pytest.mark.parametrize(
    ("spec_args", "options", "shape", "exact"),
    [
        ({"halo": (16, 16)}, {"tile_size": 96, "batch_size": 2}, (1, 1, 1, 1, 50, 100), True),
        ({"halo": (5, 5), "tile_step": (8, 8)}, {"tile_size": 30}, (1, 1, 1, 1, 61, 203), False),
        (
            {"halo": (16, 16), "tile_shape": (128, 128)},
            {"batch_size": 3},
            (1, 1, 1, 1, 50, 60),
            True,
        ),
        ({"halo": (2, 4, 4), "tile_step": (1, 4, 4)}, {"halo": 6}, (1, 1, 1, 9, 40, 33), True),
    ],
)
def test_job_memory_counts_the_model_input_the_engine_plans(spec_args, options, shape, exact):
    """Never less than the largest model input of the engine's plan (these three were: the
    step's rounding, a fixed model input, 3-D); equal to it where one tile covers the image."""
    from scopeml.io.image import Image
    from scopeml.model.spec import ModelSpec
    from scopeml.server.limits import job_memory
    from scopeml.tiling.engine import build_plan
    from scopeml.tiling.options import SegmentOptions

    dims = len(spec_args["halo"])
    spec = ModelSpec(dims, 1, ("bg", "fg"), **spec_args)
    image = Image(np.broadcast_to(np.zeros((), np.uint8), shape))  # geometry only

    class Geometry:
        def __init__(self) -> None:
            self.spec = spec

    plan = build_plan(image, Geometry(), SegmentOptions(**options))
    largest = max(int(np.prod(list(tile.input_shape.values()))) for tile in plan)
    needed = options.get("batch_size", 1) * largest * (1 + 2 * 2) * 4
    estimate = job_memory(options, spec, shape=shape)
    assert estimate == needed if exact else needed <= estimate <= 1.25 * needed
