"""The scopeml REST server: model registry, batched tile prediction, whole-image jobs.

Start it with ``scopeml serve --data-dir DIR`` (or :func:`run_server`); talk to it with
:class:`scopeml.client.Client`. The schema is at ``/openapi.json`` and ``/docs``.

The application (FastAPI) is imported on first use, so the light modules (``tiles``,
``database``, ``models``) serve the client without the server's dependencies.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Database", "ServerConfig", "create_app", "run_server"]

_HOMES = {
    "Database": "scopeml.server.database",
    "ServerConfig": "scopeml.server.config",
    "create_app": "scopeml.server.app",
    "run_server": "scopeml.server.run",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'scopeml.server' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_HOMES[name]), name)
