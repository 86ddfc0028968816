"""The everyday phrasings: every answer right, whole templates held out, every prompt rendered
by the chat template the way the server renders a bare question."""

from __future__ import annotations

import random
import re

import pytest
from transformers import AutoTokenizer

from evotoken_core.assets import DEFAULT_MODEL_DIR
from evotoken_core.data import phrasings, render_prompt, sample_train_example
from evotoken_core.data.phrasing_templates import BARE, CHAT, HELD_OUT, REVERSE, SORT, STORIES
from evotoken_core.data.prompts import MATH_INSTRUCTION
from evotoken_core.eval.datasets import score_newcomer
from tests.test_data import ANSWER, check_trace

TABLES = {"bare": BARE, "story": STORIES, "sort": SORT, "reverse": REVERSE, "chat": CHAT}


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR)


def items(kind: str, split: str, per_template: int = 40) -> list[phrasings.Phrased]:
    rng = random.Random(kind + split)
    return [phrasings.BUILDERS[kind][1](t, rng) for t in phrasings.templates(kind, split)
            for _ in range(per_template)]


def template_texts(kind: str, template: str) -> list[str]:
    entry = TABLES[kind][template]
    if kind == "bare":
        return list(entry.values())
    return [entry[0] if kind == "story" else entry]


def matches(text: str, question: str) -> bool:
    """Whether `question` could come from template `text` (placeholders match anything)."""
    pattern = ".+".join(re.escape(part) for part in re.split(r"\{\w+\}", text))
    return re.fullmatch(pattern, question) is not None


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_arithmetic_answer_is_a_correct_trace_of_the_question(split):
    for item in items("bare", split) + items("story", split):
        reasoning, boxed = ANSWER.match(item.answer).groups()
        assert int(boxed) == check_trace(reasoning, item.question) == int(item.gold), item
        assert len(re.findall(r"=\d+\.", reasoning)) == (2 if item.level == 2 else 1), item


@pytest.mark.parametrize("split", ["train", "test"])
def test_sorting_and_reversing_answers_are_right(split):
    for item in items("sort", split):
        values = [int(v) for v in re.findall(r"\d+", item.question)]
        assert item.answer == item.gold == ", ".join(map(str, sorted(values)))
    for item in items("reverse", split):
        word = item.gold[::-1]
        assert re.search(rf"\b{word}\b", item.question)
        assert item.answer == f"<reasoning>{'-'.join(word)}</reasoning>\n<answer>{'-'.join(item.gold)}</answer>"


def test_every_kind_holds_out_whole_templates_that_training_never_uses():
    assert HELD_OUT <= {t for table in TABLES.values() for t in table}
    for kind in phrasings.KINDS:
        assert len(phrasings.templates(kind, "test")) >= 1 and len(phrasings.templates(kind, "train")) >= 3
    held_texts = [(kind, text) for kind in phrasings.KINDS for t in phrasings.templates(kind, "test")
                  for text in template_texts(kind, t)]
    rng = random.Random(5)
    for i in range(4000):
        ex = phrasings.sample_example(rng, task=("phrased", "phrased_demo")[i % 2])
        assert not any(matches(text, ex.prompt) for _, text in held_texts), ex.prompt
    for kind in phrasings.KINDS:  # and the test split comes only from them
        for item in items(kind, "test", 5):
            assert item.template in HELD_OUT
            assert any(matches(text, item.question) for k, text in held_texts if k == kind)


def test_the_chat_template_gives_arithmetic_the_math_line_and_nothing_else(tokenizer):
    for kind in phrasings.KINDS:
        for item in items(kind, "train", 5) + items(kind, "test", 5):
            prompt = render_prompt(tokenizer, item.question, "phrased")
            wants_line = kind in ("bare", "story")
            assert prompt.endswith(f"{item.question}\n{MATH_INSTRUCTION}<|eot_id|><|start_header_id|>"
                                   "assistant<|end_header_id|>\n\n") == wants_line, item
            assert prompt.count(MATH_INSTRUCTION) == wants_line


def test_prompts_and_answers_fit_the_demo_model(tokenizer):
    for kind in phrasings.KINDS:
        for item in items(kind, "train") + items(kind, "test"):
            prompt = render_prompt(tokenizer, item.question, "phrased")
            assert len(tokenizer(prompt, add_special_tokens=False).input_ids) <= 96, item
            # 48-token answer region, one of it the end-of-turn token
            assert len(tokenizer(item.answer, add_special_tokens=False).input_ids) <= 47, item


def test_the_newcomer_questions_are_never_training_items():
    newcomer = phrasings.newcomer_questions()
    assert len(newcomer) == 60
    rng = random.Random(11)
    seen = {phrasings.sample_example(rng, task=task).prompt for task in phrasings.TASK_KINDS for _ in range(10000)}
    assert not seen & newcomer
    # and the generator does produce such wordings, so the exclusion is what keeps them out
    assert any(matches("Sort {list}.", q) for q in newcomer)


def test_held_out_rows_are_scored_right_by_the_newcomer_scorer():
    rows = phrasings.make_test_set(40, seed=3)
    assert len({r["question"] for r in rows}) == 40
    assert {r["kind"] for r in rows} == {"arithmetic", "word_problem", "sort", "reverse"}
    for kind in ("bare", "story", "sort", "reverse"):
        for item in items(kind, "test", 5):
            assert score_newcomer(phrasings.NEWCOMER_KIND[kind], item.answer, item.gold), item
            assert not score_newcomer(phrasings.NEWCOMER_KIND[kind], item.answer, item.gold + "1"), item


def test_the_seen_and_unseen_phrasing_sets_split_by_template():
    held_texts = [text for kind in phrasings.KINDS for t in phrasings.templates(kind, "test")
                  for text in template_texts(kind, t)]
    unseen = phrasings.make_test_set(40, seed=3)
    seen = phrasings.make_test_set(40, seed=3, split="train")
    assert {r["kind"] for r in seen} == {r["kind"] for r in unseen}
    assert all(any(matches(text, r["question"]) for text in held_texts) for r in unseen)
    assert not any(matches(text, r["question"]) for r in seen for text in held_texts)
    assert not {r["question"] for r in seen} & phrasings.newcomer_questions()


@pytest.mark.parametrize(("task", "level", "kinds"), [
    ("phrased", 1, {"bare", "story"}), ("phrased", 2, {"story"}),
    ("phrased_demo", 0, {"chat"}), ("phrased_demo", 1, {"sort", "reverse"}),
])
def test_the_mixture_draws_each_phrased_task_at_its_levels(task, level, kinds):
    rng = random.Random(2)
    examples = [sample_train_example(rng, {level: 1}, {task: 1}) for _ in range(200)]
    assert {(ex.task, ex.level) for ex in examples} == {(task, level)}
    seen = set()
    for ex in examples:
        has_line = "\\boxed" in ex.answer
        seen.add("chat" if ex.answer == phrasings.CHAT_REPLY else "reverse" if "<answer>" in ex.answer and not has_line
                 else "sort" if not has_line else "arith")
    assert seen == ({"arith"} if task == "phrased" else kinds)


def test_a_level_a_task_does_not_have_is_refused():
    with pytest.raises(ValueError, match="phrased_demo has no items at level 2"):
        phrasings.sample_example(random.Random(0), 2, "phrased_demo")
