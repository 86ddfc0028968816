"""The HTTP API in-process: errors in OpenAI's shape, limits, auth, CORS and the worker's
lifecycle, through httpx's ASGI transport against real apps on the tiny checkpoint."""

from __future__ import annotations

import asyncio
import threading

import pytest

from server import Settings
from server.generation import Generation
from server.worker import Sink
from tests.server_harness import Harness, error_of

pytestmark = pytest.mark.timeout(120)


# --- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, param", [
    ({"steps": 3, "block_length": 4}, "steps"),
    ({"steps": 9}, "steps"),
    ({"block_length": 0}, "block_length"),
    ({"k_soft": 100000}, "k_soft"),
    ({"alpha_soft_mask": 1.5}, "alpha_soft_mask"),
    ({"threshold": 0}, "threshold"),
    ({"cache_guard": -1}, "cache_guard"),
    ({"cache_guard": "high"}, "cache_guard"),
    ({"decoding": "greedy"}, "decoding"),
    ({"remasking": "none"}, "remasking"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"temperature": 3}, "temperature"),
    ({"n": 0}, "n"),
    ({"stop": ["x"] * 17}, "stop"),
    ({"prompt": ""}, "prompt"),
    ({"stream_steps": True}, "stream_steps"),
    ({"logit_bias": {"5": 1.0}}, "logit_bias"),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"frequency_penalty": 1}, "frequency_penalty"),
    ({"top_p": 0.9}, "top_p"),
    ({"logprobs": 2}, "logprobs"),
    ({"echo": True}, "echo"),
    ({"best_of": 3}, "best_of"),
    ({"suffix": "!"}, "suffix"),
    ({"unknown_knob": 1}, "unknown_knob"),
])
def test_invalid_or_unsupported_completion_fields_are_400_naming_the_param(app, extra, param):
    err = error_of(app.post("/v1/completions", {"prompt": "Hello", "max_tokens": 8, **extra}), 400)
    assert err["param"] == param and err["type"] == "invalid_request_error" and err["message"]


@pytest.mark.parametrize("extra, param", [
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ({"tool_choice": "auto"}, "tool_choice"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"logprobs": True}, "logprobs"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages.0.content.0"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
    ({"max_completion_tokens": 0}, "max_completion_tokens"),
])
def test_unsupported_chat_fields_are_400_naming_the_param(app, extra, param):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, **extra}
    assert error_of(app.post("/v1/chat/completions", body), 400)["param"] == param


def test_a_prompt_longer_than_the_context_is_400_naming_the_prompt(app):
    err = error_of(app.post("/v1/completions", {"prompt": "The quick brown fox. " * 200, "max_tokens": 8}), 400)
    assert err["param"] == "prompt" and err["code"] == "context_length_exceeded"
    err = error_of(app.post("/v1/completions", {"prompt": "Hi", "max_tokens": 600}), 400)
    assert err["param"] == "max_tokens" and err["code"] == "context_length_exceeded"


def test_max_completion_tokens_and_text_parts_are_honoured(app):
    parts = [{"type": "text", "text": "Hello"}, {"type": "text", "text": "!"}]
    a = app.post("/v1/chat/completions", {"messages": [{"role": "user", "content": parts}],
                                          "max_completion_tokens": 5}).json()
    b = app.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hello!"}],
                                          "max_tokens": 5}).json()
    assert a["choices"] == b["choices"] and a["usage"]["completion_tokens"] <= 5


def test_unknown_model_route_and_method_are_404_404_405(app):
    err = error_of(app.post("/v1/completions", {"model": "gpt-4", "prompt": "x"}), 404)
    assert err["param"] == "model" and err["code"] == "model_not_found"
    assert error_of(app.get("/v1/nothing"), 404)["code"] == "not_found"
    assert error_of(app.get("/v1/completions"), 405)["code"] == "method_not_allowed"


@pytest.mark.parametrize("body", [b"{not json", b'{"prompt": "Hello", "max_tokens": 8, "temperature":', b"{}}"])
def test_malformed_json_is_400_naming_no_param(app, body):
    """Not a character offset: pydantic locates a JSON syntax error at ("body", <offset>)."""
    r = app.request("POST", "/v1/completions", content=body, headers={"content-type": "application/json"})
    err = error_of(r, 400)
    assert err["type"] == "invalid_request_error" and err["param"] is None and "JSON" in err["message"]


