"""A command that fails while zarr still has reads in flight on its event loop's thread
(one tile's pixels corrupt, the others' reads pending) ends with its one-line error only:
asyncio's "Task was destroyed but it is pending!" came twelve times after it."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import asyncio, time
from zarr.core.sync import _get_loop

async def pending():
    await asyncio.gather(*(asyncio.sleep(3600) for _ in range(3)))

asyncio.run_coroutine_threadsafe(pending(), _get_loop())
time.sleep(0.2)
from scopeml.cli import _exit
_exit(2, None)
"""


def test_a_failed_command_ends_without_asyncios_reports_of_pending_reads():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert "Task was destroyed" not in done.stderr and "never awaited" not in done.stderr, (
        done.stderr
    )
