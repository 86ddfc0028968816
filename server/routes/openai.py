"""The OpenAI-compatible endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..errors import error_responses, model_not_found, unavailable
from ..responses import ChatCompletion, Completion, ModelCard, ModelList
from ..schemas import ChatCompletionRequest, CompletionRequest

router = APIRouter(prefix="/v1")
GENERATION_ERRORS = error_responses(400, 401, 404, 413, 429, 500, 503, 504)
SSE = {"text/event-stream": {"schema": {"type": "string", "description": "`data:` frames, ending in "
                                                                         "`data: [DONE]`"}}}


def serving_of(request: Request):
    """The serving object, which exists once the lifespan has started loading the model."""
    serving = request.app.state.serving
    if serving is None:
        raise unavailable(request.app.state.startup_error or "the model is still loading")
    return serving


@router.post("/chat/completions", responses={
    200: {"model": ChatCompletion, "content": SSE, "description": "The answer, or its SSE stream"},
    **GENERATION_ERRORS})
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    return await serving_of(request).chat(body, request)


@router.post("/completions", responses={
    200: {"model": Completion, "content": SSE, "description": "The answer, or its SSE stream"},
    **GENERATION_ERRORS})
async def completions(body: CompletionRequest, request: Request) -> Response:
    return await serving_of(request).completions(body, request)


@router.get("/models", responses=error_responses(401))
async def models(request: Request) -> ModelList:
    return ModelList(data=request.app.state.model_cards)


@router.get("/models/{model:path}", responses=error_responses(401, 404))
async def model(model: str, request: Request) -> ModelCard:
    """One entry of the list, as `client.models.retrieve(id)` asks for it. `:path`, because a
    hub id or an adapter's id has a slash in it (the SDK sends it percent-encoded)."""
    for card in request.app.state.model_cards:
        if card.id == model:
            return card
    raise model_not_found(model)
