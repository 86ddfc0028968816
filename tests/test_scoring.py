"""The reference scorers on hand-written right, wrong and malformed answers."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from evotoken_core.eval import DatasetError, evaluate, load_items, parse_number, shipped_test_set
from evotoken_core.eval.extract import answer_tag, boxed_contents, first_boxed, last_boxed
from evotoken_core.eval.math_normalize import math_equal, normalize_math
from evotoken_core.eval.scoring import score_countdown, score_math, score_numeric


def ans(boxed: str, reasoning: str = "work") -> str:
    return f"<reasoning>{reasoning}</reasoning>\n<answer>\\boxed{{{boxed}}}</answer>"


# --- extraction ---------------------------------------------------------------------------

def test_boxed_extraction_handles_nesting_and_unclosed_boxes():
    text = "a \\boxed{\\frac{1}{2}} b \\boxed{} c \\boxed{3} d \\boxed{4"
    assert boxed_contents(text) == ["\\frac{1}{2}", "", "3"]
    assert first_boxed("\\boxed{} then \\boxed{ 7 }") == " 7 "
    assert last_boxed(text) == "3"
    assert last_boxed("\\boxed 5$ and more") == "5"
    assert last_boxed("\\fbox{9}") == "9"
    assert last_boxed("no box here") is None
    assert last_boxed("\\boxed{{{unbalanced}") is None


def test_answer_tag_is_the_fallback():
    assert answer_tag("<answer> 42 </answer>") == "42"
    assert answer_tag("<answer>17") == "17"
    assert answer_tag("<answer></answer>") is None


# --- GSM8K / SVAMP / arithmetic -----------------------------------------------------------

@pytest.mark.parametrize("text", [
    ans("17"), ans("17.0"), ans("$17"), ans("17."), "<answer>17</answer>", "\\boxed{} \\boxed{17}",
    ans("17 apples"), ans("\\text{17}"), "The answer is \\boxed{17} not \\boxed{18}",
])
def test_numeric_right(text):
    assert score_numeric(text, "17")


@pytest.mark.parametrize("text", [
    ans("18"), "no answer at all", "12 + 5 = 17", ans("12 + 5 = 17"), ans("17, 18"),
    "\\boxed{18} then \\boxed{17}", "\\boxed{17", ans(""), ans("seventeen"), ans("1.7"),
])
def test_numeric_wrong_or_malformed(text):
    assert not score_numeric(text, "17")


def test_numbers_with_commas_signs_and_fractions():
    assert score_numeric(ans("1,234"), "1234")
    assert score_numeric(ans("$1,234,567.00"), "1234567")
    assert score_numeric(ans("-3"), "-3") and not score_numeric(ans("3"), "-3")
    assert score_numeric(ans("\\frac{3}{4}"), "0.75")
    assert score_numeric(ans("50\\%"), "50")
    assert parse_number("3/0") is None and parse_number(None) is None
    assert parse_number("2.50") == Fraction(5, 2)


# --- MATH500 -------------------------------------------------------------------------------

@pytest.mark.parametrize("pred, ref", [
    ("\\dfrac{1}{2}", "\\frac{1}{2}"), ("\\frac12", "\\frac{1}{2}"), ("0.5", "\\frac{1}{2}"),
    ("1/2", "\\frac12"), ("90^\\circ", "90"), ("5\\text{ cm}", "5"), ("x = 3", "3"),
    ("\\left( 1, 2 \\right)", "(1,2)"), ("\\sqrt2", "\\sqrt{2}"), ("10.", "10"), ("\\$5", "5"),
    ("1,000", "1000"), ("\\text{(C)}", "(C)"), (".5", "\\frac{1}{2}"), ("2.0", "2"),
    ("\\frac{\\sqrt{3}}{2}", "\\dfrac{\\sqrt{3}}{2}"),
])
def test_math_equivalent(pred, ref):
    assert math_equal(pred, ref), (normalize_math(pred), normalize_math(ref))


@pytest.mark.parametrize("pred, ref", [
    ("\\frac{1}{3}", "\\frac{1}{2}"), ("(1,2)", "(2,1)"), ("\\sqrt{3}", "\\sqrt{2}"), ("3", "-3"),
    (None, "3"), ("", "3"),
])
def test_math_different(pred, ref):
    assert not math_equal(pred, ref)


def test_math_takes_the_last_box_with_nested_braces():
    assert score_math("first \\boxed{2} then \\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt3}{2}")
    assert not score_math("\\boxed{\\frac{1}{2}} then \\boxed{3}", "\\frac{1}{2}")
    assert not score_math("\\boxed{\\frac{1}{2}", "\\frac{1}{2}")


# --- Countdown -----------------------------------------------------------------------------

NUMS, TARGET = [30, 100, 93], 23


@pytest.mark.parametrize("expr", [
    "30 - (100 - 93)", "(30 - 100) + 93", "93 + 30 - 100", " 30-(100-93) ",
])
def test_countdown_right(expr):
    assert score_countdown(ans(expr), NUMS, TARGET)


@pytest.mark.parametrize("text", [
    ans("30 - (100 - 93) + 0"),         # an extra number
    ans("30 - 7"),                       # numbers not the given ones
    ans("100 - 93"),                     # a number left out
    ans("30 + 100 + 93"),                # wrong value
    ans("30 - (100 - 93)=23"),           # disallowed character
    ans("30 - (100 - 93.0)"),            # '.' is not allowed
    ans("abs(30 - (100 - 93))"),         # names are not evaluated
    ans("30 - (100 - 93"),               # unbalanced parentheses
    ans("(30 - 30) / (100 - 100) + 93"), # division by zero, wrong numbers anyway
    ans("2**100000"),                    # a huge power is rejected before evaluation
    "30 - (100 - 93)",                   # no box
    ans("30 - (100 - 93)") + " \\boxed{1 + 2}",  # the last box counts
    "\\boxed{30 - {100 - 93}",           # unclosed box
])
def test_countdown_wrong_or_malformed(text):
    assert not score_countdown(text, NUMS, TARGET)


def test_countdown_last_box_wins_and_division_is_exact():
    assert score_countdown("\\boxed{1 + 2} so \\boxed{30 - (100 - 93)}", NUMS, TARGET)
    assert score_countdown(ans("(45 / 3) + 23"), [45, 3, 23], 38)
    assert score_countdown(ans("7 / 3 * 3 + 0 * 1"), [7, 3, 3, 0, 1], 7)   # exact fractions
    assert not score_countdown(ans("10 / (5 - 5) + 1"), [10, 5, 5, 1], 1)


def test_safe_evaluator_rejects_everything_but_arithmetic():
    assert evaluate("(1 + 2) * 3 - 4 / 2") == 7
    assert evaluate("-3 + 5") == 2
    for bad in ("2**100000", "2 ** 3", "7 // 2", "1 / 0", "__import__('os')", "1e9", "", "()",
                "9" * 13 + " * " + "9" * 13, "(" * 150 + "1" + ")" * 150, "007 + 1"):
        assert evaluate(bad) is None, bad


# --- dataset loaders -----------------------------------------------------------------------

def write(tmp_path, rows, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_loaders_read_the_public_layouts(tmp_path):
    gsm = load_items("gsm8k", write(tmp_path, [{"question": "Q?", "answer": "2 + 2 = 4\n#### 1,004"}]))
    assert gsm[0].question == "Q?" and gsm[0].score(ans("1004")) and not gsm[0].score(ans("4"))
    svamp = load_items("svamp", write(tmp_path, [{"Body": "Tom has 3 pens", "Question": "How many?",
                                                 "Answer": 3.0}]))
    assert svamp[0].question == "Tom has 3 pens. How many?" and svamp[0].score(ans("3"))
    math = load_items("math500", write(tmp_path, [{"problem": "P", "answer": "\\frac{1}{2}"}]))
    assert math[0].score("\\boxed{\\dfrac12}")
    cd = load_items("countdown", write(tmp_path, [{"input": "30,100,93", "output": "23"}, ""]))
    assert cd[0].numbers == (30, 100, 93) and cd[0].question == "Numbers: 30, 100, 93. Target: 23."
    assert cd[0].score(ans("30 - (100 - 93)")) and len(cd) == 1
    many = load_items("countdown", write(tmp_path, [{"input": "1,2,3", "output": "6"}] * 5), limit=2)
    assert [i.index for i in many] == [0, 1]


@pytest.mark.parametrize("task, rows, message", [
    ("gsm8k", [{"question": "Q", "answer": "no marker"}], "data.jsonl:1: GSM8K answer has no"),
    ("gsm8k", [{"question": "Q", "answer": "x\n#### 1"}, {"question": "Q"}], "data.jsonl:2: missing field(s) answer"),
    ("countdown", [{"input": "1,two,3", "output": "6"}], "data.jsonl:1: input must be"),
    ("svamp", ["{not json"], "data.jsonl:1: not valid JSON"),
    ("math500", ["[1, 2]"], "data.jsonl:1: expected a JSON object"),
])
def test_malformed_rows_name_file_and_line(tmp_path, task, rows, message):
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_items(task, write(tmp_path, rows))


def test_missing_file_and_unknown_task(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_items("gsm8k", tmp_path / "nope.jsonl")
    with pytest.raises(DatasetError, match="unknown task"):
        load_items("mmlu", write(tmp_path, [{}]))


def test_demo_items_need_the_exact_answer_and_extraction_is_reported():
    from evotoken_core.eval import predicted_answer

    items = load_items("demo", shipped_test_set("demo"))
    assert len(items) == 60 and {i.question.split(":")[0] for i in items} == {"Sort these numbers", "Reverse the letters"}
    item = items[0]
    assert item.score(f" {item.reference}\n") and not item.score(item.reference + ", 1")
    assert predicted_answer("countdown", "\\boxed{1} \\boxed{2 + 3}") == "2 + 3"
    assert predicted_answer("gsm8k", "\\boxed{1} \\boxed{2}") == "1"
    assert predicted_answer("svamp", "<answer>4</answer>") == "4"


def test_the_saved_answer_of_an_exact_match_or_newcomer_item_is_what_its_scorer_compared():
    # Saved as `extracted`, which the paired statistics count as "identical final answers":
    # a demo reply is compared whole, a newcomer reply by its boxed part or else whole.
    from evotoken_core.eval import predicted_answer

    assert predicted_answer("demo", " 56, 88, 91\n") == "56, 88, 91"
    assert predicted_answer("newcomer", "<reasoning>l-a-m-p</reasoning>\n<answer>p-m-a-l</answer>") == "p-m-a-l"
    assert predicted_answer("newcomer", "I can solve small word problems.") == "I can solve small word problems."
    assert predicted_answer("newcomer", "so \\boxed{42} ") == "42"
    assert predicted_answer("arith", "no answer here") is None
