"""The OpenAI endpoints' work between the route and the engine worker.

Order matters and is the contract: check the body (schema, unsupported fields, model name),
build and validate the engine settings, tokenize, let the engine validate every prompt, and
only then queue. So every 400 is answered before any work is queued, and a queued request's
only outcomes are its answer, 429, 503, 504 or a failure the engine reports.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from fastapi import Request, Response
from sse_starlette import EventSourceResponse

from evotoken_core.decoding import DecodeRequest, SettingsError
from evotoken_core.model import LoadedModel
from evotoken_core.text import TextAssembler

from .errors import APIError, bad_request, model_not_found, queue_full, unavailable
from .generation import Choice, ClientGone, Generation
from .metrics import Metrics
from .responses import (AssistantMessage, ChatChoice, ChatCompletion, Completion, CompletionChoice,
                        Usage)
from .schemas import ChatCompletionRequest, CompletionRequest, _GenerationRequest
from .settings import Settings
from .streaming import ChunkWriter, StepRenderer, sse_events
from .worker import EngineWorker, QueueFull, WorkerUnavailable

CLIENT_CLOSED = 499  # nginx's code for "client closed the request", used in logs and metrics only


@dataclass
class Serving:
    loaded: LoadedModel
    worker: EngineWorker
    settings: Settings
    metrics: Metrics
    model_ids: list[str]
    ready: bool = False
    shutting_down: bool = False  # set by the SIGTERM drain (server/shutdown.py)

    def __post_init__(self):
        self.renderer = StepRenderer(self.loaded.tokenizer)

    # --- endpoints -------------------------------------------------------------------------------
    async def chat(self, body: ChatCompletionRequest, request: Request) -> Response:
        self._admissible(body)
        try:
            prompt = self.loaded.tokenizer.apply_chat_template(
                body.conversation(), add_generation_prompt=True, tokenize=True, return_dict=False)
        except APIError:
            raise
        except Exception as error:
            raise bad_request(f"the chat template could not be applied: {error}", param="messages") from None
        return await self._generate(body, [list(prompt)], "chat", "messages", request)

    async def completions(self, body: CompletionRequest, request: Request) -> Response:
        self._admissible(body)
        prompts = []
        for p in body.prompts():
            prompts.append(self.loaded.tokenizer.encode(p) if isinstance(p, str) else list(p))
        return await self._generate(body, prompts, "text", "prompt", request)

    # --- shared -------------------------------------------------------------------------------------
    def _admissible(self, body: _GenerationRequest) -> None:
        if self.shutting_down:
            raise unavailable("the server is shutting down")
        if not self.ready or not self.worker.alive:
            raise unavailable(self.worker.death or "the model is not ready yet")
        body.check_supported()
        if body.model is not None and body.model not in self.model_ids:
            raise model_not_found(body.model)

    def _choices(self, body: _GenerationRequest, prompts: list[list[int]], prompt_param: str,
                 completion_id: str) -> tuple[list[Choice], int]:
        """One row per (prompt, n): choice index p*n + j, seed base + j (same seed, same text)."""
        max_tokens = body.requested_max_tokens(self.settings.max_tokens)
        settings = body.decode_settings(self.settings, max_tokens)
        n = body.n
        if len(prompts) * n > self.worker.capacity:
            raise bad_request(f"{len(prompts)} prompt(s) x n={n} rows exceed the server's capacity "
                              f"of {self.worker.capacity} rows", param="n")
        base = body.seed if body.seed is not None else (secrets.randbelow(2**62) if n > 1 else None)
        choices = []
        for p, prompt_ids in enumerate(prompts):
            for j in range(n):
                row = DecodeRequest(
                    request_id=f"{completion_id}/{p * n + j}", prompt_ids=prompt_ids,
                    settings=settings.with_(seed=None if base is None else base + j),
                    want_steps=bool(body.stream_steps))
                if j == 0:
                    self._validate(row, prompt_param if len(prompts) == 1 else f"{prompt_param}.{p}", body)
                # with ignore_eos the answer runs past end tokens, up to max_tokens
                ends = () if settings.ignore_eos else self.loaded.end_ids
                assembler = TextAssembler(self.loaded.tokenizer, ends, max_tokens, body.stop_strings)
                choices.append(Choice(p * n + j, row, len(prompt_ids), assembler))
        return choices, sum(len(p) for p in prompts)

    def _validate(self, row: DecodeRequest, prompt_param: str, body: _GenerationRequest) -> None:
        try:
            self.worker.engine.validate(row)
        except SettingsError as error:
            param = prompt_param if error.param in ("prompt", "prompt_ids") else error.param
            room = self.loaded.config.max_sequence_length - len(row.prompt_ids)
            if param == "max_tokens" and room < row.settings.block_length:
                # no max_tokens could fit: a block longer than any context is the block's fault,
                # otherwise the prompt leaves no room for one block
                too_long_block = row.settings.block_length >= self.loaded.config.max_sequence_length
                param = "block_length" if too_long_block else prompt_param
            code = "context_length_exceeded" if "context" in str(error) else None
            raise bad_request(str(error), param=body.param_of(param), code=code) from None

    async def _generate(self, body: _GenerationRequest, prompts: list[list[int]],
                        kind: Literal["chat", "text"], prompt_param: str, request: Request) -> Response:
        completion_id = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
        choices, prompt_tokens = self._choices(body, prompts, prompt_param, completion_id)
        request.state.completion_id = completion_id
        generation = Generation(self.worker, choices, prompt_tokens, self.settings.request_timeout,
                                self.metrics, request.is_disconnected,
                                arrived=getattr(request.state, "arrived", time.monotonic()))
        try:
            await generation.start()
        except QueueFull:
            raise queue_full(retry_after=1) from None
        except WorkerUnavailable as error:
            raise unavailable(str(error)) from None
        except ClientGone:
            return self._client_gone(request)
        model = body.model or self.model_ids[0]
        created = int(time.time())
        if body.stream:
            # From here sse-starlette owns `receive` and reports the disconnect itself.
            generation.is_disconnected = None
            writer = ChunkWriter(kind, completion_id, created, model, body.include_usage)
            max_tokens = body.requested_max_tokens(self.settings.max_tokens)
            events = sse_events(generation, writer, self.renderer, body.stream_steps, max_tokens,
                                lambda: self._usage(generation).model_dump(),
                                lambda outcome: self._record(request, generation, outcome))
            return EventSourceResponse(events, ping=self.settings.sse_ping_seconds, sep="\n",
                                       client_close_handler_callable=lambda _: _cancel(generation))
        try:
            async for _ in generation.updates():
                pass
        except ClientGone:
            return self._client_gone(request)
        self._record(request, generation, "ok")
        usage = self._usage(generation)
        ordered = sorted(generation.choices, key=lambda c: c.index)
        if kind == "chat":
            return_body = ChatCompletion(id=completion_id, created=created, model=model, usage=usage, choices=[
                ChatChoice(index=c.index, message=AssistantMessage(content=c.assembler.text),
                           finish_reason=c.finish_reason) for c in ordered])
        else:
            return_body = Completion(id=completion_id, created=created, model=model, usage=usage, choices=[
                CompletionChoice(index=c.index, text=c.assembler.text, finish_reason=c.finish_reason)
                for c in ordered])
        return Response(return_body.model_dump_json(), media_type="application/json")

    @staticmethod
    def _usage(generation: Generation) -> Usage:
        completion = generation.completion_tokens
        return Usage(prompt_tokens=generation.prompt_tokens, completion_tokens=completion,
                     total_tokens=generation.prompt_tokens + completion)

    def _record(self, request: Request, generation: Generation, outcome: str) -> None:
        """Numbers for the access log line, which the request middleware writes at the end."""
        state = request.state
        state.prompt_tokens = generation.prompt_tokens
        state.completion_tokens = generation.completion_tokens
        state.nfe = generation.nfe
        state.outcome = outcome
        if outcome == "ok":
            self.metrics.prompt_tokens.inc(generation.prompt_tokens)

    def _client_gone(self, request: Request) -> Response:
        request.state.outcome = "disconnected"
        return Response(status_code=CLIENT_CLOSED)


async def _cancel(generation: Generation) -> None:
    """sse-starlette calls this the moment the client disconnects, before the next step."""
    generation.cancel()
