"""One training item, and the rule that keeps test problems out of training.

Every generator names a problem by a canonical key (its structure and numbers, not its
surface wording). A stable hash of that key puts the problem in the test or the train split,
so no wording change can leak a held-out problem into training and both splits come from the
same generator code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# Levels of the curriculum: copy a number, one operation, two operations.
COPY, ONE_STEP, TWO_STEPS = 0, 1, 2
LEVELS = (COPY, ONE_STEP, TWO_STEPS)

# One problem in this many (by key hash) is reserved for the test split.
TEST_EVERY = 8

# Every answer fits this many tokens of the demo tokenizer (the demo model decodes 48 or 64).
MAX_ANSWER_TOKENS = 48


@dataclass(frozen=True)
class TrainExample:
    """A prompt/answer pair. `prompt` is the bare question: render it with
    `evotoken_core.data.render_prompt(tokenizer, prompt, task)` so training and evaluation
    see the same chat text. `answer` carries no end tokens; the trainer appends
    `<|eot_id|>` and pads with `<|endoftext|>` the way LLaDA's SFT data does."""

    prompt: str
    answer: str
    task: str
    level: int


def is_test_key(key: str) -> bool:
    """True when the problem named by `key` belongs to the held-out test split.

    sha256 rather than `hash()` so the split is the same in every process and Python version.
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % TEST_EVERY == 0


def wants_split(key: str, split: str) -> bool:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    return is_test_key(key) == (split == "test")


def boxed_answer(reasoning: str, boxed: str) -> str:
    """The reference answer layout: a reasoning trace, then the boxed result."""
    return f"<reasoning>{reasoning}</reasoning>\n<answer>\\boxed{{{boxed}}}</answer>"
