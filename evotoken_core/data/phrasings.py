"""The demo skills asked the way people ask them: bare sums, free word problems, sorting and
reversing in everyday words, and an honest reply to chat the model cannot do.

The shipped model learned each skill in one wording (`Tom has 72 apples. He buys 14 more. ...`,
`Sort these numbers: 5, 2, 9.`) and answers junk to `What is 12 + 30?`. Here every skill comes in
many phrasing templates. The user turn is the bare question, as a newcomer types it: the
model's chat template (data.chat_template) adds the instruction line to arithmetic, so training
sees exactly the prompt the server builds. Word problems have one or two steps: a third split
step does not fit the model's 48-token answer (a split sum alone is about 18 tokens).
Arithmetic answers are the shipped split traces; sorting answers the sorted list like the
old sort task; reversing spells the word first, then reverses the letters
(`<reasoning>l-a-m-p</reasoning>\\n<answer>p-m-a-l</answer>`), because a word's letters are
hidden inside BPE pieces and the spelled form is a permutation the model already does.

Held out by phrasing: templates in `HELD_OUT` never produce a training item, so a test set
drawn from them measures whether the model learned the skill or the sentence. The hand-written
newcomer questions (assets/data/newcomer_test.jsonl) are never produced as training items
either, whatever their template.
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass
from pathlib import Path

from .arithmetic import OPS, operands, render_step
from .demo_tasks import WORDS
from .example import COPY, ONE_STEP, TWO_STEPS, TrainExample, boxed_answer
from .phrasing_templates import (BARE, CHAT, CHAT_REPLY, HELD_OUT, NAMES, PLACES, REVERSE, SORT,
                                 STORIES, STORY_ITEMS, STORY_GROUPS)

NEWCOMER_FILE = Path(__file__).resolve().parent.parent / "assets" / "data" / "newcomer_test.jsonl"
EXTRA_WORDS = ["garden", "planet", "window", "pencil", "orange", "yellow", "summer", "winter", "candle",
               "basket", "rabbit", "monkey", "spoon", "shoe", "hat", "sock", "bell", "drum", "kite",
               "nest", "duck", "goat", "lion", "seal", "crab", "corn", "rice", "soup", "jam", "egg",
               "cup", "pen", "box", "key", "map", "bus", "car", "road", "hill", "lake", "sand",
               "wind", "fire", "gold", "salt", "rock", "wall", "desk", "bed", "coat"]
REVERSE_WORDS = WORDS + EXTRA_WORDS
TRACE_STYLE = "split"  # the shipped model's traces
KINDS = ("bare", "story", "sort", "reverse", "chat")
# Newcomer-set kinds of the held-out rows (chat has no gold answer to score).
NEWCOMER_KIND = {"bare": "arithmetic", "story": "word_problem", "sort": "sort", "reverse": "reverse"}


@dataclass(frozen=True)
class Phrased:
    """One item: its template's id, kind and level, the question and the answer."""

    template: str
    kind: str
    level: int
    question: str
    answer: str
    gold: str  # the bare answer a newcomer row holds: a number, a sorted list, a reversed word


OP_KIND = {"+": "add", "-": "sub", "*": "mul", "/": "div"}


def _numbers(op: str, rng: random.Random) -> tuple[int, int]:
    """`a op b` from the arithmetic task's ranges (`arithmetic.operands`), so a new phrasing
    asks a fact the model already knows rather than new tens tables (measured: this alone did
    not stop the drop in held-out arithmetic, model card). A sum comes in either order
    (`12 + 30` as often as a person writes the small number first); a quotient is `b*q / b`."""
    a, b = operands(OP_KIND[op], rng)
    if op == "+" and rng.random() < 1 / 3:
        return b, a
    if op == "/":
        return a * b, a
    return a, b


def _second(op: str, first: int, rng: random.Random) -> int:
    """The second step's operand (`first op c`), in the ranges of the two-step arithmetic kinds."""
    return rng.randint(1, 20) if op == "+" else rng.randint(1, min(20, first - 1))


def _trace(steps: list[tuple[int, str, int]]) -> tuple[str, int]:
    result = OPS[steps[-1][1]](steps[-1][0], steps[-1][2])
    return " ".join(render_step(a, op, b, style=TRACE_STYLE) for a, op, b in steps), result


def _bare(template: str, rng: random.Random) -> Phrased:
    texts = BARE[template]
    op = rng.choice(sorted(texts))
    a, b = _numbers(op, rng)
    words = {"+": ["plus"], "-": ["minus"], "*": ["times", "multiplied by"], "/": ["divided by"]}[op]
    question = texts[op].format(a=a, b=b, sym=op, word=rng.choice(words))
    reasoning, result = _trace([(a, op, b)])
    return Phrased(template, "bare", ONE_STEP, question, boxed_answer(reasoning, str(result)), str(result))