def test_probes_and_metrics_move(app):
    assert app.get("/health").json() == {"status": "ok"}
    assert app.get("/ready").json() == {"status": "ready"}

    def value(text, name):
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))

    before = app.get("/metrics").text
    app.post("/v1/completions", {"prompt": "Hello", "max_tokens": 8})
    app.post("/v1/completions", {"prompt": "Hello", "top_p": 0.5})
    after = app.get("/metrics").text
    ok = 'evotoken_requests_total{route="/v1/completions",status="200"}'
    bad = 'evotoken_requests_total{route="/v1/completions",status="400"}'
    assert value(after, ok) == value(before, ok) + 1 and value(after, bad) == value(before, bad) + 1
    for name in ("evotoken_step_seconds_count", "evotoken_request_nfe_count", "evotoken_generated_tokens_total",
                 "evotoken_time_to_first_text_seconds_count", "evotoken_request_seconds_count"):
        assert value(after, name) > value(before, name), name
    assert "evotoken_queue_depth 0.0" in after and "evotoken_active_rows 0.0" in after


def test_request_id_is_kept_or_made(app):
    assert app.get("/health", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    made = app.get("/health").headers["x-request-id"]
    assert len(made) == 32 and made != app.get("/health").headers["x-request-id"]


# --- limits, auth, lifecycle: a second, small app ------------------------------------------------

@pytest.fixture(scope="module")
def strict(tiny_checkpoint, tmp_path_factory):
    key_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    key_file.write_text("# team keys\nsk-file-key\n\n")
    h = Harness(Settings(model=str(tiny_checkpoint), served_model_name="tiny", max_batch_size=1, max_queue=1,
                         request_timeout=0.5, api_key=["sk-one"], api_key_file=key_file, open_probes=False,
                         max_body_bytes=2048, cors_origin=["https://play.example"]))
    yield h
    h.close()


AUTH = {"authorization": "Bearer sk-one"}


def test_api_keys_are_required_and_any_configured_key_works(strict):
    body = {"prompt": "Hi", "max_tokens": 4}
    assert error_of(strict.post("/v1/completions", body), 401)["code"] == "missing_api_key"
    wrong = strict.post("/v1/completions", body, headers={"authorization": "Bearer sk-nope"})
    assert error_of(wrong, 401)["code"] == "invalid_api_key" and "sk-nope" not in wrong.text
    assert strict.post("/v1/completions", body, headers=AUTH).status_code == 200
    assert strict.post("/v1/completions", body, headers={"authorization": "Bearer sk-file-key"}).status_code == 200
    assert error_of(strict.get("/metrics"), 401)  # probes closed by setting
    assert strict.get("/ready", headers=AUTH).status_code == 200


def test_cors_is_open_only_to_the_configured_origin(strict, app):
    pre = {"origin": "https://play.example", "access-control-request-method": "POST"}
    r = strict.request("OPTIONS", "/v1/completions", headers=pre)
    assert r.headers["access-control-allow-origin"] == "https://play.example"
    assert "access-control-allow-origin" not in app.get("/v1/models", headers={"origin": "https://evil.example"}).headers


def test_more_rows_than_the_server_can_hold_is_400(strict):
    r = strict.post("/v1/completions", {"prompt": "Hi", "max_tokens": 4, "n": 3}, headers=AUTH)
    assert error_of(r, 400)["param"] == "n"


def test_oversized_body_is_413(strict):
    r = strict.post("/v1/completions", {"prompt": "x" * 4000}, headers=AUTH)
    assert error_of(r, 413)["code"] == "request_too_large"


def test_full_queue_is_429_and_a_long_wait_is_504(strict):
    """Batch 1 + queue 1: A runs, B waits (and times out: 504), C finds no room (429)."""
    long = {"prompt": "Hi", "max_tokens": 448, "block_length": 448, "steps": 448}

    async def scenario():
        c = strict.client
        a = asyncio.create_task(c.post("/v1/completions", json=long, headers=AUTH))
        while strict.worker.rows_in_flight < 1:
            await asyncio.sleep(0.005)
        b = asyncio.create_task(c.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 4}, headers=AUTH))
        while strict.worker.rows_in_flight < 2:
            await asyncio.sleep(0.005)
        full = await c.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 4}, headers=AUTH)
        gauges = (await c.get("/metrics", headers=AUTH)).text
        timed_out = await b
        while strict.worker.rows_in_flight > 1:  # the engine drops B's row before its next step
            await asyncio.sleep(0.005)
        a_still_running = not a.done()
        a.cancel()  # what a server or an embedding app does to a request it abandons
        while strict.worker.rows_in_flight:
            await asyncio.sleep(0.005)
        return full, timed_out, a_still_running, gauges

    ended_before = rows_ended(strict)
    full, timed_out, a_still_running, gauges = strict.portal.call(scenario)
    ended = {outcome: n - ended_before.get(outcome, 0) for outcome, n in rows_ended(strict).items()}
    assert a_still_running
    assert "evotoken_queue_depth 1.0" in gauges and "evotoken_active_rows 1.0" in gauges
    assert error_of(full, 429)["code"] == "queue_full" and int(full.headers["retry-after"]) >= 1
    assert error_of(timed_out, 504)["code"] == "queue_timeout"
    # By how the rows ended, not by a clock, so a loaded machine cannot fail it: B's row and A's
    # were both cancelled; A's 448 steps did not run to completion after its task was cancelled.
    assert ended == {"cancelled": 2.0, "completed": 0.0}, ended
    assert strict.worker.engine.active_count == 0


