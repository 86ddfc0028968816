"""The demo chat template adds the trained instruction line to a bare question, once, and
changes nothing that was already prompted the trained way (the eval sets, the old mixture)."""

from __future__ import annotations

import itertools

import pytest
from transformers import AutoTokenizer

from evotoken_core.assets import DEFAULT_MODEL_DIR, PRETRAIN_ONLY_DIR
from evotoken_core.data import render_prompt, train_stream
from evotoken_core.data.chat_template import CHAT_TEMPLATE
from evotoken_core.data.prompts import COUNTDOWN_INSTRUCTION, MATH_INSTRUCTION
from evotoken_core.eval.datasets import load_items, shipped_test_set
from evotoken_core.tokenizer import CHAT_TEMPLATE as LLADA_TEMPLATE


@pytest.fixture(scope="module")
def shipped():
    return AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR)


@pytest.fixture(scope="module")
def plain(shipped):
    """The shipped tokenizer under LLaDA's own template: how every prompt was rendered before."""
    tok = AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR)
    tok.chat_template = LLADA_TEMPLATE
    return tok


def user_turn(tokenizer, content: str) -> str:
    text = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True)
    head, tail = "<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|><|start_header_id|>assistant"
    return text[text.index(head) + len(head):text.index(tail)]


def test_both_shipped_models_carry_the_template():
    for directory in (DEFAULT_MODEL_DIR, PRETRAIN_ONLY_DIR):
        assert (directory / "chat_template.jinja").read_text() == CHAT_TEMPLATE
        assert AutoTokenizer.from_pretrained(directory).chat_template == CHAT_TEMPLATE


@pytest.mark.parametrize("question", [
    "What is 12 + 30?", "Compute 7 * 8.", "How much is 9 times 6?",
    "Tom has 12 apples. He buys 8 more. How many apples does Tom have now?",
    "  A farmer has 23 cows and sells 9. How many cows remain?  ",
])
def test_a_bare_arithmetic_question_gets_the_math_line_once(shipped, question):
    assert user_turn(shipped, question) == f"{question.strip()}\n{MATH_INSTRUCTION}"


def test_a_bare_countdown_question_gets_the_countdown_line(shipped):
    q = "Numbers: 3, 5, 7. Target: 22."
    assert user_turn(shipped, q) == f"{q}\n{COUNTDOWN_INSTRUCTION}"


@pytest.mark.parametrize("question", [
    "Sort 5, 2, 9.", "Sort these numbers: 41, 7, 23.", "Put 41, 7, 23 in order.",
    "Reverse the letters: l-a-m-p.", "Spell stone backwards.", "Reverse the word lamp.",
    "Hello, who are you?", "What pet does Tom have?",
])
def test_sorting_reversing_and_chat_pass_through_as_trained(shipped, plain, question):
    assert user_turn(shipped, question) == question
    assert render_prompt(shipped, question, "demo") == render_prompt(plain, question, "demo")


@pytest.mark.parametrize("task", ["arith", "countdown", "demo"])
def test_eval_prompts_are_byte_for_byte_those_of_the_plain_template(shipped, plain, task):
    """`evotoken eval` appends the reference's line itself; the template must not add another."""
    for item in load_items(task, shipped_test_set(task)):
        prompt = render_prompt(shipped, item.question, task)
        assert prompt == render_prompt(plain, item.question, task)
        assert prompt.count("\\boxed{}") == (0 if task == "demo" else 1)


def test_the_old_training_mixture_renders_as_before(shipped, plain):
    tasks = {"arith": 1, "arith_split": 1, "countdown": 1, "demo": 1}
    for ex in itertools.islice(train_stream(3, {0: 1, 1: 1, 2: 1}, tasks), 3000):
        assert render_prompt(shipped, ex.prompt, ex.task) == render_prompt(plain, ex.prompt, ex.task)


def test_other_roles_and_earlier_turns_keep_their_text(shipped):
    messages = [{"role": "system", "content": "Answer 1 question."},
                {"role": "user", "content": "What is 2 + 2?"},
                {"role": "assistant", "content": "4"},
                {"role": "user", "content": "Sort 3, 1, 2."}]
    text = shipped.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    assert text == ("<|startoftext|><|start_header_id|>system<|end_header_id|>\n\nAnswer 1 question.<|eot_id|>"
                    "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2 + 2?\n" + MATH_INSTRUCTION + "<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>"
                    "<|start_header_id|>user<|end_header_id|>\n\nSort 3, 1, 2.<|eot_id|>")


def test_shipping_writes_the_template(tmp_path, tiny_checkpoint):
    from evotoken_core.training.ship import pack

    pack(tiny_checkpoint, tmp_path / "shipped")
    assert (tmp_path / "shipped" / "chat_template.jinja").read_text() == CHAT_TEMPLATE
    assert user_turn(AutoTokenizer.from_pretrained(tmp_path / "shipped"), "What is 1 + 1?").endswith(MATH_INSTRUCTION)
