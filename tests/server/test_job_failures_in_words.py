"""A job that runs out of memory says so in one line, in the job's words, however the allocation
failed (h62 finding 1): not ``internal error (RuntimeError)`` for a thread that could not start,
nor ONNX Runtime's multi-line arena message; and a batch that alone needs more than the job
memory limit is refused at submit, naming both."""

from __future__ import annotations

import errno
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.client import Client, ServerResponseError
from scopeml.errors import IncompatibleModelError, InvalidImageError
from scopeml.server._job_child import MB, PassedOn, _failure, out_of_memory

from .conftest import ServerProcess, make_container, own_server

WAIT_S = 120.0
#: ONNX Runtime's words when its arena cannot grow (h62's small.tif, under --job-memory-mb 900)
ARENA = (
    "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Concat node. "
    "Name:'/net/Concat_1' Status Message: /onnxruntime_src/onnxruntime/core/framework/"
    "bfc_arena.cc:360 void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, "
    "onnxruntime::Stream*) Failed to allocate memory for requested buffer of size 6291456\n"
)


def _graph_failed() -> IncompatibleModelError:
    """The runtime's error for ``ARENA``, raised from ONNX Runtime's as the model raises it."""
    try:
        try:
            raise RuntimeError(ARENA)
        except RuntimeError as err:
            raise IncompatibleModelError(
                f"the graph failed on input (1, 512, 512, 1) (N×...×C): {err}", path="/srv/m.czann"
            ) from err
    except IncompatibleModelError as err:
        return err


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("can't start new thread"),  # the model's time-budget watchdog (big.ome.tif)
        _graph_failed(),
        MemoryError(),
        ImportError("libscipy_openblas.so: failed to map segment from shared object"),
        OSError(errno.ENOMEM, "Cannot allocate memory"),
    ],
    ids=["thread", "arena", "memory-error", "import", "enomem"],
)
def test_running_out_of_memory_in_any_shape_is_one_line_in_job_words(error):
    task = {"memory_limit": 900 * MB, "batch_bytes": 600 * MB}
    kind, cls, problem, path = _failure(error, task)
    assert (kind, cls, path) == ("error", "ScopeMLError", None)
    assert problem == (
        "ran out of memory (job memory limit 900 MB): the model needs about 600 MB per batch; "
        "ask the administrator for more --job-memory-mb, or submit with a smaller tile_size"
    )
    small = _failure(error, {"memory_limit": 900 * MB, "batch_bytes": 20 * MB})[2]
    assert "20 MB per batch, the job's libraries and threads the rest" in small
    assert "tile_size" not in small  # smaller tiles would not help
    unknown = _failure(error, {"memory_limit": 900 * MB})[2]  # before the batch was counted
    assert unknown.startswith("ran out of memory (job memory limit 900 MB); ask the admin")


def test_other_failures_keep_their_own_words():
    assert not out_of_memory(ValueError("bad value")) and out_of_memory(ARENA)
    try:  # a corrupt CZI's subblock: libCZI's MemoryError, said in the reader's own words
        try:
            raise MemoryError("std::bad_alloc")
        except MemoryError as err:
            raise InvalidImageError(
                "libCZI ran out of memory decoding a 64×64 region (std::bad_alloc); a subblock "
                "is probably corrupt",
                path="/srv/bad.czi",
            ) from err
    except InvalidImageError as err:
        assert _failure(err, {"memory_limit": 900 * MB})[1:3] == ("InvalidImageError", err.problem)
    wrong = IncompatibleModelError("batch has 3 channels; the model expects 1", path="m")
    assert _failure(wrong, {})[:3] == (
        "error",
        "IncompatibleModelError",
        "batch has 3 channels; the model expects 1",
    )
    gone = FileNotFoundError(errno.ENOENT, "No such file or directory", "/srv/a.tif")
    assert _failure(gone, {}) == (
        "error",
        "ScopeMLError",
        "No such file or directory",
        "/srv/a.tif",
    )
    assert _failure(RuntimeError("a bug"), {}) == ("internal", "internal error (RuntimeError)")


