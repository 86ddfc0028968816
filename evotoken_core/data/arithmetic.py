"""Templated arithmetic word problems, GSM8K style: the demo model's main task.

Designed for what a few-million-parameter model can learn (see the calibration note):
every number stays below 1000 so it is one token, products are small times tables, and the
last addition or subtraction always has a small operand (at most 20), because that final
step of two large numbers is where the measured errors were. The curriculum goes from
copying a number out of the question (level 0) to one operation (level 1) to two (level 2).

Sums and differences are written by place value: `72 + 14 = 80 + 6 = 86.` (tens with tens,
ones with ones, then the two put together). The first model, trained on bare `72 + 14 = 86.`,
got 99% of its products (a 144-fact times table) but only 20% of its sums: read as whole-number
tokens, a + b with a up to 144 is a table of thousands of facts. Split by place value, every
sum is three lookups in tables of at most a few hundred entries, each seen in every sum.
Measured: a second pretraining phase on these traces took held-out accuracy from 10.7% to 19.3%,
with the tens right 92% of the time and the ones 24%. A digit-token model trained as long got
the ones no better (29%), so the ones digit is hard to learn in either vocabulary (model card).
`place_value=False` gives the bare traces (the tokenizer corpus and the first pretraining phase
of the shipped model used them).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .example import COPY, ONE_STEP, TWO_STEPS, TrainExample, boxed_answer, wants_split

PEOPLE = [("Tom", "he"), ("Anna", "she"), ("Ben", "he"), ("Lily", "she"), ("Sam", "he"),
          ("Mia", "she"), ("Max", "he"), ("Emma", "she"), ("Leo", "he"), ("Zoe", "she")]
ITEMS = ["apples", "pens", "cookies", "marbles", "books", "stickers", "eggs", "cards",
         "shells", "coins"]
GROUPS = ["bags", "boxes", "packs", "jars", "baskets"]


@dataclass(frozen=True)
class Problem:
    """One word problem: the question, the trace steps and the result."""

    key: str
    level: int
    question: str
    steps: list[str | tuple[int, str, int]]  # a sentence, or (a, op, b) for `a op b = c.`
    result: int
    style: str = "place_value"

    @property
    def reasoning(self) -> str:
        return " ".join(s if isinstance(s, str) else render_step(*s, style=self.style)
                        for s in self.steps)

    def answer(self) -> str:
        return boxed_answer(self.reasoning, str(self.result))

    def gsm8k_answer(self) -> str:
        """GSM8K's own layout: worked steps, then `#### N`."""
        return f"{self.reasoning}\n#### {self.result}"


OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a // b}


# How a sum or difference is written (products and quotients are always `a op b = c.`).
TRACE_STYLES = ("direct", "place_value", "split")


def render_step(a: int, op: str, b: int, style: str = "place_value") -> str:
    """`a op b = c.` in one of TRACE_STYLES:

    - direct: `72 + 14 = 86.`
    - place_value: tens and ones first, `72 + 14 = 80 + 6 = 86.`, `72 - 14 = 60 - 2 = 58.`
      (tens 70 - 10, ones 2 - 4);
    - split: each operand split into tens and ones first, so that the two ones digits stand
      side by side, and written without spaces: `72+14=70+10+2+4=80+6=86.`,
      `72-14=70-10+2-4=60-2=58.`, `6*12=72.` (the demo tokenizer spends a space token before
      every spaced number, so the spaced split trace would need 62 answer tokens; this needs 46).

    A step whose tens part is 0 (`7 + 4 = 11.`) is a ones fact already and stays direct."""
    if style not in TRACE_STYLES:
        raise ValueError(f"unknown trace style {style!r}; choose one of {', '.join(TRACE_STYLES)}")
    c = OPS[op](a, b)
    tens = OPS[op](a - a % 10, b - b % 10) if op in "+-" else 0
    ones = OPS[op](a % 10, b % 10) if op in "+-" else 0
    sign = "+" if ones >= 0 else "-"
    if style == "split":
        if tens <= 0:
            return f"{a}{op}{b}={c}."
        return f"{a}{op}{b}={a - a % 10}{op}{b - b % 10}+{a % 10}{op}{b % 10}={tens}{sign}{abs(ones)}={c}."
    if style == "direct" or tens <= 0:
        return f"{a} {op} {b} = {c}."
    return f"{a} {op} {b} = {tens} {sign} {abs(ones)} = {c}."


