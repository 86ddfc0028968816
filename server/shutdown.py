"""Graceful shutdown for `evotoken serve`: drain on SIGTERM, then stop, then exit 0.

Plain uvicorn on SIGTERM closes its listening socket at once (new clients get "connection
refused", not a 503 a load balancer understands), sse-starlette ends every open stream within
half a second (no finish_reason, no `[DONE]`), and uvicorn then re-raises the signal so the
process dies of SIGTERM instead of exiting 0. `DrainingServer` replaces that:

1. the first SIGTERM or SIGINT marks the app as shutting down: the port stays open, new
   generation requests and /ready get 503;
2. requests already admitted keep running for up to `grace` seconds;
3. rows still running then end with a 503 (an error frame and `[DONE]` on a stream);
4. uvicorn shuts down as usual, giving responses `FLUSH_SECONDS` to finish sending, and the
   process exits 0. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import time

import uvicorn
from fastapi import FastAPI

log = logging.getLogger("evotoken.server")

FLUSH_SECONDS = 5.0  # after the drain: time for the last responses to be written out
DRAIN_POLL_SECONDS = 0.05


async def drain(app: FastAPI, grace: float) -> None:
    """Refuse new work, wait up to `grace` s for admitted rows, then end the rest with 503."""
    serving = app.state.serving
    if serving is None:  # still loading: nothing is in flight
        return
    serving.shutting_down = True
    serving.ready = False
    worker = serving.worker
    log.info("shutting down: new requests get 503; %d rows in flight get up to %g s",
             worker.rows_in_flight, grace)
    deadline = time.monotonic() + grace
    while worker.rows_in_flight and time.monotonic() < deadline:
        await asyncio.sleep(DRAIN_POLL_SECONDS)
    if worker.rows_in_flight:
        log.warning("shutdown grace of %g s is over; ending %d rows with 503", grace, worker.rows_in_flight)
    await asyncio.to_thread(worker.stop)


class DrainingServer(uvicorn.Server):
    """uvicorn, with the first stop signal starting `drain` instead of stopping at once."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, grace: float):
        super().__init__(config)
        self.app = app
        self.grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task | bool | None = None

    async def serve(self, sockets=None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig, frame) -> None:
        # Never uvicorn's own handler: it records the signal and re-raises it after shutdown,
        # so the process would die of SIGTERM instead of exiting 0.
        if self._draining is None and self._loop is not None and self.started:
            self._draining = True  # until the task exists; a second signal stops at once
            self._loop.call_soon_threadsafe(self._start_drain)
        else:
            self.force_exit = self.should_exit
            self.should_exit = True

    def _start_drain(self) -> None:
        self._draining = self._loop.create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        try:
            await drain(self.app, self.grace)
        except Exception:  # noqa: BLE001 - shutting down must not depend on the drain working
            log.exception("drain failed; stopping now")
        finally:
            self.should_exit = True
