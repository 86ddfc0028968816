"""Liveness, readiness and metrics: what an orchestrator and Prometheus poll."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from ..errors import error_responses, unavailable

router = APIRouter()


@router.get("/health", responses=error_responses(401, 503))
async def health(request: Request) -> dict:
    """Alive unless startup failed or the engine worker died: a restart is the cure for both."""
    state = request.app.state
    problem = state.startup_error or (state.serving is not None and state.serving.worker.death)
    if problem:
        raise unavailable(problem)
    return {"status": "ok"}


@router.get("/ready", responses=error_responses(401, 503))
async def ready(request: Request) -> dict:
    """Ready once the model is loaded, one warm-up step has run and the worker is alive."""
    serving = request.app.state.serving
    if serving is None or not serving.ready or not serving.worker.alive:
        raise unavailable(request.app.state.startup_error or "the model is loading or the engine is stopped")
    return {"status": "ready"}


@router.get("/metrics", response_class=PlainTextResponse, responses=error_responses(401))
async def metrics(request: Request) -> Response:
    m = request.app.state.metrics
    return Response(m.render(), media_type=m.content_type)
