"""The newcomer set: hand-written questions as a first-time user types them, shipped with the
package and scored by `evotoken eval --task newcomer` with no instruction line from the client."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from evotoken_core.data.prompts import user_message
from evotoken_core.eval.datasets import (NEWCOMER_KINDS, DatasetError, load_items, score_newcomer,
                                         shipped_test_set)


@pytest.fixture(scope="module")
def items():
    return load_items("newcomer", shipped_test_set("newcomer"))


def test_sixty_distinct_questions_fifteen_of_each_kind(items):
    assert len(items) == 60 and len({i.question for i in items}) == 60
    assert Counter(i.kind for i in items) == {kind: 15 for kind in NEWCOMER_KINDS}


def test_the_client_adds_no_instruction_line(items):
    assert all(user_message(i.question, "newcomer") == i.question for i in items)


def test_sorting_and_reversing_golds_are_right(items):
    for item in items:
        if item.kind == "sort":
            values = sorted(int(v) for v in re.findall(r"\d+", item.question))
            assert item.reference == ", ".join(map(str, values))
        elif item.kind == "reverse":
            assert re.search(rf"\b{item.reference[::-1]}\b", item.question), item
        else:
            assert re.fullmatch(r"\d+", item.reference) and re.search(r"\d", item.question)


@pytest.mark.parametrize(("kind", "text", "reference", "right"), [
    ("arithmetic", "<reasoning>12+30=42.</reasoning>\n<answer>\\boxed{42}</answer>", "42", True),
    ("arithmetic", "42", "42", True),
    ("arithmetic", "The answer is 42.", "42", True),
    ("arithmetic", "12 + 30 = 42", "42", False),             # several numbers: no guessing which
    ("arithmetic", "<answer>\\boxed{41}</answer> 42", "42", False),  # the box decides
    ("word_problem", "<reasoning>8-3=5.</reasoning>\n<answer>\\boxed{5}</answer>", "5", True),
    ("sort", "2, 5, 9", "2, 5, 9", True),
    ("sort", "2, 9, 5", "2, 5, 9", False),
    ("sort", "2, 5", "2, 5, 9", False),
    ("reverse", "p-m-a-l", "pmal", True),
    ("reverse", "<reasoning>l-a-m-p</reasoning>\n<answer>p-m-a-l</answer>", "pmal", True),
    ("reverse", "PMAL", "pmal", True),
    ("reverse", "l-a-m-p", "pmal", False),
])
def test_the_scorer_reads_the_answer_in_any_trained_form(kind, text, reference, right):
    assert score_newcomer(kind, text, reference) is right


def test_a_row_of_unknown_kind_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"kind": "poetry", "question": "Write a poem.", "answer": "x"}) + "\n")
    with pytest.raises(DatasetError, match="bad.jsonl:1: kind 'poetry' is not one of arithmetic"):
        load_items("newcomer", bad)
