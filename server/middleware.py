"""Per-request plumbing as plain ASGI middleware: request ids, the access log, request metrics,
and the body size limit.

Plain ASGI (not `BaseHTTPMiddleware`) so streamed responses pass through untouched and the
access line is written when the last byte of a stream has gone, with the stream's real numbers.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import APIError
from .metrics import Metrics

access_log = logging.getLogger("evotoken.server.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:/-]{1,128}$")
GENERATION_ROUTES = ("/v1/chat/completions", "/v1/completions")


class RequestContextMiddleware:
    """Keeps the client's `x-request-id` (or makes one), returns it, counts and logs the request."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = _header(scope, b"x-request-id")
        if request_id is None or not _SAFE_ID.match(request_id):
            request_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        started = time.monotonic()
        state["request_id"] = request_id
        state["arrived"] = started  # queue waits and time to first text count from here
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._finish(scope, state, status, time.monotonic() - started)

    def _finish(self, scope: Scope, state: dict, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        if state.get("outcome") == "disconnected":
            status = 499
        self.metrics.requests.labels(route, str(status)).inc()
        if route in GENERATION_ROUTES:
            self.metrics.request_seconds.labels(route).observe(seconds)
        access_log.info(
            '%s "%s %s" %d %.1fms id=%s prompt_tokens=%s completion_tokens=%s nfe=%s',
            state["request_id"], scope["method"], scope["path"], status, seconds * 1000,
            state.get("completion_id", "-"), state.get("prompt_tokens", "-"),
            state.get("completion_tokens", "-"), state.get("nfe", "-"))


class BodyLimitMiddleware:
    """413 for bodies over the limit, by header or by counting, before the app reads a byte.

    The body is read up front (requests are small JSON) so an oversize chunked upload is
    refused cleanly instead of failing halfway through parsing.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._too_large(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self._too_large(scope, receive, send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = APIError(413, f"The request body is larger than {self.max_bytes} bytes.",
                         code="request_too_large")
        await error.response()(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
