"""The HTTP API in-process: httpx's ASGI transport against a real app on the tiny checkpoint.

The app's lifespan runs on an event loop in a background thread (an anyio portal), so tests
are plain functions. The app runs in float64 so that batched and solo decoding agree token for
token; answers are checked against the core engine run directly, not against the server.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from contextlib import ExitStack
from functools import partial

import anyio.from_thread
import httpx
import pytest

from evotoken_core.decoding import DecodeRequest
from evotoken_core.engine import Engine
from evotoken_core.model import load_model
from evotoken_core.text import TextAssembler
from server import Settings, create_app

pytestmark = pytest.mark.timeout(120)


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
    h = Harness(Settings(model=str(tiny_checkpoint), served_model_name="tiny", dtype="float64",
                         max_batch_size=8, max_queue=64, block_length=8, max_tokens=16))
    yield h
    h.close()


@pytest.fixture(scope="module")
def core(tiny_checkpoint):
    """The same model driven by the engine directly: the reference the server must match."""
    loaded = load_model(tiny_checkpoint, dtype="float64", device="cpu")
    engine = Engine(loaded, max_batch_size=1)

    def decode(prompt_ids, settings, max_tokens, stop=()):
        assembler = TextAssembler(loaded.tokenizer, loaded.end_ids, max_tokens, stop)
        for record in engine.stream([DecodeRequest("ref", list(prompt_ids), settings)]):
            if record.finish == "completed" or not assembler.done:
                assembler.update(record.gen_ids.tolist(), record.confirmed, final=record.finish == "completed")
        return assembler

    decode.loaded = loaded
    return decode


def chat_ids(core, text: str) -> list[int]:
    return list(core.loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True, return_dict=False))


# --- answers ---------------------------------------------------------------------------------------

def test_models_lists_the_served_model(app):
    body = app.get("/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["tiny"]
    assert body["data"][0]["object"] == "model" and isinstance(body["data"][0]["created"], int)


def test_chat_answer_matches_the_core_decode_and_counts_usage(app, core):
    from evotoken_core.decoding import DecodeSettings

    r = app.post("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "Hello!"}],
                                          "max_tokens": 12, "steps": 8})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert r.headers["x-request-id"]
    ids = chat_ids(core, "Hello!")
    ref = core(ids, DecodeSettings(gen_length=16, block_length=8, steps=8), 12)
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": ref.text, "refusal": None}
    assert choice["finish_reason"] == ref.finish_reason
    assert body["usage"] == {"prompt_tokens": len(ids), "completion_tokens": len(ref.completion_ids),
                             "total_tokens": len(ids) + len(ref.completion_ids)}


def test_completion_prompt_forms_and_choice_indices(app, core):
    """Two prompts x n=2: indices p*n+j, and each prompt's choice j equals that prompt alone."""
    tok = core.loaded.tokenizer
    common = {"model": "tiny", "max_tokens": 8, "temperature": 0.8, "seed": 11}
    r = app.post("/v1/completions", {**common, "prompt": ["The quick", "Hello"], "n": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion"
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    texts = [c["text"] for c in body["choices"]]
    solo = app.post("/v1/completions", {**common, "prompt": "Hello", "n": 2}).json()
    assert [c["text"] for c in solo["choices"]] == texts[2:]
    as_ids = app.post("/v1/completions", {**common, "prompt": tok.encode("The quick"), "n": 2}).json()
    assert [c["text"] for c in as_ids["choices"]] == texts[:2]
    as_id_lists = app.post("/v1/completions", {**common, "prompt": [tok.encode("The quick"), tok.encode("Hello")],
                                                "n": 2}).json()
    assert [c["text"] for c in as_id_lists["choices"]] == texts
    mixed = app.post("/v1/completions", {**common, "prompt": ["The quick", tok.encode("Hello")]})
    assert error_of(mixed, 400)["param"] == "prompt"
    assert texts[0] != texts[1]  # rows get different seeds
    prompt_tokens = len(tok.encode("The quick")) + len(tok.encode("Hello"))
    assert body["usage"]["prompt_tokens"] == prompt_tokens


def test_seed_reproduces_and_other_seeds_differ(app):
    def ask(seed):
        return app.post("/v1/completions", {"prompt": "What is", "max_tokens": 16, "temperature": 1.0,
                                            "seed": seed}).json()["choices"][0]["text"]
    first = ask(5)
    assert ask(5) == first
    assert any(ask(s) != first for s in (6, 7))


def test_stop_string_cuts_the_text(app):
    base = {"prompt": "Lily runs", "max_tokens": 24, "block_length": 8}
    full = app.post("/v1/completions", base).json()["choices"][0]["text"]
    assert len(full) > 6
    stop = full[3:5]
    cut = app.post("/v1/completions", {**base, "stop": [stop, "never-there"]}).json()["choices"][0]
    assert cut["text"] == full[: full.find(stop)]
    assert cut["finish_reason"] == "stop"


def test_extra_body_settings_change_the_decode(app, core):
    from evotoken_core.decoding import DecodeSettings

    extras = {"steps": 16, "block_length": 4, "k_soft": 2, "alpha_soft_mask": 0.5, "decoding": "hard_mask",
              "remasking": "low_confidence", "threshold": 0.9}
    r = app.post("/v1/completions", {"prompt": "Sort the list", "max_tokens": 16, **extras})
    assert r.status_code == 200, r.text
    settings = DecodeSettings(gen_length=16, **extras)
    ref = core(core.loaded.tokenizer.encode("Sort the list"), settings, 16)
    assert r.json()["choices"][0]["text"] == ref.text


# --- streaming -------------------------------------------------------------------------------------

@pytest.mark.parametrize("route", ["chat", "text"])
def test_stream_concatenation_equals_the_non_streamed_answer(app, route):
    if route == "chat":
        url, body = "/v1/chat/completions", {"messages": [{"role": "user", "content": "What is 12 + 30?"}]}
    else:
        url, body = "/v1/completions", {"prompt": "What is 12 + 30?"}
    body |= {"max_tokens": 20, "n": 2, "temperature": 0.7, "seed": 3, "stop": ["42"]}
    whole = app.post(url, body).json()
    frames = sse_payloads(app.post(url, {**body, "stream": True, "stream_options": {"include_usage": True}}))
    assert frames[-1] == "[DONE]"
    object_name = "chat.completion.chunk" if route == "chat" else "text_completion"
    assert all(f["object"] == object_name and f["id"] == frames[0]["id"] for f in frames[:-1])
    texts = streamed_texts(frames, route)
    assert texts == {c["index"]: (c["message"]["content"] if route == "chat" else c["text"])
                     for c in whole["choices"]}
    finishes = {c["index"]: c["finish_reason"] for f in frames[:-1] for c in f["choices"] if c["finish_reason"]}
    assert finishes == {c["index"]: c["finish_reason"] for c in whole["choices"]}
    assert frames[-2]["choices"] == [] and frames[-2]["usage"] == whole["usage"]
    assert all(f["usage"] is None for f in frames[:-2])
    if route == "chat":
        first = {c["index"]: c["delta"] for f in frames[:2] for c in f["choices"]}
        assert first == {0: {"role": "assistant", "content": ""}, 1: {"role": "assistant", "content": ""}}


def test_stream_steps_carry_the_refinement_trajectory(app):
    body = {"prompt": "The quick", "max_tokens": 12, "block_length": 8, "steps": 8, "stream": True,
            "stream_steps": True}
    frames = sse_payloads(app.post("/v1/completions", body))
    steps = [f["choices"][0]["evotoken"] for f in frames[:-1] if "evotoken" in f["choices"][0]]
    assert [s["step"] for s in steps] == list(range(len(steps))) and len(steps) >= 2
    assert [s["nfe"] for s in steps] == list(range(1, len(steps) + 1))
    first, last = steps[0], steps[-1]
    assert "\u2592" in first["draft"] and "\u2592" not in last["draft"]
    assert [t["pos"] for t in first["tokens"]] == list(range(8))       # the current block only
    assert {t["state"] for t in first["tokens"]} <= {"masked", "soft", "decoded"}
    for token in first["tokens"]:
        assert set(token) >= {"pos", "id", "text", "state", "conf", "top"}
        assert len(token["top"]) == 3 and all(isinstance(t, str) and 0 <= p <= 1 for t, p in token["top"])
        assert (token["conf"] is None) == (token["state"] in ("masked", "soft"))
    for f in frames[:-1]:  # step chunks are ordinary chunks with an empty text
        if "evotoken" in f["choices"][0]:
            assert f["choices"][0]["text"] == "" and f["choices"][0]["finish_reason"] is None
    full = sse_payloads(app.post("/v1/completions", {**body, "stream_steps": "full"}))
    tokens = [f["choices"][0]["evotoken"]["tokens"] for f in full[:-1] if "evotoken" in f["choices"][0]]
    assert all([t["pos"] for t in ts] == list(range(12)) for ts in tokens)
    assert tokens[-1][0]["state"] == "final"


# --- batching --------------------------------------------------------------------------------------

def test_sixteen_concurrent_requests_each_equal_their_solo_answer(app):
    prompts = ["The quick", "Hello!", "What is 12", "Sort the list", "Lily runs 48", "I am fine", "<answer>",
               "How are you"]
    bodies = [{"prompt": p, "max_tokens": 8 + 4 * (i % 3), "block_length": 4 if i % 2 else 8,
               "decoding": "hard_mask" if i % 4 == 3 else "evotoken", "temperature": 0.0 if i < 8 else 0.9,
               "seed": i} for i, p in enumerate(prompts * 2)]
    solo = [app.post("/v1/completions", b).json()["choices"][0]["text"] for b in bodies]
    together = app.post_all("/v1/completions", bodies)
    assert [r.json()["choices"][0]["text"] for r in together] == solo
    assert app.worker.rows_in_flight == 0 and app.worker.engine.active_count == 0


def test_a_failing_step_fails_only_its_batch(app):
    engine = app.worker.engine
    calls = []

    def fail_once(request_ids):
        calls.append(request_ids)
        if len(calls) == 1:
            raise RuntimeError("injected fault")

    engine.fault_hook = fail_once
    try:
        err = error_of(app.post("/v1/completions", {"prompt": "Hello", "max_tokens": 8}), 500)
        assert err["code"] == "engine_error" and "injected fault" in err["message"]
        assert app.post("/v1/completions", {"prompt": "Hello", "max_tokens": 8}).status_code == 200
    finally:
        engine.fault_hook = None
    assert app.get("/ready").status_code == 200


def test_a_stream_that_fails_after_it_started_ends_with_an_error_frame_and_done(app):
    engine, calls = app.worker.engine, []

    def fail_second_step(request_ids):
        calls.append(request_ids)
        if len(calls) == 2:
            raise RuntimeError("injected fault")

    body = {"prompt": "Hello", "max_tokens": 8, "steps": 8, "stream": True, "stream_steps": True}
    engine.fault_hook = fail_second_step
    try:
        frames = sse_payloads(app.post("/v1/completions", body))
        engine.fault_hook = lambda ids: (_ for _ in ()).throw(RuntimeError("first step fault"))
        before_start = app.post("/v1/completions", body)
    finally:
        engine.fault_hook = None
    assert "evotoken" in frames[0]["choices"][0]
    assert frames[-1] == "[DONE]" and frames[-2]["error"]["code"] == "engine_error"
    assert set(frames[-2]["error"]) == {"message", "type", "param", "code"}
    assert error_of(before_start, 500)["code"] == "engine_error"  # not started yet: a real status


# --- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, param", [
    ({"steps": 3, "block_length": 4}, "steps"),
    ({"steps": 9}, "steps"),
    ({"block_length": 0}, "block_length"),
    ({"k_soft": 100000}, "k_soft"),
    ({"alpha_soft_mask": 1.5}, "alpha_soft_mask"),
    ({"threshold": 0}, "threshold"),
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


def test_malformed_json_is_400(app):
    r = app.request("POST", "/v1/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert error_of(r, 400)["type"] == "invalid_request_error"


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
        for _ in range(200):  # the engine drops the row at its next step
            if strict.worker.rows_in_flight == 1:
                break
            await asyncio.sleep(0.005)
        rows_after_timeout = strict.worker.rows_in_flight
        a_still_running = not a.done()
        a.cancel()
        return full, timed_out, rows_after_timeout, a_still_running, gauges

    full, timed_out, rows_after_timeout, a_still_running, gauges = strict.portal.call(scenario)
    assert a_still_running
    assert "evotoken_queue_depth 1.0" in gauges and "evotoken_active_rows 1.0" in gauges
    assert error_of(full, 429)["code"] == "queue_full" and int(full.headers["retry-after"]) >= 1
    assert error_of(timed_out, 504)["code"] == "queue_timeout"
    assert rows_after_timeout == 1  # the timed-out row was freed; only A is left
    deadline = time.monotonic() + 10
    while strict.worker.rows_in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert strict.worker.rows_in_flight == 0 and strict.worker.engine.active_count == 0


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