def rows_ended(harness: Harness) -> dict[str, float]:
    """`evotoken_rows_total` by outcome."""
    counts = {}
    for line in harness.get("/metrics", headers=AUTH).text.splitlines():
        if line.startswith("evotoken_rows_total{"):
            counts[line.split('outcome="')[1].split('"')[0]] = float(line.split()[-1])
    return counts


def test_a_cancelled_request_never_keeps_reading_a_record_that_came_at_once():
    """The request task's cancellation must win over a record arriving in the same loop pass:
    `asyncio.wait_for` before Python 3.12 returned the record instead, and the abandoned request
    then ran to completion, holding its batch slot."""
    async def cancel_after(passes: int) -> str:
        sink = Sink(asyncio.get_running_loop(), asyncio.Queue())
        generation = Generation(worker=None, choices=[], prompt_tokens=0, request_timeout=60.0, _sink=sink)
        reader = asyncio.create_task(generation._next(60.0))
        for _ in range(3):  # the reader is now waiting on the empty queue
            await asyncio.sleep(0)
        sink.queue.put_nowait("record")
        for _ in range(passes):
            await asyncio.sleep(0)
        if reader.done():
            return "read before the cancel"
        reader.cancel()
        try:
            return f"kept reading: {await reader}"
        except asyncio.CancelledError:
            return "cancelled"

    outcomes = [asyncio.run(cancel_after(passes)) for passes in range(6)]
    assert set(outcomes) == {"cancelled", "read before the cancel"}, outcomes


def test_a_dead_worker_makes_ready_false_and_requests_503(strict):
    class WorkerKilled(BaseException):
        pass

    def kill(request_ids):
        raise WorkerKilled("simulated crash")

    strict.worker.engine.fault_hook = kill
    deliver, unwound = strict.worker._fail_all, threading.Event()

    def deliver_then_linger(*args, **kwargs):  # the dying thread is still alive after the 503 is out
        deliver(*args, **kwargs)
        unwound.wait(2.0)

    strict.worker._fail_all = deliver_then_linger
    err = error_of(strict.post("/v1/completions", {"prompt": "Hi", "max_tokens": 4}, headers=AUTH), 503)
    assert "simulated crash" in err["message"]
    assert error_of(strict.get("/ready", headers=AUTH), 503)
    assert error_of(strict.get("/health", headers=AUTH), 503)
    unwound.set()
    # A 503, not the 504 this fixture's 0.5 s queue timeout would give: the request was refused
    # at once instead of waiting in a queue that nothing drains (no wall-clock bound needed).
    error_of(strict.post("/v1/completions", {"prompt": "Hi", "max_tokens": 4}, headers=AUTH), 503)
