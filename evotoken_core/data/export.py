"""Writes the shipped held-out test sets, so they can be regenerated and checked.

    python -m evotoken_core.data.export [DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .mixture import make_test_set

# (task, rows, file name); the seed is fixed so the shipped files are reproducible byte for byte.
TEST_SETS = [("arith", 300, "arith_test.jsonl"), ("countdown", 256, "countdown_test.jsonl"),
             ("demo", 60, "demo_test.jsonl"), ("phrased", 80, "phrased_test.jsonl"),
             ("phrased_seen", 80, "phrased_seen_test.jsonl")]
TEST_SEED = 2026


def render_test_set(task: str, n: int) -> str:
    return "".join(json.dumps(row) + "\n" for row in make_test_set(task, n, seed=TEST_SEED))


def write_test_sets(out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for task, n, name in TEST_SETS:
        (out / name).write_text(render_test_set(task, n), encoding="utf-8")
        written.append(out / name)
    return written


if __name__ == "__main__":
    default = Path(__file__).resolve().parent.parent / "assets" / "data"
    for path in write_test_sets(sys.argv[1] if len(sys.argv) > 1 else default):
        print(path)
