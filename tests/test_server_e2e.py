"""End to end: a real uvicorn on loopback, driven by the official OpenAI SDK and raw HTTP."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from server import Settings
from tests.live_server import LiveServer

pytestmark = pytest.mark.timeout(120)
KEY = "sk-e2e-test"


@pytest.fixture(scope="module")
def live(tiny_checkpoint):
    s = LiveServer(Settings(model=str(tiny_checkpoint), served_model_name="tiny",
                            api_key=[KEY], block_length=8, max_tokens=16, max_batch_size=8))
    yield s
    s.close()


@pytest.fixture(scope="module")
def client(live):
    return openai.OpenAI(base_url=live.url + "/v1", api_key=KEY, max_retries=0, timeout=60)


def test_sdk_lists_models(client):
    assert [m.id for m in client.models.list()] == ["tiny"]


def test_sdk_chat_stream_equals_chat_answer(client):
    ask = dict(model="tiny", messages=[{"role": "user", "content": "What is 12 + 30?"}], max_tokens=12,
               temperature=0.6, seed=4, n=2, stop=["?"])
    whole = client.chat.completions.create(**ask)
    assert whole.object == "chat.completion" and len(whole.choices) == 2
    assert all(c.finish_reason in ("stop", "length") for c in whole.choices)
    texts, finish, usage = {0: "", 1: ""}, {}, None
    for chunk in client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}):
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    assert texts == {c.index: c.message.content for c in whole.choices}
    assert finish == {c.index: c.finish_reason for c in whole.choices}
    assert usage == whole.usage


def test_sdk_parses_step_chunks_and_extra_body_settings(client):
    extra = {"steps": 8, "block_length": 4, "k_soft": 2, "alpha_soft_mask": 0.6}
    whole = client.completions.create(model="tiny", prompt="The quick", max_tokens=8, extra_body=extra)
    steps, text = [], ""
    stream = client.completions.create(model="tiny", prompt="The quick", max_tokens=8, stream=True,
                                       extra_body={**extra, "stream_steps": True})
    for chunk in stream:
        choice = chunk.choices[0]
        text += choice.text
        if choice.model_extra.get("evotoken"):
            steps.append(choice.model_extra["evotoken"])
    assert text == whole.choices[0].text
    assert [s["step"] for s in steps] == list(range(len(steps))) and 2 <= len(steps) <= 8
    assert all(len(t["top"]) == 2 for s in steps for t in s["tokens"])
    assert len(steps[0]["tokens"]) == 4 and steps[0]["draft"].count("\u2592") >= 1


def test_seed_reproduces_across_calls(client):
    ask = dict(model="tiny", prompt="Hello", max_tokens=16, temperature=1.0, seed=123)
    assert client.completions.create(**ask).choices[0].text == client.completions.create(**ask).choices[0].text


def test_sdk_raises_typed_errors(live, client):
    with pytest.raises(openai.NotFoundError) as missing:
        client.completions.create(model="gpt-4", prompt="x")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.completions.create(model="tiny", prompt="x", max_tokens=8, extra_body={"steps": 3, "block_length": 4})
    assert bad.value.param == "steps"
    with pytest.raises(openai.BadRequestError) as tools:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}],
                                       tools=[{"type": "function", "function": {"name": "f"}}])
    assert tools.value.param == "tools"
    wrong = openai.OpenAI(base_url=live.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_raw_sse_framing(live):
    body = {"model": "tiny", "prompt": "Hi", "max_tokens": 4, "stream": True}
    with httpx.stream("POST", live.url + "/v1/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {KEY}", "x-request-id": "trace-1"}) as r:
        assert r.status_code == 200 and r.headers["x-request-id"] == "trace-1"
        assert r.headers["content-type"].startswith("text/event-stream")
        data = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "data: [DONE]" and len(data) >= 2


def _rows(live, outcome: str) -> float:
    for line in httpx.get(live.url + "/metrics").text.splitlines():
        if line.startswith(f'evotoken_rows_total{{outcome="{outcome}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_client_disconnect_cancels_the_row(live):
    """A long stream, dropped after its first step: the engine frees the row within a step."""
    body = {"model": "tiny", "prompt": "Hi", "max_tokens": 448, "block_length": 448, "steps": 448,
            "stream": True, "stream_steps": True}
    cancelled, completed = _rows(live, "cancelled"), _rows(live, "completed")
    with httpx.stream("POST", live.url + "/v1/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {KEY}"}) as r:
        for line in r.iter_lines():
            if '"evotoken"' in line:
                break
        assert live.worker.engine.active_count == 1
    deadline = time.monotonic() + 10
    while (live.worker.engine.active_count or live.worker.rows_in_flight) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert live.worker.engine.active_count == 0 and live.worker.rows_in_flight == 0
    assert _rows(live, "cancelled") == cancelled + 1 and _rows(live, "completed") == completed


def test_sdk_chat_stream_with_steps_still_parses_as_chat_chunks(client):
    ask = dict(model="tiny", messages=[{"role": "user", "content": "Hello!"}], max_tokens=8)
    whole = client.chat.completions.create(**ask).choices[0].message.content
    text, steps, roles = "", 0, []
    for chunk in client.chat.completions.create(**ask, stream=True, extra_body={"stream_steps": "full"}):
        delta = chunk.choices[0].delta
        roles += [delta.role] if delta.role else []
        text += delta.content or ""
        step = chunk.choices[0].model_extra.get("evotoken")
        if step:
            steps += 1
            assert delta.content is None and [t["pos"] for t in step["tokens"]] == list(range(8))
    assert text == whole and roles == ["assistant"] and steps >= 1


def test_a_non_streamed_request_whose_client_left_is_cancelled(live):
    body = {"model": "tiny", "prompt": "Hi", "max_tokens": 448, "block_length": 448, "steps": 448}
    cancelled = _rows(live, "cancelled")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(live.url + "/v1/completions", json=body, timeout=httpx.Timeout(30, read=0.2),
                   headers={"authorization": f"Bearer {KEY}"})
    deadline = time.monotonic() + 10
    while (live.worker.engine.active_count or live.worker.rows_in_flight) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert live.worker.engine.active_count == 0 and _rows(live, "cancelled") == cancelled + 1
