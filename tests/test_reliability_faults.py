"""Faults over real HTTP (uvicorn on loopback): clients that vanish, steps that raise, memory
that runs out, an engine thread that dies, a shutdown whose grace runs out.

Faults are injected with the engine's test-only `fault_hook`, which runs inside every step
with the ids of the rows in the batch (it is also how these tests see which rows stepped
when). The server runs in float64, where a row's text does not depend on its batch-mates, so
"unaffected" is checked exactly: the answer equals the same request run alone.
Already pinned elsewhere and not repeated: a failing step of a lone request, and the queue
timeout (504, row freed) in test_server_errors.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time

import httpx
import pytest
import torch

from server import Settings
from server.shutdown import drain
from tests.live_server import LiveServer

pytestmark = pytest.mark.timeout(120)

# One block, so no row ends early. LONG is a second or two with the slowed-down steps below.
LONG = {"model": "tiny", "max_tokens": 32, "block_length": 32, "steps": 32}
SHORT = {"model": "tiny", "max_tokens": 8, "block_length": 8, "steps": 8}


def _settings(checkpoint, **overrides) -> Settings:
    return Settings(model=str(checkpoint), served_model_name="tiny", dtype="float64",
                    **{"max_batch_size": 8, "block_length": 8, "max_tokens": 16, **overrides})


@pytest.fixture(scope="module")
def live(tiny_checkpoint):
    s = LiveServer(_settings(tiny_checkpoint, max_batch_size=2))  # a third request has to queue
    yield s
    s.close()


@pytest.fixture
def hook(live):
    """Install a fault hook for one test; always removed, the server left idle, and the batch
    size a failure lowered restored (the engine would otherwise hold it down for 200 steps)."""
    engine = live.worker.engine

    def install(fn):
        engine.fault_hook = fn

    yield install
    engine.fault_hook = None
    _wait_idle(live)
    engine.scheduler.batch_cap = engine.scheduler.max_batch_size


def _wait_idle(live, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while (live.worker.rows_in_flight or live.worker.engine.active_count) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert live.worker.rows_in_flight == 0 and live.worker.engine.active_count == 0


def _post(live, body: dict, path: str = "/v1/completions") -> httpx.Response:
    return httpx.post(live.url + path, json=body, timeout=60)


def _text(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [c["text"] for c in response.json()["choices"]]


def _in_threads(live, bodies: list[dict]) -> list[httpx.Response]:
    """Send every body at once (each on its own connection); the engine batches them."""
    out: list = [None] * len(bodies)

    def send(i):
        out[i] = _post(live, bodies[i])
    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return out


def _frames(lines) -> list:
    frames = []
    for line in lines:
        if line.startswith("data: "):
            data = line[len("data: "):]
            frames.append(data if data == "[DONE]" else json.loads(data))
    return frames


# --- client disconnect --------------------------------------------------------------------------

def test_a_client_that_leaves_is_cancelled_within_one_step_and_its_batch_mate_is_unaffected(live, hook):
    mate = {**LONG, "prompt": "The quick"}
    alone = _text(_post(live, mate))
    steps: list[tuple[float, list[str]]] = []

    def observe(ids):
        steps.append((time.monotonic(), list(ids)))
        time.sleep(0.03)  # slow steps down, so the disconnect lands well inside one

    hook(observe)
    result = {}
    mate_thread = threading.Thread(target=lambda: result.setdefault("r", _post(live, mate)))
    mate_thread.start()
    body = {**LONG, "prompt": "Hello", "stream": True, "stream_steps": True}
    with httpx.stream("POST", live.url + "/v1/completions", json=body, timeout=60) as r:
        seen = []
        for line in r.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[len("data: "):]))
                if len(seen) == 3:
                    break
    left_at = time.monotonic()
    row = seen[0]["id"] + "/0"
    mate_thread.join(60)
    _wait_idle(live)
    after = [ids for started, ids in steps if started > left_at]
    assert sum(row in ids for ids in after) <= 1, "the row kept stepping after its client left"
    assert any(len(ids) == 2 for _, ids in steps), "the two requests never shared a batch"
    assert _text(result["r"]) == alone


# --- a step that raises ---------------------------------------------------------------------------

def test_a_step_that_raises_for_one_request_fails_only_that_request(live, hook):
    """The fault follows one row (the first one seen in a shared step): the engine narrows
    the failing batch down to it, so only its request fails and its batch-mates' answers
    equal their solo answers."""
    bodies = [{**SHORT, "prompt": p} for p in ("The quick", "Hello", "Sort the list")]
    alone = [_text(_post(live, b)) for b in bodies]
    victim: list[str] = []

    def fail_one_row(ids):
        time.sleep(0.02)
        if len(ids) == 2 and not victim:
            victim.append(ids[0])
        if victim and victim[0] in ids:
            raise RuntimeError("injected fault in a step")

    hook(fail_one_row)
    responses = _in_threads(live, bodies)
    statuses = [r.status_code for r in responses]
    assert sorted(statuses) == [200, 200, 500], [r.text for r in responses]
    for r, expected in zip(responses, alone):
        if r.status_code == 500:
            err = r.json()["error"]
            assert err["code"] == "engine_error" and "injected fault" in err["message"]
        else:
            assert _text(r) == expected
    assert httpx.get(live.url + "/ready").status_code == 200
    assert _text(_post(live, bodies[0])) == alone[0]


# --- out of memory ---------------------------------------------------------------------------------

def test_out_of_memory_splits_the_batch_and_every_answer_is_unchanged(live, hook):
    bodies = [{**SHORT, "prompt": p, "temperature": 0.8, "seed": 7 + i}
              for i, p in enumerate(("The quick", "Hello", "Sort the list"))]
    alone = [_text(_post(live, b)) for b in bodies]
    ooms = []

    def oom_when_batched(ids):
        if len(ids) > 1:
            ooms.append(len(ids))
            raise torch.OutOfMemoryError("injected: batch too big")

    hook(oom_when_batched)
    together = _in_threads(live, bodies)
    assert [_text(r) for r in together] == alone
    assert ooms, "the rows never shared a batch, so nothing was split"
    # operators see the lowered cap on /metrics until it recovers
    scrape = httpx.get(live.url + "/metrics").text
    assert re.search(r"^evotoken_batch_cap 1\.0$", scrape, re.M), scrape


def test_a_row_that_does_not_fit_alone_gets_a_clean_error_and_its_mates_are_unaffected(live, hook):
    """The poisoned row fails alone; its batch-mates' answers are unchanged."""
    engine = live.worker.engine
    poison = engine.loaded.tokenizer.encode("Sort the list")
    bodies = [{**SHORT, "prompt": p} for p in ("The quick", "Sort the list", "Hello")]
    alone = [_text(_post(live, b)) for b in (bodies[0], bodies[2])]

    def oom_with_poison(ids):
        if any(row.request.prompt_ids == poison for row in engine.batch.rows):
            raise torch.OutOfMemoryError("injected: this row never fits")

    hook(oom_with_poison)
    ok_a, bad, ok_c = _in_threads(live, bodies)
    err = bad.json()["error"]
    # retrying it cannot help, so it is the client's 400 (a 5xx would invite load-balancer retries)
    assert bad.status_code == 400 and err["type"] == "invalid_request_error" and err["code"] == "request_too_large"
    assert err["param"] == "max_tokens" and "out of memory" in err["message"]
    assert set(err) == {"message", "type", "param", "code"}
    assert [_text(ok_a), _text(ok_c)] == alone


