"""The synthetic data: every answer is right, the splits are disjoint, the tokenizer is exact."""

from __future__ import annotations

import functools
import itertools
import json
import random
import re
from pathlib import Path

import pytest

from evotoken_core.data import (TrainExample, build_demo_tokenizer, make_test_set, render_prompt,
                                sample_train_example, train_stream)
from evotoken_core.data import arithmetic, countdown, demo_tasks
from evotoken_core.data.example import MAX_ANSWER_TOKENS
from evotoken_core.data.export import CONFIRM_SETS, TEST_SETS, render_test_set
from evotoken_core.eval import countdown_correct, score_countdown
from evotoken_core.eval.datasets import load_items, shipped_test_set

# `a op b = c.`, or with the place-value middle of a sum or difference: `a op b = t ± o = c.`,
# or the split style, unspaced, with the operands split first: `a op b=A op B+a1 op b1=t±o=c.`
STEP = re.compile(r"(\d+) ?([-+*/]) ?(\d+) ?= ?(?:(\d+[-+]\d+\+\d+[-+]\d+)=)?(?:(\d+) ?([-+]) ?(\d+) ?= ?)?(\d+)\.")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
       "/": lambda a, b: a / b}


def parse_steps(reasoning: str) -> list[tuple[int, str, int, int]]:
    """Every step as (a, op, b, c), after checking its place-value middle when it has one:
    t is the tens of a op the tens of b, o the ones likewise, and t ± o is c; and a split
    part, when there is one, is a's tens op b's tens + a's ones op b's ones."""
    steps = []
    for a, op, b, split, t, sign, o, c in STEP.findall(reasoning):
        a, b, c = int(a), int(b), int(c)
        if split:
            assert t and split == f"{a // 10 * 10}{op}{b // 10 * 10}+{a % 10}{op}{b % 10}", reasoning
        if t:
            t, o = int(t), int(o)
            assert op in "+-" and t == OPS[op](a - a % 10, b - b % 10) > 0, reasoning
            assert OPS[sign](0, o) == OPS[op](a % 10, b % 10) and OPS[sign](t, o) == c, reasoning
        steps.append((a, op, b, c))
    return steps
ANSWER = re.compile(r"^<reasoning>(.*)</reasoning>\n<answer>\\boxed\{(.*)\}</answer>$", re.DOTALL)


@pytest.fixture(scope="module")
def tokenizer():
    return build_demo_tokenizer()


@pytest.fixture(scope="module")
def examples() -> list[TrainExample]:
    return list(itertools.islice(train_stream(7, {0: 1, 1: 1, 2: 1}), 6000))


def check_trace(reasoning: str, question: str) -> int:
    """Recompute every `a op b = c.` step; the chain must feed each result into the next step."""
    steps = parse_steps(reasoning)
    assert steps and STEP.sub("", reasoning).strip() == "", reasoning
    previous = None
    for i, (a, op, b, c) in enumerate(steps):
        assert OPS[op](a, b) == c, reasoning
        if previous is not None:
            assert previous in (a, b), reasoning
        previous = c
        for n in (a, b):
            assert n == previous_or(steps, i) or re.search(rf"\b{n}\b", question), (n, question)
    return previous


def previous_or(steps, i) -> int | None:
    return steps[i - 1][3] if i else None


def test_every_arithmetic_answer_is_recomputed_correctly(examples):
    arith = [ex for ex in examples if ex.task == "arith"]
    assert {ex.level for ex in arith} == {0, 1, 2}
    for ex in arith:
        reasoning, boxed = ANSWER.match(ex.answer).groups()
        if ex.level == 0:
            name, value, item = re.fullmatch(r"(\w+) has (\d+) (\w+)\.", reasoning).groups()
            assert re.search(rf"\b{value} {item}\b", ex.prompt) and ex.prompt.endswith(f"{item} does {name} have?")
            assert boxed == value
        else:
            assert len(STEP.findall(reasoning)) == ex.level
            assert int(boxed) == check_trace(reasoning, ex.prompt)
        assert 0 <= int(boxed) <= 1000


