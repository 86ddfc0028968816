"""Local JSONL benchmark files in the public datasets' own field layouts.

Each loader turns a row into an `EvalItem`: the question the model sees (rendered later by
the shared prompt function) and what the scorer needs. A malformed row stops the load with
the file and line, since a silently skipped row would change the accuracy's denominator.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from evotoken_core.data.countdown import question as countdown_question

from .scoring import (gsm8k_reference, parse_number, predicted_answer, score_countdown, score_math,
                      score_numeric, shown_answer)

TASKS = ("arith", "countdown", "gsm8k", "math500", "svamp", "demo", "newcomer")
# The newcomer set: questions as a first-time user types them, with no instruction line (the
# model's chat template decides whether to add one), scored leniently on the answer's form.
NEWCOMER_KINDS = ("arithmetic", "word_problem", "sort", "reverse")


class DatasetError(ValueError):
    """A row of a dataset file does not have the task's layout."""


@dataclass(frozen=True)
class EvalItem:
    """One benchmark question: `question` for the prompt, `reference` (and for Countdown
    `numbers`) for the scorer; `index` is the row's position in the file."""

    task: str
    index: int
    question: str
    reference: str
    numbers: tuple[int, ...] = field(default=())
    kind: str = ""  # newcomer: one of NEWCOMER_KINDS

    def score(self, text: str) -> bool:
        """Whether the model's answer `text` is right under the task's reference rule."""
        if self.task == "newcomer":
            return score_newcomer(self.kind, text, self.reference)
        if self.task == "countdown":
            return score_countdown(text, list(self.numbers), float(self.reference))
        if self.task == "math500":
            return score_math(text, self.reference)
        if self.task == "demo":  # exact match of what the saved generations call its answer
            return predicted_answer(self.task, text) == self.reference
        return score_numeric(text, self.reference)


def score_newcomer(kind: str, text: str, reference: str) -> bool:
    """A newcomer's question is answered right in whatever form the reply takes: the boxed (or
    `<answer>`) part when there is one, else the whole reply. A number must be the only number
    there; a sorted list must hold exactly the reference's numbers in its order; a reversed
    word must be the reference's letters, with dashes, spaces and case ignored (`p-m-a-l`)."""
    shown = shown_answer(text)
    if kind == "sort":
        return re.findall(r"-?\d+", shown) == re.findall(r"-?\d+", reference)
    if kind == "reverse":
        return re.sub(r"[^a-z]", "", shown.lower()) == reference.lower()
    expected = parse_number(reference)
    return expected is not None and parse_number(shown) == expected


def _need(row: dict, names: tuple[str, ...], where: str) -> None:
    missing = [n for n in names if n not in row]
    if missing:
        raise DatasetError(f"{where}: missing field(s) {', '.join(missing)} (has {', '.join(row) or 'none'})")


def _item(task: str, index: int, row: dict, where: str) -> EvalItem:
    if task in ("arith", "gsm8k"):
        _need(row, ("question", "answer"), where)
        try:
            ref = gsm8k_reference(str(row["answer"]))
        except ValueError as error:
            raise DatasetError(f"{where}: {error}") from None
        if parse_number(ref) is None:
            raise DatasetError(f"{where}: '#### {ref}' is not a number")
        return EvalItem(task, index, str(row["question"]).strip(), ref)
    if task == "svamp":
        _need(row, ("Body", "Question", "Answer"), where)
        body, q = str(row["Body"]).strip(), str(row["Question"]).strip()
        sep = " " if body.endswith((".", "?", "!", ",")) else ". "
        return EvalItem(task, index, f"{body}{sep}{q}" if body else q, str(row["Answer"]))
    if task == "math500":
        _need(row, ("problem", "answer"), where)
        return EvalItem(task, index, str(row["problem"]).strip(), str(row["answer"]))
    if task == "countdown":
        _need(row, ("input", "output"), where)
        try:
            numbers = tuple(int(n) for n in str(row["input"]).split(","))
            target = int(str(row["output"]).strip())
        except ValueError:
            raise DatasetError(f"{where}: input must be comma-separated integers and output an integer "
                               f"(got {row['input']!r}, {row['output']!r})") from None
        return EvalItem(task, index, countdown_question(list(numbers), target), str(target), numbers)
    if task == "demo":
        _need(row, ("question", "answer"), where)
        return EvalItem(task, index, str(row["question"]), str(row["answer"]))
    if task == "newcomer":
        _need(row, ("kind", "question", "answer"), where)
        if row["kind"] not in NEWCOMER_KINDS:
            raise DatasetError(f"{where}: kind {row['kind']!r} is not one of {', '.join(NEWCOMER_KINDS)}")
        return EvalItem(task, index, str(row["question"]).strip(), str(row["answer"]), kind=row["kind"])
    raise DatasetError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def load_items(task: str, path: str | Path, limit: int | None = None) -> list[EvalItem]:
    """The first `limit` items (all when None) of a JSONL file; blank lines are skipped."""
    if task not in TASKS:
        raise DatasetError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file {str(path)!r} does not exist")
    items: list[EvalItem] = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if limit is not None and len(items) >= limit:
                break
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(f"{where}: not valid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise DatasetError(f"{where}: expected a JSON object, got {type(row).__name__}")
            items.append(_item(task, len(items), row, where))
    if not items:
        raise DatasetError(f"{path}: no rows")
    return items


def shipped_test_set(task: str) -> Path | None:
    """The held-out set shipped in the package for `task`, if there is one."""
    names = {"arith": "arith_test.jsonl", "countdown": "countdown_test.jsonl", "demo": "demo_test.jsonl",
             "newcomer": "newcomer_test.jsonl"}
    if task not in names:
        return None
    return Path(__file__).resolve().parent.parent / "assets" / "data" / names[task]
