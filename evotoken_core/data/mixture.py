"""The training mixture and the held-out test sets.

The trainer draws examples from a mixture of tasks and curriculum levels; both weight tables
are arguments so a curriculum can shift them over time (call `sample_train_example` with new
weights, or start a new `train_stream`). Test sets come out in the public datasets' own field
layouts so `evotoken eval` reads them with the same loaders as real GSM8K or Countdown files.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping

from . import arithmetic, countdown, demo_tasks, phrasings
from .example import LEVELS, TrainExample

# Arithmetic is the main task; Countdown is the paper's benchmark; demo tasks fill the playground.
DEFAULT_TASK_WEIGHTS = {"arith": 0.6, "countdown": 0.25, "demo": 0.15}
DEFAULT_LEVEL_WEIGHTS = {0: 0.2, 1: 0.3, 2: 0.5}
# The same arithmetic problems under three trace styles (see data.arithmetic.render_step).
ARITH_STYLES = {"arith": "place_value", "arith_direct": "direct", "arith_split": "split"}
# The same skills in everyday wordings, the bare question as the user turn (data.phrasings):
# "phrased" the arithmetic, "phrased_demo" sorting, reversing and out-of-scope chat.
TASK_LEVELS = {**{task: (0, 1, 2) for task in ARITH_STYLES}, "countdown": (1, 2), "demo": (0, 1),
               "phrased": (1, 2), "phrased_demo": (0, 1)}
TEST_TASKS = ("arith", "countdown", "demo", "phrased", "phrased_seen")


def _pick(rng: random.Random, weights: Mapping) -> object:
    keys = [k for k, w in weights.items() if w > 0]
    if not keys:
        raise ValueError("all weights are zero")
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def sample_train_example(
    rng: random.Random,
    level_mix: Mapping[int, float] | None = None,
    task_mix: Mapping[str, float] | None = None,
) -> TrainExample:
    """One training example: a task by `task_mix`, then a level by `level_mix` among the
    levels that task has (renormalised), so a copy-heavy curriculum still yields Countdown."""
    level_mix = DEFAULT_LEVEL_WEIGHTS if level_mix is None else level_mix
    task_mix = DEFAULT_TASK_WEIGHTS if task_mix is None else task_mix
    unknown = set(task_mix) - set(TASK_LEVELS)
    if unknown or set(level_mix) - set(LEVELS):
        raise ValueError(f"unknown tasks {sorted(unknown)} or levels {sorted(set(level_mix) - set(LEVELS))}")
    task = _pick(rng, task_mix)
    levels = {lvl: level_mix.get(lvl, 0.0) for lvl in TASK_LEVELS[task]}
    level = _pick(rng, levels) if any(w > 0 for w in levels.values()) else rng.choice(TASK_LEVELS[task])
    if task in ARITH_STYLES:
        return arithmetic.sample_example(rng, level, style=ARITH_STYLES[task])
    if task == "countdown":
        return countdown.sample_example(rng, level)
    if task in phrasings.TASK_KINDS:
        return phrasings.sample_example(rng, level, task)
    return demo_tasks.sample_example(rng, level)


def train_stream(
    seed: int,
    level_weights: Mapping[int, float] | None = None,
    task_weights: Mapping[str, float] | None = None,
) -> Iterator[TrainExample]:
    """An endless, reproducible stream of training examples."""
    rng = random.Random(seed)
    while True:
        yield sample_train_example(rng, level_weights, task_weights)


def make_test_set(task: str, n: int, seed: int = 1234) -> list[dict]:
    """`n` distinct held-out problems in public layouts.

    arith: GSM8K rows `{"question", "answer": "...\\n#### N"}`, two-step problems only.
    countdown: `{"input": "30,100,93", "output": "23"}`.
    demo: `{"task", "question", "answer"}` (sorting and reversing, scored by exact match).
    phrased: newcomer rows `{"kind", "question", "answer"}` from the held-out phrasings only
    (score with `evotoken eval --task newcomer --data phrased_test.jsonl`); phrased_seen: the
    same from the trained phrasings (`phrased_seen_test.jsonl`).
    """
    if task not in TEST_TASKS:
        raise ValueError(f"unknown test task {task!r}; choose one of {', '.join(TEST_TASKS)}")
    if task in ("phrased", "phrased_seen"):
        return phrasings.make_test_set(n, seed, "test" if task == "phrased" else "train")
    rng = random.Random(seed)
    rows: list[dict] = []
    seen: set[str] = set()
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > 200 * n + 1000:
            raise ValueError(f"could not find {n} distinct {task} test problems")
        if task == "arith":
            p = arithmetic.sample_problem(rng, 2, "test")
            uid, row = p.key, {"question": p.question, "answer": p.gsm8k_answer()}
        elif task == "countdown":
            shown, target, _, _, _ = countdown.sample_item(rng, "test")
            uid = countdown.key(shown, target)
            row = {"input": ",".join(map(str, shown)), "output": str(target)}
        else:
            name = rng.choice(demo_tasks.HELD_OUT_TASKS)
            q, a = demo_tasks.sample_demo(rng, name, "test")
            uid, row = q, {"task": name, "question": q, "answer": a}
        if uid not in seen:
            seen.add(uid)
            rows.append(row)
    return rows