def test_sums_and_differences_are_written_by_place_value():
    render = arithmetic.render_step
    assert render(72, "+", 14) == "72 + 14 = 80 + 6 = 86."
    assert render(78, "+", 14) == "78 + 14 = 80 + 12 = 92."
    assert render(72, "-", 14) == "72 - 14 = 60 - 2 = 58."
    assert render(140, "+", 20) == "140 + 20 = 160 + 0 = 160."
    assert render(7, "+", 4) == "7 + 4 = 11." and render(15, "-", 12) == "15 - 12 = 3."  # ones facts
    assert render(6, "*", 12) == "6 * 12 = 72." and render(72, "+", 14, style="direct") == "72 + 14 = 86."
    with pytest.raises(ValueError, match="trace style"):
        render(72, "+", 14, style="digits")


def test_split_traces_put_the_ones_digits_side_by_side():
    render = functools.partial(arithmetic.render_step, style="split")
    assert render(72, "+", 14) == "72+14=70+10+2+4=80+6=86."
    assert render(72, "-", 14) == "72-14=70-10+2-4=60-2=58."
    assert render(7, "+", 14) == "7+14=0+10+7+4=10+11=21."
    assert render(7, "+", 4) == "7+4=11." and render(6, "*", 12) == "6*12=72." and render(72, "/", 12) == "72/12=6."
    for a, b in itertools.product(range(1, 130, 7), range(1, 21)):
        for op in "+-" if a > b else "+":  # differences stay positive, as in the generator
            (step,) = parse_steps(render(a, op, b))
            assert step == (a, op, b, OPS[op](a, b))


@pytest.mark.parametrize("other", ["arith_direct", "arith_split"])
def test_trace_style_changes_the_wording_only(other):
    """arith, arith_direct and arith_split draw the same problems from the same seed; only the
    trace differs, and every trace checks out."""
    direct = [sample_train_example(random.Random(s), {2: 1}, {other: 1}) for s in range(200)]
    place = [sample_train_example(random.Random(s), {2: 1}, {"arith": 1}) for s in range(200)]
    assert [d.prompt for d in direct] == [p.prompt for p in place]
    for d, p in zip(direct, place):
        (dr, db), (pr, pb) = ANSWER.match(d.answer).groups(), ANSWER.match(p.answer).groups()
        assert db == pb and parse_steps(dr) == parse_steps(pr)
        assert int(db) == check_trace(dr, d.prompt)
        if other == "arith_direct":
            assert all(t == "" for t in re.findall(r"= (?:(\d+) [-+] \d+ = )?\d+\.", dr))
        else:
            assert " = " not in dr and len(STEP.findall(dr)) == 2
    assert sum(d.answer != p.answer for d, p in zip(direct, place)) > 100


def test_arithmetic_test_rows_are_correct_two_step_problems():
    rows = make_test_set("arith", 300, seed=5)
    for row in rows:
        trace, final = row["answer"].split("\n#### ")
        assert len(STEP.findall(trace)) == 2
        assert check_trace(trace, row["question"]) == int(final)


def test_every_countdown_training_answer_passes_the_checker(examples):
    items = [ex for ex in examples if ex.task == "countdown"]
    assert len(items) > 500 and {ex.level for ex in items} == {1, 2}
    for ex in items:
        numbers = [int(n) for n in re.search(r"Numbers: ([\d, ]+)\.", ex.prompt).group(1).split(", ")]
        target = int(re.search(r"Target: (\d+)\.", ex.prompt).group(1))
        assert all(1 <= n <= 100 for n in numbers) and len(numbers) == 3 and 1 <= target <= 100
        assert score_countdown(ex.answer, numbers, target), ex
        reasoning, _ = ANSWER.match(ex.answer).groups()
        assert check_trace(reasoning, ex.prompt) == target