def _story(template: str, rng: random.Random) -> Phrased:
    text, ops = STORIES[template]
    name, pron = rng.choice(NAMES)
    item = rng.choice(STORY_ITEMS)
    group, groups = rng.choice(STORY_GROUPS)
    # *: a groups of b; /: a shared by b; + and -: a and b; a second step adds or takes c.
    a, b = _numbers(ops[0], rng)
    values = {"a": a, "b": b}
    steps = [(a, ops[0], b)]
    if len(ops) == 2:
        first = OPS[ops[0]](a, b)
        if ops[1] == "-" and first < 2:  # nothing left to take away: redraw the whole story
            return _story(template, rng)
        values["c"] = _second(ops[1], first, rng)
        steps.append((first, ops[1], values["c"]))
    question = text.format(name=name, Pron=pron.capitalize(), his={"he": "his", "she": "her"}[pron],
                           item=item, group=group, groups=groups, place=rng.choice(PLACES), **values)
    reasoning, result = _trace(steps)
    level = ONE_STEP if len(ops) == 1 else TWO_STEPS
    return Phrased(template, "story", level, question, boxed_answer(reasoning, str(result)), str(result))


def _sort(template: str, rng: random.Random) -> Phrased:
    values = [rng.randint(0, 99) for _ in range(rng.randint(3, 5))]
    answer = ", ".join(map(str, sorted(values)))
    question = SORT[template].format(list=", ".join(map(str, values)))
    return Phrased(template, "sort", ONE_STEP, question, answer, answer)


def _reverse(template: str, rng: random.Random) -> Phrased:
    word = rng.choice(REVERSE_WORDS)
    answer = f"<reasoning>{'-'.join(word)}</reasoning>\n<answer>{'-'.join(reversed(word))}</answer>"
    return Phrased(template, "reverse", ONE_STEP, REVERSE[template].format(w=word), answer, word[::-1])


def _chat(template: str, rng: random.Random) -> Phrased:
    return Phrased(template, "chat", COPY, CHAT[template], CHAT_REPLY, "")


BUILDERS = {"bare": (BARE, _bare), "story": (STORIES, _story), "sort": (SORT, _sort),
            "reverse": (REVERSE, _reverse), "chat": (CHAT, _chat)}


def templates(kind: str, split: str = "train") -> list[str]:
    """The template ids of `kind` in `split` (test: the held-out phrasings)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    return [t for t in BUILDERS[kind][0] if (t in HELD_OUT) == (split == "test")]


@functools.cache
def newcomer_questions() -> frozenset[str]:
    """The hand-written newcomer questions, which no training item may be."""
    if not NEWCOMER_FILE.is_file():
        return frozenset()
    lines = NEWCOMER_FILE.read_text().splitlines()
    return frozenset(json.loads(line)["question"] for line in lines if line.strip())


def sample(rng: random.Random, kind: str, split: str = "train", level: int | None = None) -> Phrased:
    """An item of `kind` from a template of `split`, at `level` when given."""
    names = templates(kind, split)
    if not names:
        raise ValueError(f"no {kind} phrasings in the {split} split")
    for _ in range(1000):
        item = BUILDERS[kind][1](rng.choice(names), rng)
        if level is not None and item.level != level:
            continue
        if split == "test" or item.question not in newcomer_questions():
            return item
    raise ValueError(f"no {kind} phrasing at level {level}")


# The mixture's two tasks, so a run weighs arithmetic and the rest separately; by level:
# chat is recall (0), a sort, a reversal, a bare sum or a one-step story one step (1), a
# two-step story two (2).
TASK_KINDS = {
    "phrased": {ONE_STEP: ("bare", "story"), TWO_STEPS: ("story",)},
    "phrased_demo": {COPY: ("chat",), ONE_STEP: ("sort", "reverse")},
}


def sample_example(rng: random.Random, level: int | None = None, task: str = "phrased") -> TrainExample:
    """A training example of `task`; the prompt is the bare question, as a user types it (the
    chat template adds the instruction line)."""
    by_level = TASK_KINDS[task]
    level = rng.choice(sorted(by_level)) if level is None else level
    if level not in by_level:
        raise ValueError(f"{task} has no items at level {level}")
    item = sample(rng, rng.choice(by_level[level]), "train", level)
    return TrainExample(item.question, item.answer, task, item.level)


def make_test_set(n: int, seed: int = 1234, split: str = "test") -> list[dict]:
    """`n` distinct rows in the newcomer layout `{"kind", "question", "answer"}`, so
    `evotoken eval --task newcomer --data FILE` scores them: from the held-out templates only,
    or with `split="train"` from the trained templates (seen phrasings, fresh numbers that a
    training draw may also have made), the pair that says whether the model learned the skill
    or the sentence."""
    rng = random.Random(seed)
    kinds = list(NEWCOMER_KIND)
    rows, seen = [], set()
    for _ in range(200 * n + 1000):
        if len(rows) == n:
            return rows
        item = sample(rng, kinds[len(rows) % len(kinds)], split)
        if item.question not in seen:
            seen.add(item.question)
            rows.append({"kind": NEWCOMER_KIND[item.kind], "question": item.question, "answer": item.gold})
    raise ValueError(f"could not find {n} distinct phrased items of the {split} templates")