def _cap(word: str) -> str:
    return word[0].upper() + word[1:]


# Each kind: numbers sampler and a builder (numbers, wording rng) -> (question, steps, result).
Builder = Callable[[tuple[int, ...], random.Random], tuple[str, list[str], int]]


def _who(rng: random.Random) -> tuple[str, str, str]:
    name, pron = rng.choice(PEOPLE)
    other = rng.choice([p for p, _ in PEOPLE if p != name])
    return name, pron, other


def _copy(n, rng):
    a, b, pick = n
    name, _, _ = _who(rng)
    x, y = rng.sample(ITEMS, 2)
    asked, value = (x, a) if pick == 0 else (y, b)
    q = f"{name} has {a} {x} and {b} {y}. How many {asked} does {name} have?"
    return q, [f"{name} has {value} {asked}."], value


def _add(n, rng):
    a, b = n
    name, pron, _ = _who(rng)
    item = rng.choice(ITEMS)
    q = f"{name} has {a} {item}. {_cap(pron)} buys {b} more. How many {item} does {name} have now?"
    return q, [(a, "+", b)], a + b


def _sub(n, rng):
    a, b = n
    name, _, other = _who(rng)
    item = rng.choice(ITEMS)
    q = f"{name} has {a} {item} and gives {b} to {other}. How many {item} does {name} have left?"
    return q, [(a, "-", b)], a - b


def _mul(n, rng):
    a, b = n
    name, _, _ = _who(rng)
    item, group = rng.choice(ITEMS), rng.choice(GROUPS)
    q = f"{name} has {a} {group} with {b} {item} in each. How many {item} does {name} have?"
    return q, [(a, "*", b)], a * b


def _div(n, rng):
    b, per = n
    a = b * per
    name, _, _ = _who(rng)
    item = rng.choice(ITEMS)
    q = f"{name} shares {a} {item} equally among {b} friends. How many {item} does each friend get?"
    return q, [(a, "/", b)], per


def _mul_add(n, rng):
    a, b, c = n
    name, pron, _ = _who(rng)
    item, group = rng.choice(ITEMS), rng.choice(GROUPS)
    p = a * b
    q = (f"{name} has {a} {group} with {b} {item} in each. {_cap(pron)} also has {c} more {item}. "
         f"How many {item} does {name} have in all?")
    return q, [(a, "*", b), (p, "+", c)], p + c


def _mul_sub(n, rng):
    a, b, c = n
    name, _, other = _who(rng)
    item, group = rng.choice(ITEMS), rng.choice(GROUPS)
    p = a * b
    q = (f"{name} has {a} {group} with {b} {item} in each and gives {c} {item} to {other}. "
         f"How many {item} does {name} have left?")
    return q, [(a, "*", b), (p, "-", c)], p - c


def _add_mul(n, rng):
    a, b, c = n
    name, _, _ = _who(rng)
    x, y = rng.sample(ITEMS, 2)
    group = rng.choice(GROUPS)
    s = a + b
    q = (f"{name} has {c} {group}. Each has {a} {x} and {b} {y}. "
         f"How many things are in the {group} in all?")
    return q, [(a, "+", b), (s, "*", c)], s * c


