"""Who runs next: the waiting queue, cancellations, and how many rows fit in one step.

The only engine state touched from other threads lives here, behind one lock: `submit` and
`cancel` may be called from any thread; `admit` runs on the stepping thread between steps.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

from .decoding.records import DecodeRequest


class Scheduler:
    RECOVERY_STEPS = 200  # steps without a failure before the full batch is allowed again

    def __init__(self, max_batch_size: int):
        self.max_batch_size = max_batch_size
        self.batch_cap = max_batch_size  # lowered while a failing batch is narrowed down
        self._steps_since_failure = 0
        self._lock = threading.Lock()
        self._pending: deque[DecodeRequest] = deque()
        self._cancelled: set[str] = set()

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def submit(self, request: DecodeRequest) -> None:
        with self._lock:
            self._pending.append(request)

    def cancel(self, request_id: str) -> None:
        with self._lock:
            self._cancelled.add(request_id)

    def admit(self, running: int) -> tuple[list[DecodeRequest], list[DecodeRequest], set[str]]:
        """(requests that join now, waiting requests cancelled, every cancelled id)."""
        with self._lock:
            cancelled, self._cancelled = self._cancelled, set()
            dropped = [r for r in self._pending if r.request_id in cancelled]
            waiting = [r for r in self._pending if r.request_id not in cancelled]
            room = max(self.batch_cap - running, 0)
            self._pending = deque(waiting[room:])
        return waiting[:room], dropped, cancelled

    def requeue_first(self, requests: Iterable[DecodeRequest]) -> None:
        """Put requests back at the head of the queue, in order."""
        with self._lock:
            self._pending.extendleft(reversed(list(requests)))

    def stepped(self) -> None:
        self._steps_since_failure += 1
        if self._steps_since_failure >= self.RECOVERY_STEPS:
            self.batch_cap = self.max_batch_size

    def shrink(self, rows: int) -> None:
        """At most `rows` in a batch until RECOVERY_STEPS steps have passed without a failure."""
        self.batch_cap, self._steps_since_failure = rows, 0
