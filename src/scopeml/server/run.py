"""Run the server with uvicorn."""

from __future__ import annotations

import os

from scopeml.server.app import create_app, data_folder_lock
from scopeml.server.config import ServerConfig


def run_server(
    config: ServerConfig, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"
) -> None:
    """Serve until interrupted; on Ctrl-C running jobs stop and resume at the next start.

    Every file the server process creates (database, models, uploads, job outputs) is readable
    by its user only: the process's umask is set to 077.
    """
    import uvicorn

    os.umask(0o077)
    with data_folder_lock(config):  # refused here in one line; the app holds it while serving
        pass
    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level)
