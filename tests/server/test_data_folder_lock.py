"""One server per data folder: a second server on the folder of a running one resumed, so ran
again, the jobs the first was running (a finished job then carried the second's error)."""

from __future__ import annotations

import httpx
import pytest

from tests.server.conftest import ServerProcess


def test_a_second_server_on_a_data_folder_in_use_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    first = ServerProcess(data).start()
    try:
        second = ServerProcess(data)
        with pytest.raises(RuntimeError, match="server exited at start") as info:
            second.start()
        log = str(info.value)
        assert "another scopeml server is using this data folder now" in log
        assert "Traceback" not in log and f"process {first.process.pid} on" in log
        assert httpx.get(f"{first.url}/health", timeout=5).status_code == 200
        first.process.kill()  # killed, its lock left behind: the next server takes it over
        first.process.wait()
        third = ServerProcess(data).start()
        third.stop()
        assert "taking it over" in third.log.read_text()
    finally:
        first.stop()
    ServerProcess(data).start().stop()  # stopped cleanly: nothing left to take over
