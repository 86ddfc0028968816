"""Writes the shipped held-out test sets, so they can be regenerated and checked.

    python -m evotoken_core.data.export [DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .mixture import make_test_set

# (task, rows, file name, seed); the seeds are fixed so the shipped files are reproducible byte
# for byte.
TEST_SEED = 2026
TEST_SETS = [
    ("arith", 300, "arith_test.jsonl", TEST_SEED),
    ("countdown", 256, "countdown_test.jsonl", TEST_SEED),
    ("demo", 60, "demo_test.jsonl", TEST_SEED),
    ("phrased", 80, "phrased_test.jsonl", TEST_SEED),
    ("phrased_seen", 80, "phrased_seen_test.jsonl", TEST_SEED),
]
# Confirmation sets: drawn from the same held-out split with another seed, and disjoint from the
# test sets above, for checking a choice made after seeing test scores (a checkpoint, an alpha)
# on items that played no part in it. Score with `evotoken eval --task countdown --data FILE`.
CONFIRM_SETS = [("countdown", 512, "countdown_confirm.jsonl", 2027)]


def render_test_set(task: str, n: int, seed: int) -> str:
    return "".join(json.dumps(row) + "\n" for row in make_test_set(task, n, seed=seed))


def write_test_sets(out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for task, n, name, seed in TEST_SETS + CONFIRM_SETS:
        (out / name).write_text(render_test_set(task, n, seed), encoding="utf-8")
        written.append(out / name)
    return written


if __name__ == "__main__":
    default = Path(__file__).resolve().parent.parent / "assets" / "data"
    for path in write_test_sets(sys.argv[1] if len(sys.argv) > 1 else default):
        print(path)
