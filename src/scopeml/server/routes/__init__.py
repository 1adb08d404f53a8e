"""The REST API's routes, one router per resource (service, models, tiles, images, jobs,
analyses)."""

from __future__ import annotations

from scopeml.server.routes import analyses, images, jobs, models, service, tiles

ROUTERS = (
    service.router,
    models.router,
    tiles.router,
    images.router,
    jobs.router,
    analyses.router,
)

__all__ = ["ROUTERS"]
