"""Service routes: liveness (no token) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import PlainTextResponse

from scopeml.server.deps import User
from scopeml.server.schemas import ERRORS, Health

router = APIRouter(tags=["service"])


@router.get("/health")
@router.head("/health", operation_id="health_head")  # uptime probes ask so; an id of its own
async def health() -> Health:
    """Liveness: no token needed."""
    from scopeml import __version__

    return Health(status="ok", version=__version__)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={401: ERRORS[401], 403: {"description": "Not an admin token"}},
)
async def metrics(request: Request, user: User) -> PlainTextResponse:
    """Prometheus metrics (admin tokens only: every user's figures): requests, tiles
    predicted, latency histogram, jobs queued and running."""
    if not user["admin"]:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "metrics are the whole server's: they need an admin token "
            "(scopeml admin create-token --admin)",
        )
    return PlainTextResponse(
        request.app.state.metrics.render(), media_type="text/plain; version=0.0.4"
    )