def test_every_shipped_countdown_item_is_reachable():
    items = load_items("countdown", shipped_test_set("countdown"))
    assert len(items) == 256
    for item in items:
        expr = countdown.solve(list(item.numbers), int(item.reference))
        assert expr is not None, item
        assert countdown_correct(expr, list(item.numbers), float(item.reference))


def test_demo_answers_are_correct(examples):
    demos = [ex for ex in examples if ex.task in demo_tasks.DEMO_TASKS]
    assert {ex.task for ex in demos} == set(demo_tasks.DEMO_TASKS)
    for ex in demos:
        if ex.task == "sort":
            values = [int(v) for v in re.search(r": ([\d, ]+)\.$", ex.prompt).group(1).split(", ")]
            assert ex.answer == ", ".join(map(str, sorted(values)))
        elif ex.task == "reverse":
            letters = re.search(r": ([a-z-]+)\.$", ex.prompt).group(1)
            assert ex.answer == letters[::-1]
        elif ex.task == "fact":
            name = ex.answer.split()[0]
            assert any(v in ex.answer for v in demo_tasks.WORLD[name].values()) and name in ex.prompt


def test_no_test_problem_appears_in_training(examples):
    """Disjointness checked on content, not on the split keys: a problem is identified by its
    worked trace (structure and numbers) or by its Countdown numbers and target."""
    test_traces = {json.loads(line)["answer"].split("\n####")[0]
                   for line in shipped_test_set("arith").read_text().splitlines()}
    test_countdown = {countdown.key(list(i.numbers), int(i.reference))
                      for i in load_items("countdown", shipped_test_set("countdown"))}
    test_demo = {i.question for i in load_items("demo", shipped_test_set("demo"))}
    rng = random.Random(99)
    more = [sample_train_example(rng, {2: 1}, {"arith": 2, "countdown": 1, "demo": 1}) for _ in range(10000)]
    seen = 0
    for ex in examples + more:
        if ex.task == "arith":
            assert ANSWER.match(ex.answer).group(1) not in test_traces
        elif ex.task == "countdown":
            numbers = [int(n) for n in re.findall(r"\d+", ex.prompt.split("Target")[0])]
            assert countdown.key(numbers, int(re.search(r"Target: (\d+)", ex.prompt).group(1))) not in test_countdown
        else:
            assert ex.prompt not in test_demo
        seen += 1
    assert seen == 16000


def test_test_sets_are_distinct_and_shipped_files_are_reproducible():
    for task, n, name, seed in TEST_SETS:
        rows = make_test_set(task, n, seed=3)
        assert len(rows) == n and len({json.dumps(r) for r in rows}) == n
        # the held-out phrasings are scored as newcomer rows, so no eval task names their file
        shipped = Path(shipped_test_set(task) or shipped_test_set("arith").with_name(name))
        assert shipped.name == name and shipped.read_text() == render_test_set(task, n, seed)


def test_confirmation_sets_are_shipped_reproducible_and_disjoint_from_the_test_sets():
    data = shipped_test_set("arith").parent
    for task, n, name, seed in CONFIRM_SETS:
        text = (data / name).read_text()
        assert text == render_test_set(task, n, seed)
        test_rows = set(shipped_test_set(task).read_text().splitlines())
        rows = text.splitlines()
        assert len(set(rows)) == n and not test_rows & set(rows)


def test_stream_is_seeded_and_curriculum_weights_apply():
    a = list(itertools.islice(train_stream(1), 50))
    assert a == list(itertools.islice(train_stream(1), 50))
    assert a != list(itertools.islice(train_stream(2), 50))
    rng = random.Random(0)
    only_copy = [sample_train_example(rng, {0: 1}, {"arith": 1}) for _ in range(200)]
    assert {(ex.task, ex.level) for ex in only_copy} == {("arith", 0)}
    with pytest.raises(ValueError):
        sample_train_example(rng, {5: 1})


