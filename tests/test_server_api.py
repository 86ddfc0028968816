"""The HTTP API in-process: answers, streaming and batching, through httpx's ASGI transport
against a real app on the tiny checkpoint (`tests/server_harness.py`).

The app runs in float64 so that batched and solo decoding agree token for token; answers are
checked against the core engine run directly, not against the server.
"""

from __future__ import annotations

import pytest

from evotoken_core.decoding import DecodeRequest
from evotoken_core.engine import Engine
from evotoken_core.model import load_model
from evotoken_core.text import TextAssembler
from tests.server_harness import error_of, sse_payloads, streamed_texts

pytestmark = pytest.mark.timeout(120)


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


def test_one_model_is_retrieved_by_id_and_an_unknown_id_is_404(app):
    listed = app.get("/v1/models").json()["data"][0]
    assert app.get("/v1/models/tiny").json() == listed  # what `client.models.retrieve("tiny")` reads
    for unknown in ("gpt-4", "GSAI-ML%2FLLaDA-8B-Instruct", "tiny/extra"):  # hub-style ids reach the route
        err = error_of(app.get(f"/v1/models/{unknown}"), 404)
        assert err["code"] == "model_not_found" and err["param"] == "model"


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
