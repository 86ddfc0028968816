"""The fixed-length extras benchmark clients send (aiperf, guidellm, vLLM bench): `ignore_eos`,
`min_tokens` and `seed: -1`, on the shipped demo model, which ends its short answers early."""

from __future__ import annotations

import pytest

from evotoken_core.assets import default_model_path
from server import Settings
from tests.server_harness import Harness, error_of, sse_payloads, streamed_texts

pytestmark = pytest.mark.timeout(180)

CHAT = "/v1/chat/completions"
TEXT = "/v1/completions"
QUESTION = [{"role": "user", "content": "What is 2 + 3?"}]
ASKED = 32


@pytest.fixture(scope="module")
def demo():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    h = Harness(Settings(model=str(default_model_path()), served_model_name="demo", max_batch_size=4))
    yield h
    h.close()
    torch.set_num_threads(before)


def answer(demo, **extras) -> tuple[str, str, int]:
    """Text, finish reason and completion tokens of the non-streamed answer."""
    response = demo.post(CHAT, {"messages": QUESTION, "max_tokens": ASKED, **extras})
    assert response.status_code == 200, response.text
    body = response.json()
    (choice,) = body["choices"]
    return choice["message"]["content"], choice["finish_reason"], body["usage"]["completion_tokens"]


def streamed(demo, **extras) -> tuple[str, str, int]:
    """The same, read from the stream: its confirmed text, last finish reason and usage."""
    response = demo.post(CHAT, {"messages": QUESTION, "max_tokens": ASKED, "stream": True,
                                "stream_options": {"include_usage": True}, **extras})
    assert response.status_code == 200, response.text
    frames = sse_payloads(response)
    assert frames[-1] == "[DONE]"
    finish = [c["finish_reason"] for f in frames[:-1] for c in f["choices"] if c["finish_reason"]]
    return streamed_texts(frames, "chat")[0], finish[-1], frames[-2]["usage"]["completion_tokens"]


@pytest.fixture(scope="module")
def plain(demo) -> tuple[str, str, int]:
    text, finish, tokens = answer(demo)
    assert finish == "stop" and tokens < ASKED // 2  # the model ends its answer early on its own
    return text, finish, tokens


@pytest.mark.parametrize("read", [answer, streamed])
def test_ignore_eos_answers_with_exactly_the_asked_tokens(demo, plain, read):
    text, finish, tokens = read(demo, ignore_eos=True)
    assert (finish, tokens) == ("length", ASKED)
    assert text.startswith(plain[0])  # the text up to the end token is the plain answer


@pytest.mark.parametrize("read", [answer, streamed])
def test_min_tokens_keeps_the_answer_going_until_it_has_that_many(demo, plain, read):
    least = plain[2] + 6
    _, _, tokens = read(demo, min_tokens=least)
    assert tokens >= least  # usage counts the tokens before the first end token: none came earlier


def test_min_tokens_stream_equals_the_answer(demo, plain):
    least = plain[2] + 6
    assert streamed(demo, min_tokens=least) == answer(demo, min_tokens=least)


def test_min_tokens_zero_and_ignore_eos_false_change_nothing(demo, plain):
    assert answer(demo, min_tokens=0, ignore_eos=False) == plain


def test_seed_minus_one_means_no_fixed_seed(demo):
    for url, body in ((CHAT, {"messages": QUESTION}), (TEXT, {"prompt": "What is 2 + 3?"})):
        response = demo.post(url, {**body, "max_tokens": 8, "seed": -1, "temperature": 0.7, "n": 2})
        assert response.status_code == 200, response.text
        assert len(response.json()["choices"]) == 2


@pytest.mark.parametrize("body, param", [
    ({"max_tokens": 8, "min_tokens": 9}, "min_tokens"),
    ({"max_completion_tokens": 8, "min_tokens": 9}, "min_tokens"),
    ({"min_tokens": -1}, "min_tokens"),
    ({"min_tokens": 2.5}, "min_tokens"),
    ({"min_tokens": True}, "min_tokens"),
    ({"ignore_eos": "maybe"}, "ignore_eos"),
    ({"seed": -2}, "seed"),
])
def test_bad_extras_are_400_naming_the_param(demo, body, param):
    err = error_of(demo.post(CHAT, {"messages": QUESTION, **body}), 400)
    assert err["param"] == param and err["type"] == "invalid_request_error"
