"""The OpenAI-compatible endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..responses import ModelList
from ..schemas import ChatCompletionRequest, CompletionRequest

router = APIRouter(prefix="/v1")


@router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    return await request.app.state.serving.chat(body, request)


@router.post("/completions")
async def completions(body: CompletionRequest, request: Request) -> Response:
    return await request.app.state.serving.completions(body, request)


@router.get("/models")
async def models(request: Request) -> ModelList:
    return ModelList(data=request.app.state.model_cards)
