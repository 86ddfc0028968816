"""One API request in flight: its rows in the engine, read back as per-choice updates.

Both the JSON answer and the SSE stream consume `Generation.updates()`, and each choice's text
comes from one `TextAssembler` fed with the step records, so the concatenated stream equals the
non-streamed answer by construction. The moment a choice's text is settled (a stop string, an
end token, or its last confirmed block) its row is cancelled: the steps left would not change
the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from evotoken_core.decoding import DecodeRequest, StepRecord
from evotoken_core.text import TextAssembler

from .errors import APIError, does_not_fit, engine_failed, queue_timeout, unavailable
from .metrics import Metrics
from .worker import EngineWorker, RowFailure, Sink

DISCONNECT_POLL_SECONDS = 0.25


class ClientGone(Exception):
    """The client went away; its rows were cancelled and nobody reads an answer."""


@dataclass
class Choice:
    index: int
    row: DecodeRequest
    prompt_tokens: int
    assembler: TextAssembler
    confirmed: int = -1
    nfe: int = 0
    done: bool = False

    @property
    def finish_reason(self) -> str | None:
        return self.assembler.finish_reason

    @property
    def completion_tokens(self) -> int:
        return len(self.assembler.completion_ids)


@dataclass
class Update:
    """What one step record changed for one choice."""

    choice: Choice
    record: StepRecord
    delta: str                # newly confirmed text, possibly ""
    finished: bool            # the choice's text is settled with this update


@dataclass
class Generation:
    worker: EngineWorker
    choices: list[Choice]
    prompt_tokens: int                 # every prompt counted once, however many choices it has
    request_timeout: float
    metrics: Metrics | None = None
    is_disconnected: Callable[[], Awaitable[bool]] | None = None
    arrived: float = field(default_factory=time.monotonic)
    first_text_at: float | None = None
    _by_row: dict[str, Choice] = field(default_factory=dict)
    _early: deque = field(default_factory=deque)
    _sink: Sink | None = None
    _last_poll: float = 0.0

    def __post_init__(self):
        self._by_row = {c.row.request_id: c for c in self.choices}

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Admit the rows and wait until the first of them has run a step.

        Queue waits end here, before any response starts: a request that cannot get a batch
        slot within `request_timeout` gets a real 504 status, not an error inside a stream.
        Once one row runs, the request has started; its other rows (n beyond the free slots)
        join as slots free up, and never time out against the request's own rows.
        """
        self._sink = Sink(asyncio.get_running_loop(), asyncio.Queue())
        self.worker.admit([c.row for c in self.choices], self._sink)
        deadline = self.arrived + self.request_timeout
        try:
            while not self._early:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise queue_timeout(self.request_timeout)
                item = await self._next(min(left, DISCONNECT_POLL_SECONDS))
                if item is not None:
                    failure = _failure_of(item)
                    if failure is not None:  # before any response: answer with its real status
                        raise failure
                    self._early.append(item)
        except BaseException:  # timeout, failure, client gone, or the task itself cancelled
            self.cancel()
            raise

    def cancel(self) -> None:
        """Drop every row still running; safe to call more than once."""
        live = [c.row.request_id for c in self.choices if not c.done]
        for c in self.choices:
            c.done = True
        if live:
            self.worker.cancel(live)

    @property
    def finished(self) -> bool:
        return all(c.done for c in self.choices)

    # --- reading -------------------------------------------------------------------------------------
    async def updates(self) -> AsyncIterator[Update]:
        """Per-record updates until every choice is settled; raises `APIError` on failures."""
        try:
            while not self.finished:
                item = self._early.popleft() if self._early else await self._next(DISCONNECT_POLL_SECONDS)
                if item is None:
                    continue
                update = self._apply(item)
                if update is not None:
                    yield update
        finally:
            self.cancel()

    def _apply(self, item: StepRecord | RowFailure) -> Update | None:
        choice = self._by_row.get(item.request_id)
        if choice is None or choice.done:
            return None  # a record of a row already settled (e.g. its cancellation)
        failure = _failure_of(item)
        if failure is not None:
            raise failure
        final = item.finish == "completed"
        choice.nfe = item.nfe
        delta = ""
        if final or item.confirmed != choice.confirmed:
            choice.confirmed = item.confirmed
            delta = choice.assembler.update(item.gen_ids.tolist(), item.confirmed, final=final)
        if delta and self.first_text_at is None:
            self.first_text_at = time.monotonic()
            if self.metrics is not None:
                self.metrics.first_text_seconds.observe(self.first_text_at - self.arrived)
        settled = choice.assembler.done
        if settled:
            choice.done = True
            if not final:
                self.worker.cancel([item.request_id])
            if self.metrics is not None:
                self.metrics.nfe.observe(choice.nfe)
                self.metrics.generated_tokens.inc(choice.completion_tokens)
        return Update(choice, item, delta, settled)

    async def _next(self, timeout: float) -> StepRecord | RowFailure | None:
        """The next record, or None after `timeout`; checks the client at most every poll period."""
        now = time.monotonic()
        if now - self._last_poll >= DISCONNECT_POLL_SECONDS:
            self._last_poll = now
            await self._check_client()
        queue = self._sink.queue
        if not queue.empty():
            return queue.get_nowait()
        # Not `asyncio.wait_for`: before Python 3.12, when a record arrives in the same loop pass
        # as this task's cancellation, it returns the record and drops the cancellation, so a
        # cancelled request kept its rows until it completed. `asyncio.wait` lets it through;
        # a record taken by the getter then is dropped with the request it belonged to.
        getter = asyncio.ensure_future(queue.get())
        try:
            await asyncio.wait((getter,), timeout=timeout)
        finally:
            if not getter.done():
                getter.cancel()  # the queue keeps any record it had not handed over yet
        return getter.result() if getter.done() and not getter.cancelled() else None

    async def _check_client(self) -> None:
        if self.is_disconnected is not None and await self.is_disconnected():
            self.cancel()
            raise ClientGone()

    # --- totals --------------------------------------------------------------------------------------
    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.choices)

    @property
    def nfe(self) -> int:
        return sum(c.nfe for c in self.choices)


def _failure_of(item: StepRecord | RowFailure) -> APIError | None:
    """The error a row's end means for its request, if it did not complete."""
    if isinstance(item, RowFailure):
        return APIError(item.status, item.message, type="server_error",
                        code="engine_error" if item.status == 500 else "service_unavailable")
    if item.finish == "error" and item.error_kind == "out_of_memory":
        return does_not_fit(item.error or "out of memory")
    if item.finish == "error":
        return engine_failed(item.error or "unknown engine error")
    if item.finish == "cancelled":
        return unavailable("the request was cancelled by the server")
    return None