def test_answers_fit_the_token_budget(tokenizer, examples):
    split = [sample_train_example(random.Random(s), {2: 1}, {"arith_split": 1}) for s in range(2000)]
    lengths = [len(tokenizer(ex.answer, add_special_tokens=False).input_ids) for ex in examples + split]
    assert max(lengths) <= MAX_ANSWER_TOKENS


def test_tokenizer_round_trips_all_generated_text(tokenizer, examples):
    texts = [t for ex in examples[:2000] for t in (ex.prompt, ex.answer)]
    texts += [render_prompt(tokenizer, ex.prompt, ex.task) + ex.answer for ex in examples[:200]]
    texts += ["", "  two  spaces\n\ttab", "héllo wörld 🎉", "12345 2026 0.5 -7 1e9", "{}\\boxed{{x}}"]
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        assert tokenizer.decode(ids, clean_up_tokenization_spaces=False) == text


def test_every_integer_up_to_1000_is_one_token_in_any_context(tokenizer):
    for n in range(0, 1001):
        for text in (f"{n}", f" {n}", f"{{{n}}}", f"({n} ", f"{n}."):
            ids = tokenizer(text, add_special_tokens=False).input_ids
            pieces = tokenizer.convert_ids_to_tokens(ids)
            assert str(n) in pieces, (text, pieces)
    assert tokenizer.tokenize("123") == ["123"] and tokenizer.tokenize("1000") == ["1000"]
    assert tokenizer.tokenize("1234") == ["123", "4"]
    assert tokenizer.tokenize("<reasoning>") == ["<reasoning>"]


def test_digit_tokenizer_spells_numbers_and_round_trips(tokenizer):
    digits = build_demo_tokenizer(whole_numbers=False)
    assert digits.tokenize("<reasoning>72 + 14 = 80 + 6 = 86.")[:3] == ["<reasoning>", "7", "2"]
    assert [t for t in digits.get_vocab() if t.strip("Ġ").isdigit() and len(t.strip("Ġ")) > 1] == []
    assert len(digits) == len(tokenizer) - 991  # the added integers 10-1000 are all that differ
    for text in ("Tom has 1234 pens.", "<answer>\\boxed{(54 - 34) + 2}</answer>"):
        assert digits.decode(digits(text, add_special_tokens=False).input_ids) == text


def test_tokenizer_is_deterministic_and_small(tokenizer):
    again = build_demo_tokenizer()
    assert again.get_vocab() == tokenizer.get_vocab()
    assert 1200 <= len(tokenizer) <= 2000


def test_chat_template_renders_and_survives_save_and_load(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    prompt = render_prompt(tokenizer, "Numbers: 1, 2, 3. Target: 6.", "countdown")
    assert prompt.startswith("<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nNumbers: 1, 2, 3.")
    assert "\\boxed{}" in prompt and prompt.endswith("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert render_prompt(loaded, "Hi", "chat") == render_prompt(tokenizer, "Hi", "chat")
    ids = loaded(prompt, add_special_tokens=False).input_ids
    assert ids == tokenizer(prompt, add_special_tokens=False).input_ids
    assert loaded.convert_tokens_to_ids("<|eot_id|>") in ids and loaded.mask_token == "<|mdm_mask|>"


class _Extreme(random.Random):
    """An rng whose every integer draw is the lowest (or highest) allowed: the corner cases
    of every number range, which random sampling reaches only once in thousands of draws."""

    def __init__(self, highest: bool):
        super().__init__(0)
        self.highest = highest

    def randint(self, a, b):
        assert a <= b, f"empty range [{a}, {b}]"
        return b if self.highest else a


@pytest.mark.parametrize("highest", [False, True])
def test_every_arithmetic_kind_handles_its_extreme_numbers(highest):
    for kind, (level, build) in arithmetic.KINDS.items():
        numbers = arithmetic.operands(kind, _Extreme(highest))
        question, steps, result = build(numbers, random.Random(0))
        assert 0 < result <= 1000, (kind, numbers, result)
        if level:
            reasoning = arithmetic.Problem(kind, level, question, steps, result).reasoning
            assert check_trace(reasoning, question) == result
