"""SSE chunks: OpenAI's `chat.completion.chunk` / `text_completion` objects, plus the step field.

Text chunks carry only confirmed text (from the request's `Generation`). With `stream_steps`
each refinement step adds one chunk of the same object type, with an empty delta and an
`evotoken` field on the choice, so SDKs that do not know the field still parse every chunk.
An error after the response has started is one data frame with the error object; every
stream ends in `data: [DONE]`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Literal

from evotoken_core.decoding import StepRecord, TokenState
from evotoken_core.text import MASK_GLYPH, TokenTexts

from .errors import APIError
from .generation import ClientGone, Generation

log = logging.getLogger("evotoken.server")

MASK_PLACEHOLDER = MASK_GLYPH
_LABELS = {int(s): s.label for s in TokenState}
_HIDDEN = (int(TokenState.MASKED), int(TokenState.SOFT))


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _round(x: float) -> float | None:
    return None if x != x else round(x, 4)  # NaN (not decoded) -> null


class ChunkWriter:
    """Serialises chunks of one response: same id, created and model on every chunk."""

    def __init__(self, kind: Literal["chat", "text"], completion_id: str, created: int, model: str,
                 include_usage: bool):
        self.kind = kind
        self.head = {"id": completion_id,
                     "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
                     "created": created, "model": model}
        if kind == "chat":
            self.head["system_fingerprint"] = None
        self.include_usage = include_usage

    def _frame(self, choices: list[dict], usage: dict | None = None) -> dict:
        body = {**self.head, "choices": choices}
        if self.include_usage:
            body["usage"] = usage
        return {"data": _dumps(body)}

    def _choice(self, index: int, delta: dict | None = None, text: str = "",
                finish_reason: str | None = None) -> dict:
        if self.kind == "chat":
            return {"index": index, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}
        return {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}

    def role(self, index: int) -> dict:
        return self._frame([self._choice(index, {"role": "assistant", "content": ""})])

    def text(self, index: int, delta: str) -> dict:
        return self._frame([self._choice(index, {"content": delta}, text=delta)])

    def finish(self, index: int, reason: str) -> dict:
        return self._frame([self._choice(index, finish_reason=reason)])

    def step(self, index: int, evotoken: dict) -> dict:
        return self._frame([{**self._choice(index), "evotoken": evotoken}])

    def usage(self, usage: dict) -> dict:
        return self._frame([], usage)


class StepRenderer:
    """Turns a step record into the `evotoken` field: draft text and per-position detail."""

    def __init__(self, tokenizer, placeholder: str = MASK_PLACEHOLDER):
        self.texts = TokenTexts(tokenizer)
        self.placeholder = placeholder

    def token_text(self, token_id: int) -> str:
        return self.texts(token_id)

    def draft(self, ids: list[int], states: list[int]) -> str:
        """Runs of tokens decoded together (so multi-byte characters survive), masks as ▒."""
        return self.texts.draft(ids, [state in _HIDDEN for state in states], self.placeholder)

    def render(self, record: StepRecord, max_tokens: int, full: bool) -> dict:
        """Positions past `max_tokens` (the canvas rounded up to a block) are not shown."""
        ids = record.gen_ids[:max_tokens].tolist()
        states = record.states[:max_tokens].tolist()
        lo, hi = (0, len(ids)) if full else (record.block_start, min(record.block_end, len(ids)))
        conf = record.conf[lo:hi].tolist() if record.conf is not None else None
        top_ids = record.top_ids[lo:hi].tolist() if record.top_ids is not None else None
        top_probs = record.top_probs[lo:hi].tolist() if record.top_probs is not None else None
        mask_share = record.mask_share[lo:hi].tolist() if record.mask_share is not None else None
        tokens = []
        for j, pos in enumerate(range(lo, hi)):
            state = states[pos]
            hidden = state in _HIDDEN
            cell = {"pos": pos, "id": ids[pos],
                    "text": self.placeholder if hidden else self.token_text(ids[pos]),
                    "state": _LABELS.get(state, str(state)),
                    "conf": _round(conf[j]) if conf is not None else None}
            if top_ids is not None:
                cell["top"] = [[self.token_text(t), round(p, 4)] for t, p in zip(top_ids[j], top_probs[j])]
            if mask_share is not None and state == TokenState.SOFT:
                cell["mask_share"] = round(mask_share[j], 4)
            tokens.append(cell)
        return {"step": record.step, "block": record.block, "nfe": record.nfe,
                "draft": self.draft(ids, states), "tokens": tokens}


async def sse_events(generation: Generation, writer: ChunkWriter, renderer: StepRenderer | None,
                     steps: bool | str, max_tokens: int, usage: Callable[[], dict],
                     on_end: Callable[[str], None]) -> AsyncIterator[dict]:
    """The data frames of one streamed response; `on_end` gets "ok", "error" or "disconnected"."""
    outcome = "disconnected"
    try:
        if writer.kind == "chat":
            for choice in generation.choices:
                yield writer.role(choice.index)
        async for u in generation.updates():
            index = u.choice.index
            if steps and renderer is not None:
                yield writer.step(index, renderer.render(u.record, max_tokens, full=steps == "full"))
            if u.delta:
                yield writer.text(index, u.delta)
            if u.finished:
                yield writer.finish(index, u.choice.finish_reason)
        if writer.include_usage:
            yield writer.usage(usage())
        outcome = "ok"
    except ClientGone:
        return
    except APIError as error:
        outcome = "error"
        log.warning("stream %s failed after it started: %s", writer.head["id"], error)
        yield {"data": _dumps(error.payload())}
    except Exception:
        outcome = "error"
        log.exception("bug while streaming %s", writer.head["id"])
        yield {"data": _dumps(APIError(500, "Internal server error.", type="server_error",
                                       code="internal_error").payload())}
    finally:
        generation.cancel()
        on_end(outcome)
    yield {"data": "[DONE]"}
