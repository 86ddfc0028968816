"""The OpenAI-compatible endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..errors import unavailable
from ..responses import ModelList
from ..schemas import ChatCompletionRequest, CompletionRequest

router = APIRouter(prefix="/v1")


def serving_of(request: Request):
    """The serving object, which exists once the lifespan has started loading the model."""
    serving = request.app.state.serving
    if serving is None:
        raise unavailable(request.app.state.startup_error or "the model is still loading")
    return serving


@router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    return await serving_of(request).chat(body, request)


@router.post("/completions")
async def completions(body: CompletionRequest, request: Request) -> Response:
    return await serving_of(request).completions(body, request)


@router.get("/models")
async def models(request: Request) -> ModelList:
    return ModelList(data=request.app.state.model_cards)