def test_a_process_aborted_by_bad_alloc_is_told_by_its_last_words(capsys):
    """An uncaught C++ ``std::bad_alloc`` (in a runtime's thread) aborts the job's process,
    SIGABRT; its stderr, passed on to the server's log, says why."""
    passed = PassedOn(multiprocessing.get_context("spawn"))
    assert passed.child_end is not None
    last_words = b"terminate called after throwing an instance of 'St9bad_alloc'\n"
    os.write(passed.child_end.fileno(), b"job warning: something\n" + last_words)
    passed.start()  # the child's end closed: what it wrote, then the end
    passed.wait()
    assert passed.no_memory
    assert capsys.readouterr().err == "job warning: something\n" + last_words.decode()
    quiet = PassedOn(multiprocessing.get_context("spawn"))
    os.write(quiet.child_end.fileno(), b"Fatal Python error: Segmentation fault\n")
    quiet.start()
    quiet.wait()
    assert not quiet.no_memory  # a crash: said as before, by its signal


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("memory-words-images")
    tifffile.imwrite(root / "big.tif", np.zeros((2048, 2048), np.uint8))
    return root


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[ServerProcess]:
    """A server whose jobs may map 1000 MB: less than a 1024² tile of the tiny U-Net takes."""
    yield from own_server(
        tmp_path_factory, "memory-words", "--allowed-root", str(root), "--job-memory-mb", "1000"
    )


def test_a_job_over_its_memory_limit_is_refused_at_submit_or_says_it_ran_out(
    small_server, tmp_path
):
    with Client(small_server.url, small_server.tokens["alice"]) as alice:
        model = alice.upload_model(make_container(tmp_path / "unet.czann"))["id"]
        with pytest.raises(ServerResponseError) as err:  # a batch counted at about 1.6 GB
            alice.submit_job(model, image_path="big.tif", tile_size=2048)
        assert err.value.status_code == 422
        assert "a batch of this job needs about 1608 MB of memory, more than the job memory " \
            "limit of 1000 MB (--job-memory-mb)" in str(err.value)  # fmt: skip
        # counted 962 MB; 1024² tiles (441 MB) run out no more since the job's allocators
        # map less (its address space, _lean_allocators)
        job = alice.submit_job(model, image_path="big.tif", tile_size=1536)
        failed = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.2)
    assert failed["status"] == "failed", failed
    # said alike whether a runtime raised (its arena, a thread) or a C++ bad_alloc aborted it
    assert failed["error"] == (
        "big.tif: ran out of memory (job memory limit 1000 MB): the model needs about 962 MB "
        "per batch; ask the administrator for more --job-memory-mb, or submit with a smaller "
        "tile_size"
    )


#: Loading the package after an address-space limit in a window of sizes (here 410–460 MB: the
#: libraries' mapping fits, their buffers do not) hung in SciPy's OpenBLAS's init, retrying
#: for ever; a job's process loads its BLAS first (``_load_blas``), then limits itself.
AFTER_LIMIT = """
import resource, sys
from scopeml.server._job_child import _load_blas
_load_blas()
limit = int(sys.argv[1]) << 20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    import scopeml.api
except BaseException as err:  # short of memory, anything: an ImportError, a SyntaxError …
    print(type(err).__name__, err)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="address-space limits are POSIX")
def test_the_package_loads_or_fails_under_any_small_memory_limit_never_hangs(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "after_limit.py"
    script.write_text(AFTER_LIMIT)
    for megabytes in range(380, 500, 20):  # each within seconds (it hung past 20 s)
        subprocess.run(
            [sys.executable, str(script), str(megabytes)],
            timeout=60,
            capture_output=True,
            check=False,
        )  # fmt: skip (it ends: no timeout)
