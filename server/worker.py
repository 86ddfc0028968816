"""The engine worker: the one thread that owns the engine, the model and the device.

The HTTP side never touches the model. It admits rows here (capacity is checked under one
lock, so a full queue is a clean 429 rather than a race), then reads its own asyncio queue, to
which this thread hands every step record with `loop.call_soon_threadsafe`. Continuous
batching is the engine's: rows submitted between two steps join at the next one, cancelled or
finished rows leave before it.

Every admitted row ends exactly once for its reader: with the engine's terminal record
(completed, cancelled, error) or, when the step itself or the thread fails, with a
`RowFailure`. A dead worker refuses new rows, so requests get 503 at once instead of hanging.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass

from evotoken_core.decoding import DecodeRequest, StepRecord

from .metrics import Metrics

log = logging.getLogger("evotoken.server.worker")


@dataclass(frozen=True)
class RowFailure:
    """Ends a row whose step raised, or whose worker stopped; `status` is the HTTP answer."""

    request_id: str
    status: int
    message: str

    @property
    def finished(self) -> bool:
        return True


class QueueFull(Exception):
    pass


class WorkerUnavailable(Exception):
    pass


@dataclass(eq=False)
class Sink:
    """Where one HTTP request's records go: its event loop and its own queue."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue

    def put(self, item: StepRecord | RowFailure) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is left to read
            pass


class EngineWorker:
    def __init__(self, engine, max_batch_size: int, max_queue: int, metrics: Metrics | None = None,
                 threads: int | None = None):
        self.engine = engine
        self.threads = threads  # torch's intra-op threads, set on the stepping thread itself
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.metrics = metrics
        self._sinks: dict[str, Sink] = {}  # row id -> reader, for every admitted unfinished row
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.death: str | None = None  # why the thread died, if it did

    # --- capacity ------------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.max_batch_size + self.max_queue

    @property
    def rows_in_flight(self) -> int:
        return len(self._sinks)

    @property
    def alive(self) -> bool:
        # `death` is set before the in-flight rows are failed, so a client that got the 503 of a
        # dying worker never sees it ready: the thread itself may still be unwinding.
        return (self._thread is not None and self._thread.is_alive() and not self._stopping.is_set()
                and self.death is None)

    # --- called from the event loop --------------------------------------------------------------
    def admit(self, rows: list[DecodeRequest], sink: Sink) -> None:
        """Submit all rows of one request, or none of them (QueueFull / WorkerUnavailable)."""
        with self._lock:
            if not self.alive:
                raise WorkerUnavailable(self.death or "the engine worker is not running")
            if len(self._sinks) + len(rows) > self.capacity:
                raise QueueFull()
            for row in rows:
                self._sinks[row.request_id] = sink
            submitted = []
            try:
                for row in rows:
                    self.engine.submit(row)
                    submitted.append(row.request_id)
            except BaseException:
                for row in rows:
                    self._sinks.pop(row.request_id, None)
                for rid in submitted:
                    self.engine.cancel(rid)
                raise
        self._wake.set()

    def cancel(self, request_ids: list[str]) -> None:
        """Ask the engine to drop rows before its next step; their terminal records still come."""
        with self._lock:
            live = [rid for rid in request_ids if rid in self._sinks]
        for rid in live:
            self.engine.cancel(rid)
        if live:
            self._wake.set()

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="evotoken-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop stepping; rows still in flight end with a 503 `RowFailure`."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._fail_all(503, "the server is shutting down")

    async def warm_up(self, row: DecodeRequest, timeout: float = 600.0) -> StepRecord:
        """Run one row through the real path (admit, step, deliver) and wait for its end."""
        sink = Sink(asyncio.get_running_loop(), asyncio.Queue())
        self.admit([row], sink)
        while True:
            item = await asyncio.wait_for(sink.queue.get(), timeout)
            if isinstance(item, RowFailure):
                raise RuntimeError(f"warm-up failed: {item.message}")
            if item.finished:
                if item.finish != "completed":
                    raise RuntimeError(f"warm-up ended {item.finish}: {item.error}")
                return item

    # --- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            if self.threads:
                import torch

                torch.set_num_threads(self.threads)
            while not self._stopping.is_set():
                self._wake.clear()
                if self.engine.active_count == 0 and self.engine.pending_count == 0:
                    self._wake.wait(1.0)
                    continue
                self._step()
        except BaseException as error:  # a bug here must not leave readers hanging
            self.death = f"engine worker died: {error.__class__.__name__}: {error}"
            log.exception("engine worker died; %d rows in flight fail", self.rows_in_flight)
            self._fail_all(503, self.death)

    def _step(self) -> None:
        started = time.perf_counter()
        try:
            records = self.engine.step()
        except Exception as error:
            with self._lock:
                ids = list(self._sinks)
            log.exception("refinement step failed; failing rows %s", ids)
            for rid in ids:
                try:
                    self.engine.cancel(rid)
                except Exception:
                    log.exception("could not cancel row %s", rid)
            self._fail_all(500, f"{error.__class__.__name__}: {error}", only=ids)
            return
        if records and self.metrics is not None:
            self.metrics.step_seconds.observe(time.perf_counter() - started)
        for record in records:
            if record.finished:
                with self._lock:
                    sink = self._sinks.pop(record.request_id, None)
                if record.finish == "error":
                    log.error("row %s failed in the engine: %s", record.request_id, record.error)
                if self.metrics is not None:
                    self.metrics.row_outcomes.labels(record.finish).inc()
            else:
                sink = self._sinks.get(record.request_id)
            if sink is not None:
                sink.put(record)

    def _fail_all(self, status: int, message: str, only: list[str] | None = None) -> None:
        with self._lock:
            ids = list(self._sinks) if only is None else [rid for rid in only if rid in self._sinks]
            sinks = [(rid, self._sinks.pop(rid)) for rid in ids]
        for rid, sink in sinks:
            sink.put(RowFailure(rid, status, message))
