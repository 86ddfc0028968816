"""The reference scoring rules, one per benchmark (see the spec's "Scoring").

- GSM8K, SVAMP and our arithmetic set: the first non-empty `\\boxed{}` (else the `<answer>`
  tag) read as a number, compared for exact numeric equality.
- MATH500: the last `\\boxed{}`, compared after LaTeX normalisation.
- Countdown: the last `\\boxed{}` expression must use exactly the given numbers, each once,
  and evaluate to the target within 1e-5.
"""

from __future__ import annotations

import re
from fractions import Fraction

from ..data.expression import countdown_correct
from .extract import answer_tag, first_boxed, last_boxed
from .math_normalize import math_equal

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:/\d+)?")
_TEXT = re.compile(r"\\(?:text|mbox|mathrm)\{([^{}]*)\}")
_DECORATION = re.compile(r"\\(?:!|,|;|%)|[$%]|\\\$")


def parse_number(text: str | None) -> Fraction | None:
    """A number written the way answers write it: `1,234`, `$17`, `17.0`, `17.`, `-3`, `3/4`,
    `\\frac{3}{4}`, or one number among words (`17 apples`). Several numbers: None, because
    picking one of them would credit an answer like `12 + 5 = 17` by luck."""
    if text is None:
        return None
    s = _DECORATION.sub(" ", _TEXT.sub(r" \1 ", text))
    s = re.sub(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}", r"\1/\2", s)
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    found = _NUMBER.findall(s)
    if len(found) != 1:
        return None
    try:
        value = Fraction(found[0])
    except (ValueError, ZeroDivisionError):
        return None
    return value


def gsm8k_reference(answer: str) -> str:
    """The number after `####` in a GSM8K answer field."""
    if "####" not in answer:
        raise ValueError("GSM8K answer has no '#### N' line")
    return answer.split("####")[-1].strip()


def numeric_prediction(text: str) -> str | None:
    """The GSM8K/SVAMP extraction: first non-empty box, else the answer tag."""
    boxed = first_boxed(text)
    return boxed if boxed is not None else answer_tag(text)


def score_numeric(text: str, reference: str | float | int) -> bool:
    predicted = parse_number(numeric_prediction(text))
    expected = parse_number(str(reference))
    return predicted is not None and expected is not None and predicted == expected


def score_math(text: str, reference: str) -> bool:
    return math_equal(last_boxed(text), reference)


def score_countdown(text: str, numbers: list[int], target: float) -> bool:
    expr = last_boxed(text)
    return countdown_correct(expr.strip() if expr is not None else None, numbers, target)


def shown_answer(text: str) -> str:
    """The part of a free-form reply that holds its answer: the boxed (or `<answer>`) part when
    there is one, else the whole reply (the newcomer questions' rule)."""
    shown = numeric_prediction(text)
    return text.strip() if shown is None else shown.strip()


def predicted_answer(task: str, text: str) -> str | None:
    """What the scorer read from `text`, for the saved generations: for the demo tasks, scored
    by exact match, the whole stripped reply."""
    if task in ("countdown", "math500"):
        return last_boxed(text)
    if task == "demo":
        return text.strip()
    if task == "newcomer":
        return shown_answer(text)
    return numeric_prediction(text)