def _add_add(n, rng):
    a, b, c = n
    name, pron, other = _who(rng)
    item = rng.choice(ITEMS)
    q = (f"{name} has {a} {item}. {_cap(pron)} buys {b} more and gets {c} from {other}. "
         f"How many {item} does {name} have now?")
    return q, [(a, "+", b), (a + b, "+", c)], a + b + c


def _add_sub(n, rng):
    a, b, c = n
    name, pron, other = _who(rng)
    item = rng.choice(ITEMS)
    q = (f"{name} has {a} {item}. {_cap(pron)} buys {b} more and gives {c} to {other}. "
         f"How many {item} does {name} have now?")
    return q, [(a, "+", b), (a + b, "-", c)], a + b - c


def _div_add(n, rng):
    b, per, c = n
    a = b * per
    name, _, _ = _who(rng)
    item = rng.choice(ITEMS)
    q = (f"{name} shares {a} {item} equally among {b} friends. Each friend already had {c} {item}. "
         f"How many {item} does each friend have now?")
    return q, [(a, "/", b), (per, "+", c)], per + c


def operands(kind: str, rng: random.Random) -> tuple[int, ...]:
    """The numbers of one `kind` item: the ranges the model learns its tables in (a sum's second
    operand is at most 20, a product's factors at most 12)."""
    r = rng.randint
    if kind == "copy":
        return (r(2, 200), r(2, 200), r(0, 1))
    if kind == "add":
        return (r(1, 100), r(1, 20))
    if kind == "sub":
        a = r(10, 120)
        return (a, r(2, min(20, a - 1)))
    if kind in ("mul", "div"):
        return (r(2, 12), r(2, 12))
    if kind == "mul_add":
        return (r(2, 12), r(2, 12), r(1, 20))
    if kind == "mul_sub":
        a, b = r(2, 12), r(2, 12)
        return (a, b, r(2, min(20, a * b - 1)))
    if kind == "add_mul":
        return (r(1, 10), r(1, 10), r(2, 9))
    if kind == "add_add":
        return (r(1, 100), r(1, 20), r(1, 20))
    if kind == "add_sub":
        a, b = r(1, 100), r(1, 20)
        most = min(20, a + b - 1)  # what is given away leaves at least 1
        return (a, b, r(2, most) if most >= 2 else 1)
    if kind == "div_add":
        return (r(2, 9), r(2, 12), r(1, 20))
    raise KeyError(kind)


KINDS: dict[str, tuple[int, Builder]] = {
    "copy": (COPY, _copy),
    "add": (ONE_STEP, _add), "sub": (ONE_STEP, _sub), "mul": (ONE_STEP, _mul), "div": (ONE_STEP, _div),
    "mul_add": (TWO_STEPS, _mul_add), "mul_sub": (TWO_STEPS, _mul_sub), "add_mul": (TWO_STEPS, _add_mul),
    "add_add": (TWO_STEPS, _add_add), "add_sub": (TWO_STEPS, _add_sub), "div_add": (TWO_STEPS, _div_add),
}


def kinds_at(level: int) -> list[str]:
    return [k for k, (lvl, _) in KINDS.items() if lvl == level]


def sample_problem(rng: random.Random, level: int, split: str = "train", style: str = "place_value") -> Problem:
    """A problem of `level` from `split`; resamples until the numbers fall in that split.
    `style` (TRACE_STYLES) changes only the trace's wording, never the problem or the split."""
    kinds = kinds_at(level)
    if not kinds:
        raise ValueError(f"no arithmetic problems at level {level}")
    while True:
        kind = rng.choice(kinds)
        numbers = operands(kind, rng)
        key = f"arith:{kind}:{','.join(map(str, numbers))}"
        if wants_split(key, split):
            question, steps, result = KINDS[kind][1](numbers, rng)
            return Problem(key, level, question, steps, result, style)


def sample_example(rng: random.Random, level: int, style: str = "place_value") -> TrainExample:
    p = sample_problem(rng, level, "train", style)
    return TrainExample(p.question, p.answer(), "arith", level)
