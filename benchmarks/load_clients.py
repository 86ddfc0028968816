"""One simulated user of the load generator, and the checks that every answer is whole.

A `Client` loops over a random mix of requests; each ends as an `Outcome` in the ledger.
An answer is whole when every choice index is present once with a real finish_reason, a
stream carries one completion id and ends in exactly one `[DONE]` (the SDK's streams: with
the usage chunk, which the server sends last). Anything else is `lost: ...` or
`duplicated: ...` in the outcome's `problem`.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass

import httpx
import openai

PROMPTS = ["The quick brown fox", "What is 12 + 30?", "Sort the list: 5, 3, 9, 1.", "Hello! How are you?",
           "Lily runs 48 km in the first 4 hours", "<reasoning>7 * 6"]
STOPS = [".", "?", " the", "\n", "42"]


@dataclass
class Outcome:
    scenario: str
    result: str                  # completed | cancelled | rejected | errored
    seconds: float
    status: int | None = None
    tokens: int = 0
    completion_id: str | None = None
    problem: str | None = None   # lost: ... | duplicated: ... | other errors


class Problem(Exception):
    pass


def _check_choices(finishes: dict[int, list[str]], expected: int) -> None:
    """Every choice index 0..expected-1 finished exactly once, with a real finish_reason."""
    for index, reasons in finishes.items():
        if len(reasons) > 1:
            raise Problem(f"duplicated: choice {index} finished {len(reasons)} times")
    missing = set(range(expected)) - set(finishes)
    if missing or set(finishes) - set(range(expected)):
        raise Problem(f"lost: choices {sorted(missing)} missing (got {sorted(finishes)})")
    bad = [r for reasons in finishes.values() for r in reasons if r not in ("stop", "length")]
    if bad:
        raise Problem(f"lost: finish_reason {bad}")


class Client:
    """One simulated user: a random mix of requests until the deadline."""

    def __init__(self, sdk: openai.AsyncOpenAI, http: httpx.AsyncClient, model: str, rng: random.Random,
                 disconnect_rate: float):
        self.sdk, self.http, self.model, self.rng = sdk, http, model, rng
        self.disconnect_rate = disconnect_rate
        self.current = "?"  # the scenario running now, for the ledger when it fails

    def _common(self) -> dict:
        r = self.rng
        body = {"model": self.model, "max_tokens": r.choice([8, 16, 24, 32]), "n": r.choice([1, 1, 1, 2, 3])}
        if r.random() < 0.5:
            body |= {"temperature": 0.7, "seed": r.randrange(1 << 30)}
        if r.random() < 0.3:
            body["stop"] = r.sample(STOPS, r.randint(1, 3))
        return body

    async def one(self) -> Outcome:
        r = self.rng
        if r.random() < self.disconnect_rate:
            self.current = "disconnect"
            return await self._raw_stream(disconnect_after=r.randint(1, 6))
        scenario = r.choice([self._chat, self._completion, self._chat_stream, self._raw_stream])
        self.current = scenario.__name__.lstrip("_")
        return await scenario()

    async def _chat(self) -> Outcome:
        body = self._common()
        started = time.monotonic()
        out = await self.sdk.chat.completions.create(
            messages=[{"role": "user", "content": self.rng.choice(PROMPTS)}], **body)
        finishes: dict[int, list[str]] = {}
        for c in out.choices:
            finishes.setdefault(c.index, []).append(c.finish_reason)
        _check_choices(finishes, body["n"])
        return Outcome("chat", "completed", time.monotonic() - started, 200, out.usage.completion_tokens, out.id)

    async def _completion(self) -> Outcome:
        body = self._common()
        prompts = self.rng.sample(PROMPTS, self.rng.choice([1, 1, 2]))
        started = time.monotonic()
        out = await self.sdk.completions.create(prompt=prompts if len(prompts) > 1 else prompts[0], **body)
        finishes: dict[int, list[str]] = {}
        for c in out.choices:
            finishes.setdefault(c.index, []).append(c.finish_reason)
        _check_choices(finishes, body["n"] * len(prompts))
        return Outcome("completion", "completed", time.monotonic() - started, 200, out.usage.completion_tokens,
                       out.id)

    async def _chat_stream(self) -> Outcome:
        """Through the SDK, which stops at [DONE]: the usage chunk, sent last, proves the end."""
        body = self._common()
        started = time.monotonic()
        stream = await self.sdk.chat.completions.create(
            messages=[{"role": "user", "content": self.rng.choice(PROMPTS)}], stream=True,
            stream_options={"include_usage": True}, **body)
        finishes: dict[int, list[str]] = {}
        usage, ids = None, set()
        async for chunk in stream:
            ids.add(chunk.id)
            if usage is not None:
                raise Problem("duplicated: a chunk after the usage chunk")
            usage = chunk.usage
            for c in chunk.choices:
                if c.finish_reason:
                    finishes.setdefault(c.index, []).append(c.finish_reason)
        if usage is None:
            raise Problem("lost: the stream ended without its usage chunk")
        if len(ids) != 1:
            raise Problem(f"duplicated: chunks of {len(ids)} completion ids in one stream")
        _check_choices(finishes, body["n"])
        return Outcome("chat_stream", "completed", time.monotonic() - started, 200, usage.completion_tokens,
                       ids.pop())

    async def _raw_stream(self, disconnect_after: int | None = None) -> Outcome:
        """Completions SSE read frame by frame; with `disconnect_after`, hang up after that many."""
        body = self._common() | {"stream": True, "stream_options": {"include_usage": True},
                                 "stream_steps": self.rng.choice([True, True, "full"]),
                                 "prompt": self.rng.choice(PROMPTS)}
        if disconnect_after is not None:
            body |= {"max_tokens": 48, "block_length": 16}  # long enough to leave in the middle
        scenario = "disconnect" if disconnect_after is not None else "raw_stream"
        started = time.monotonic()
        frames: list = []
        async with self.http.stream("POST", "/completions", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                return _refused(scenario, response, time.monotonic() - started)
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[len("data: "):]
                frames.append(data if data == "[DONE]" else json.loads(data))
                if disconnect_after is not None and len(frames) >= disconnect_after and frames[-1] != "[DONE]":
                    return Outcome(scenario, "cancelled", time.monotonic() - started, 200)
        return _check_raw_stream(scenario, frames, body["n"], time.monotonic() - started)


def _check_raw_stream(scenario: str, frames: list, n: int, seconds: float) -> Outcome:
    if frames.count("[DONE]") != 1 or frames[-1] != "[DONE]":
        raise Problem(f"{'lost' if '[DONE]' not in frames else 'duplicated'}: "
                      f"{frames.count('[DONE]')} [DONE] frames, last {str(frames[-1:])[:80]}")
    chunks = frames[:-1]
    errors = [f["error"] for f in chunks if "error" in f]
    if errors:
        raise Problem(f"lost: an error frame instead of the answer: {errors[0]}")
    finishes: dict[int, list[str]] = {}
    for f in chunks:
        for c in f["choices"]:
            if c["finish_reason"]:
                finishes.setdefault(c["index"], []).append(c["finish_reason"])
    _check_choices(finishes, n)
    ids = {f["id"] for f in chunks}
    if len(ids) != 1:
        raise Problem(f"duplicated: chunks of {len(ids)} completion ids in one stream")
    usage = chunks[-1].get("usage") or {}
    return Outcome(scenario, "completed", seconds, 200, usage.get("completion_tokens", 0), ids.pop())


def _refused(scenario: str, response: httpx.Response, seconds: float) -> Outcome:
    result = "rejected" if response.status_code == 429 else "errored"
    return Outcome(scenario, result, seconds, response.status_code, problem=response.text[:200])


async def guarded(client: Client) -> Outcome:
    started = time.monotonic()
    try:
        return await client.one()
    except Problem as problem:
        return Outcome(client.current, "errored", time.monotonic() - started, 200, problem=str(problem))
    except openai.APIStatusError as error:
        result = "rejected" if error.status_code == 429 else "errored"
        return Outcome(client.current, result, time.monotonic() - started, error.status_code,
                       problem=str(error)[:200])
    except (openai.APIError, httpx.HTTPError, OSError) as error:  # connection gone, timeout: no answer
        return Outcome(client.current, "errored", time.monotonic() - started, None,
                       problem=f"lost: {error!r}"[:200])
