"""Hostile and malformed requests: each is a clear 4xx in OpenAI's error shape, never a 5xx.

Cases already pinned in test_server_errors.py (block_length 0, k_soft too large, alpha 1.5,
steps that do not divide or exceed the tokens, 17 stop strings, malformed JSON, an unknown
model, a prompt or max_tokens past the context, an empty messages list, an unknown role) are
not repeated here; these are the rest of the hostile-input cases.
"""

from __future__ import annotations

import pytest

from server import Settings
from tests.server_harness import Harness, error_of

pytestmark = pytest.mark.timeout(120)

CHAT = "/v1/chat/completions"
TEXT = "/v1/completions"
HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def app(tiny_checkpoint):
    h = Harness(Settings(model=str(tiny_checkpoint), served_model_name="tiny", max_batch_size=4,
                         max_queue=8, block_length=8, max_tokens=8))
    yield h
    h.close()


def _invalid(response, param: str | None = None, status: int = 400) -> dict:
    err = error_of(response, status)
    assert err["type"] == "invalid_request_error" and err["message"]
    if param is not None:
        assert err["param"] == param, err
    return err


@pytest.mark.parametrize("extra, param", [
    ({"n": 1000}, "n"),
    ({"max_tokens": 10**30}, "max_tokens"),
    ({"temperature": -0.5}, "temperature"),
    ({"alpha_soft_mask": 1}, "alpha_soft_mask"),
    ({"k_soft": 0}, "k_soft"),
    ({"block_length": 4096}, "block_length"),        # a block longer than the whole context
    ({"max_tokens": 16, "steps": 3}, "steps"),       # 2 blocks of 8: 3 steps do not divide
    ({"stop": ["x"] * 100}, "stop"),
    ({"seed": 2**80}, "seed"),
    ({"prompt": [10**9]}, "prompt"),                 # token id past the vocabulary
    ({"prompt": [-1, 5]}, "prompt"),
    ({"prompt": [[3, 4], [10**6]]}, "prompt.1"),
    ({"prompt": []}, "prompt"),
    ({"max_tokens": "ten"}, "max_tokens"),           # wrong types
    ({"prompt": {"text": "hi"}}, "prompt"),
    ({"stop": 5}, "stop"),
    ({"temperature": [0.5]}, "temperature"),
    ({"stream": {"on": True}}, "stream"),
    ({"n": 2.5}, "n"),
    ({"alpha_soft_mask": False}, "alpha_soft_mask"),  # JSON booleans are not numbers
    ({"threshold": True}, "threshold"),
    ({"max_tokens": True}, "max_tokens"),
    ({"temperature": False}, "temperature"),
])
def test_bad_completion_values_are_400_naming_the_param(app, extra, param):
    _invalid(app.post(TEXT, {"prompt": "Hello", "max_tokens": 8, **extra}), param)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["temperature", "alpha_soft_mask", "threshold"])
def test_non_finite_numbers_are_400(app, field, literal):
    """Python's JSON parser accepts NaN and Infinity; every float setting must still refuse them."""
    body = '{"prompt": "Hello", "max_tokens": 8, "%s": %s}' % (field, literal)
    _invalid(app.request("POST", TEXT, content=body, headers={"content-type": "application/json"}), field)


@pytest.mark.parametrize("body, param", [
    ({"max_tokens": 8}, "messages"),                                          # missing messages
    ({"messages": "hi"}, "messages"),                                         # wrong type
    ({"messages": [{"role": "user"}, "hi"]}, "messages.1"),
    ({"messages": [{"content": "hi"}]}, "messages.0.role"),
    ({"messages": [{"role": "user", "content": "hi", "mood": "happy"}]}, "messages.0.mood"),
    ({"messages": [{"role": "tool", "content": "42", "tool_call_id": "c1"}]}, "messages.0"),
    ({"messages": [{"role": "user", "content": 42}]}, "messages.0.content"),
    ({"messages": HELLO, "n": 1000}, "n"),
    ({"messages": HELLO, "max_completion_tokens": 10**9}, "max_completion_tokens"),
    ({"messages": HELLO, "max_completion_tokens": 600}, "max_completion_tokens"),  # past the context
    ({"messages": HELLO, "model": "../../etc/passwd"}, None),
])
def test_bad_chat_bodies_are_4xx(app, body, param):
    status = 404 if "model" in body else 400
    err = _invalid(app.post(CHAT, body), param, status)
    if status == 404:
        assert err["code"] == "model_not_found"


def test_invalid_utf8_is_400(app):
    raw = b'{"prompt": "caf\xe9 \xff\xfe", "max_tokens": 8}'
    _invalid(app.request("POST", TEXT, content=raw, headers={"content-type": "application/json"}))


@pytest.mark.parametrize("raw", [b"", b"[]", b"null", b'"just a string"', b"42"])
def test_a_body_that_is_not_an_object_is_400(app, raw):
    _invalid(app.request("POST", CHAT, content=raw, headers={"content-type": "application/json"}))


@pytest.mark.parametrize("where", ["top", "prompt", "metadata"])
def test_deeply_nested_json_is_400(app, where):
    depth = 100_000
    nested = "[" * depth + "]" * depth
    if where == "top":
        raw = nested
    elif where == "prompt":
        raw = '{"prompt": %s, "max_tokens": 8}' % nested
    else:
        raw = '{"messages": [{"role": "user", "content": "hi"}], "metadata": {"a": %s}}' % nested
    url = CHAT if where == "metadata" else TEXT
    _invalid(app.request("POST", url, content=raw.encode(), headers={"content-type": "application/json"}))


def test_a_10_mb_body_is_413_with_or_without_a_length(app):
    big = b'{"prompt": "' + b"a" * (10 * 1024 * 1024) + b'"}'
    headers = {"content-type": "application/json"}
    assert error_of(app.request("POST", TEXT, content=big, headers=headers), 413)["code"] == "request_too_large"

    async def chunks():  # chunked transfer: no content-length for the limit to read
        for i in range(0, len(big), 1 << 20):
            yield big[i:i + (1 << 20)]
    chunked = app.request("POST", TEXT, content=chunks(), headers=headers)
    assert error_of(chunked, 413)["code"] == "request_too_large"


def test_the_server_still_answers_after_all_of_that(app):
    assert app.post(TEXT, {"prompt": "Hello", "max_tokens": 8}).status_code == 200
    assert app.worker.rows_in_flight == 0 and app.worker.engine.active_count == 0
