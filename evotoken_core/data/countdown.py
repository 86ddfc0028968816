"""Countdown with three numbers, in the reference benchmark's format.

Items are built backwards: pick three numbers from 1-100 and a two-operation expression over
them, keep it only if every intermediate value is a positive integer and the target lands in
1-100 (the public set's range). The trace shows the two operations in the order they are done
and the boxed expression is those same two operations with the first one in parentheses, so
the answer is a direct rewrite of the trace, which is the part a small model can learn.
"""

from __future__ import annotations

import itertools
import random
from fractions import Fraction

from .example import ONE_STEP, TWO_STEPS, TrainExample, boxed_answer, wants_split
from .expression import evaluate

OPS = "+-*/"
TARGET_RANGE = (1, 100)
NUMBER_RANGE = (1, 100)


def apply(op: str, x: int, y: int) -> int | None:
    """x op y when it is a positive integer, else None (the trace never shows fractions)."""
    if op == "+":
        value = x + y
    elif op == "-":
        value = x - y
    elif op == "*":
        value = x * y
    else:
        if y == 0 or x % y:
            return None
        value = x // y
    return value if value > 0 else None


def question(numbers: list[int], target: int) -> str:
    """The user-turn text for one item; evaluation builds it from `input`/`output` the same way."""
    return f"Numbers: {', '.join(map(str, numbers))}. Target: {target}."


def key(numbers: list[int], target: int) -> str:
    return f"countdown:{','.join(map(str, sorted(numbers)))}:{target}"


def _try_build(rng: random.Random):
    """One random attempt: (numbers as shown, target, trace steps, expression, level) or None."""
    a, b, c = (rng.randint(*NUMBER_RANGE) for _ in range(3))
    op1, op2 = rng.choice(OPS), rng.choice(OPS)
    s = apply(op1, a, b)
    if s is None:
        return None
    inner_first = rng.random() < 0.5  # (a op1 b) op2 c   or   c op2 (a op1 b)
    t = apply(op2, s, c) if inner_first else apply(op2, c, s)
    if t is None or not TARGET_RANGE[0] <= t <= TARGET_RANGE[1]:
        return None
    inner = f"({a} {op1} {b})"
    expr = f"{inner} {op2} {c}" if inner_first else f"{c} {op2} {inner}"
    second = f"{s} {op2} {c} = {t}." if inner_first else f"{c} {op2} {s} = {t}."
    steps = [f"{a} {op1} {b} = {s}.", second]
    shown = [a, b, c]
    rng.shuffle(shown)
    level = ONE_STEP if {op1, op2} <= {"+", "-"} else TWO_STEPS
    return shown, t, steps, expr, level


def sample_item(rng: random.Random, split: str = "train"):
    """(numbers, target, reasoning, expression, level) for a problem of `split`."""
    while True:
        built = _try_build(rng)
        if built is None:
            continue
        shown, target, steps, expr, level = built
        if wants_split(key(shown, target), split):
            return shown, target, " ".join(steps), expr, level


def sample_example(rng: random.Random, level: int | None = None) -> TrainExample:
    """A train example; with `level` only items of that level (1: + and - only, 2: any)."""
    while True:
        shown, target, reasoning, expr, item_level = sample_item(rng, "train")
        if level is None or item_level == level:
            return TrainExample(question(shown, target), boxed_answer(reasoning, expr),
                                "countdown", item_level)


def solve(numbers: list[int], target: int) -> str | None:
    """Some expression using each number once that equals `target` exactly, or None.

    Brute force over orders, operators and both tree shapes, in exact fractions: used to
    prove that shipped test items are reachable, independently of how they were generated.
    """
    goal = Fraction(target)
    for a, b, c in itertools.permutations(numbers, 3):
        for op1, op2 in itertools.product(OPS, repeat=2):
            for expr in (f"({a} {op1} {b}) {op2} {c}", f"{a} {op1} ({b} {op2} {c})"):
                if evaluate(expr) == goal:
                    return expr
    return None
