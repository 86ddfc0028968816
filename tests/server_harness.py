"""The in-process server harness the HTTP API tests share: a live app on the tiny checkpoint
(lifespan entered on an anyio portal thread, warm) with an httpx client on its ASGI interface,
and helpers that read SSE frames and OpenAI-shaped errors. conftest.py loads it as a plugin, so
its `app` fixture is there for every test module."""

from __future__ import annotations

import asyncio
import json
from contextlib import ExitStack
from functools import partial

import anyio.from_thread
import httpx
import pytest

from server import Settings, create_app


class Harness:
    """A live app (lifespan entered, warm) and an httpx client on its ASGI interface."""

    def __init__(self, settings: Settings):
        self.app = create_app(settings)
        self._stack = ExitStack()
        self.portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self._stack.enter_context(self.portal.wrap_async_context_manager(
            self.app.router.lifespan_context(self.app)))
        self.portal.call(self.app.state.started.wait)
        assert self.app.state.startup_error is None, self.app.state.startup_error
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60)

    @property
    def worker(self):
        return self.app.state.serving.worker

    def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        return self.portal.call(partial(self.client.request, method, url, **kwargs))

    def post(self, url: str, body: dict, **kwargs) -> httpx.Response:
        return self.request("POST", url, json=body, **kwargs)

    def get(self, url: str, **kwargs) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post_all(self, url: str, bodies: list[dict]) -> list[httpx.Response]:
        """Send every body at once: the engine batches them together."""
        async def all_at_once():
            return await asyncio.gather(*(self.client.post(url, json=b) for b in bodies))
        return self.portal.call(all_at_once)

    def close(self) -> None:
        self.portal.call(self.client.aclose)
        self._stack.close()


def sse_payloads(response: httpx.Response) -> list:
    """The data frames of an SSE body, JSON-decoded, with "[DONE]" kept as a string."""
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            frames.append(data if data == "[DONE]" else json.loads(data))
    return frames


def streamed_texts(frames: list, field: str) -> dict[int, str]:
    texts: dict[int, str] = {}
    for frame in frames[:-1]:
        for choice in frame["choices"]:
            piece = choice["delta"].get("content") if field == "chat" else choice["text"]
            texts[choice["index"]] = texts.get(choice["index"], "") + (piece or "")
    return texts


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.fixture(scope="module")
def app(tiny_checkpoint):
    """The app most tests share: float64, so batched and solo decoding agree token for token."""
    h = Harness(Settings(model=str(tiny_checkpoint), served_model_name="tiny", dtype="float64",
                         max_batch_size=8, max_queue=64, block_length=8, max_tokens=16))
    yield h
    h.close()
