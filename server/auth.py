"""API keys: `Authorization: Bearer KEY`, checked in constant time against every configured key.

An ASGI middleware rather than a route dependency, so an unauthenticated request learns nothing
(not even whether its body would validate) and unknown routes are closed too. Keys are never
logged or echoed back.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import APIError


def key_matches(token: str, keys: list[bytes]) -> bool:
    """Compare against every key without stopping early: timing says nothing about which matched."""
    candidate = token.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(candidate, key)
    return found


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


class APIKeyMiddleware:
    def __init__(self, app: ASGIApp, keys: list[str], open_paths: set[str]):
        self.app = app
        self.keys = [k.encode() for k in keys]
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or not self.keys or scope["method"] == "OPTIONS"
                or scope["path"] in self.open_paths):
            return await self.app(scope, receive, send)
        token = _bearer(scope)
        if token is None:
            error = APIError(401, "You didn't provide an API key. Send it in the Authorization header "
                             "as `Authorization: Bearer YOUR_KEY`.", code="missing_api_key")
        elif not key_matches(token, self.keys):
            error = APIError(401, "Incorrect API key provided.", code="invalid_api_key")
        else:
            return await self.app(scope, receive, send)
        error.headers["WWW-Authenticate"] = "Bearer"
        await error.response()(scope, receive, send)