# --- the engine thread dies ---------------------------------------------------------------------

class EngineThreadKilled(BaseException):
    """Not an Exception: the engine does not catch it, so the worker thread dies."""


def test_a_dead_engine_ends_open_streams_and_answers_503_at_once(tiny_checkpoint):
    s = LiveServer(_settings(tiny_checkpoint, request_timeout=1.0))
    try:
        calls = []

        def die_on_fifth_step(ids):
            calls.append(ids)
            if len(calls) == 5:
                raise EngineThreadKilled("simulated crash")

        s.worker.engine.fault_hook = die_on_fifth_step
        body = {**LONG, "prompt": "Hello", "stream": True, "stream_steps": True}
        with httpx.stream("POST", s.url + "/v1/completions", json=body, timeout=30) as r:
            frames = _frames(r.iter_lines())
        assert frames[-1] == "[DONE]" and frames[-2]["error"]["code"] == "service_unavailable"
        assert "simulated crash" in frames[-2]["error"]["message"]
        assert sum("evotoken" in f["choices"][0] for f in frames[:-2] if f.get("choices")) == 4
        # 503 at once, not the 504 that waiting out the 1 s queue timeout would give
        refused = _post(s, {"model": "tiny", "prompt": "Hi", "max_tokens": 4})
        refused_stream = httpx.post(s.url + "/v1/completions", timeout=10,
                                    json={"model": "tiny", "prompt": "Hi", "max_tokens": 4, "stream": True})
        assert refused.status_code == 503 and refused_stream.status_code == 503
        assert httpx.get(s.url + "/ready").status_code == 503
        assert httpx.get(s.url + "/health").status_code == 503  # a restart is the cure
        assert httpx.get(s.url + "/metrics").status_code == 200
        assert s.worker.rows_in_flight == 0
    finally:
        s.close()


# --- shutdown whose grace runs out ----------------------------------------------------------------

def test_rows_still_running_when_the_grace_ends_get_503_not_a_cut_connection(tiny_checkpoint):
    """The SIGTERM path itself runs against a subprocess in test_reliability_shutdown.py."""
    s = LiveServer(_settings(tiny_checkpoint))
    try:
        s.worker.engine.fault_hook = lambda ids: time.sleep(0.03)
        out: dict = {}

        def plain():
            out["plain"] = _post(s, {**LONG, "prompt": "The quick"})

        def streamed():
            with httpx.stream("POST", s.url + "/v1/completions", timeout=30,
                              json={**LONG, "prompt": "Hello", "stream": True, "stream_steps": True}) as r:
                out["status"], out["frames"] = r.status_code, _frames(r.iter_lines())
        threads = [threading.Thread(target=plain), threading.Thread(target=streamed)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while s.worker.engine.active_count < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        asyncio.run(drain(s.app, grace=0.3))
        drained_in = time.monotonic() - started
        for t in threads:
            t.join(30)
        assert 0.3 <= drained_in < 5
        assert out["plain"].status_code == 503 and "shutting down" in out["plain"].json()["error"]["message"]
        frames = out["frames"]
        assert out["status"] == 200 and frames[-1] == "[DONE]"
        assert frames[-2]["error"]["code"] == "service_unavailable"
        assert _post(s, {"model": "tiny", "prompt": "Hi", "max_tokens": 4}).status_code == 503
        assert httpx.get(s.url + "/ready").status_code == 503
    finally:
        s.close()
