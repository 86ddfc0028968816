"""Paired comparison of two decodings or models scored on the same items.

Two runs over the same items are not independent samples: most items are right (or wrong)
under both, and only the items where they disagree carry information about which is better.
So the tests here use the pairs:

- exact McNemar test: under "no difference", each discordant item (right in one run only)
  is equally likely to favour either run, so the count favouring A is Binomial(b + c, 1/2);
  the two-sided p-value sums the probabilities of all outcomes no more likely than the one seen;
- paired bootstrap: items resampled with replacement, both runs' verdicts kept together,
  for a percentile interval of the accuracy difference A − B;
- how often the two runs wrote the same answer (the whole output, and the extracted answer).

Standalone, over `generations.jsonl` files that `evotoken eval --out DIR` writes:

    python -m evotoken_core.eval.paired A.jsonl B.jsonl [--a-mode evotoken --a-alpha 0.7]
        [--b-mode hard_mask] [--task arith] [--json]

A file holding several runs (modes, alphas, tasks) needs the selectors to pick one run from it;
items are matched on (task, index).
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for `b` items right only in A and `c` right only in B."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    probs = [math.comb(n, k) / 2**n for k in range(n + 1)]
    seen = probs[b]
    # outcomes at most as likely as the observed one (a relative tolerance guards float ties)
    return min(1.0, sum(p for p in probs if p <= seen * (1 + 1e-9)))


def bootstrap_ci(a: Sequence[bool], b: Sequence[bool], resamples: int = 10_000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile interval of mean(a) − mean(b) over item resamples that keep the pairs."""
    if len(a) != len(b) or not a:
        raise ValueError("need two equally long, non-empty lists of verdicts")
    diffs = [int(x) - int(y) for x, y in zip(a, b)]
    n = len(diffs)
    rng = random.Random(seed)
    stats = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    lo = stats[int(math.floor((1 - level) / 2 * resamples))]
    hi = stats[min(resamples - 1, int(math.ceil((1 + level) / 2 * resamples)) - 1)]
    return lo, hi


@dataclass
class PairedComparison:
    n: int
    accuracy_a: float
    accuracy_b: float
    difference: float          # accuracy A − B
    both_right: int
    only_a: int                # right in A only (b of McNemar)
    only_b: int                # right in B only (c)
    both_wrong: int
    mcnemar_p: float
    ci_low: float
    ci_high: float
    ci_level: float
    same_output: int | None = None     # identical whole answers (when outputs are given)
    same_extracted: int | None = None  # identical extracted final answers

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self, name_a: str = "A", name_b: str = "B") -> str:
        same = "" if self.same_output is None else (
            f"; identical answers {self.same_output}/{self.n}, identical final answers {self.same_extracted}/{self.n}")
        return (f"{name_a} {100 * self.accuracy_a:.1f} % vs {name_b} {100 * self.accuracy_b:.1f} % "
                f"(n {self.n}): difference {100 * self.difference:+.1f} points, "
                f"{100 * self.ci_level:.0f} % paired bootstrap CI [{100 * self.ci_low:+.1f}, {100 * self.ci_high:+.1f}]; "
                f"discordant {self.only_a} for {name_a} / {self.only_b} for {name_b}, exact McNemar p = {self.mcnemar_p:.3g}"
                f"{same}")


def compare(a: Sequence[bool], b: Sequence[bool], outputs_a: Sequence[str] | None = None,
            outputs_b: Sequence[str] | None = None, extracted_a: Sequence | None = None,
            extracted_b: Sequence | None = None, resamples: int = 10_000, level: float = 0.95,
            seed: int = 0) -> PairedComparison:
    """Paired statistics of two lists of verdicts on the same items, in the same order."""
    if len(a) != len(b) or not a:
        raise ValueError("need two equally long, non-empty lists of verdicts")
    n = len(a)
    both = sum(1 for x, y in zip(a, b) if x and y)
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    lo, hi = bootstrap_ci(a, b, resamples, level, seed)
    same_out = same_ext = None
    if outputs_a is not None and outputs_b is not None:
        same_out = sum(x == y for x, y in zip(outputs_a, outputs_b))
    if extracted_a is not None and extracted_b is not None:
        same_ext = sum(x == y and x is not None for x, y in zip(extracted_a, extracted_b))
    return PairedComparison(n, sum(map(bool, a)) / n, sum(map(bool, b)) / n, (only_a - only_b) / n,
                            both, only_a, only_b, n - both - only_a - only_b, mcnemar_exact(only_a, only_b),
                            lo, hi, level, same_out, same_ext)


def load_run(path: str | Path, mode: str | None = None, alpha: float | None = None,
             task: str | None = None) -> dict[tuple[str, int], dict]:
    """(task, index) -> record of the one run of a generations file that the selectors pick."""
    records = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    picked = [r for r in records
              if (mode is None or r.get("mode") == mode)
              and (alpha is None or (r.get("alpha") is not None and abs(r["alpha"] - alpha) < 1e-9))
              and (task is None or r.get("task") == task)]
    runs = sorted({(r.get("task"), r.get("mode"), r.get("alpha")) for r in picked}, key=str)
    by_item: dict[tuple[str, int], dict] = {}
    for r in picked:
        key = (r["task"], int(r["index"]))
        if key in by_item:
            raise ValueError(f"{path}: item {key} appears in more than one run {runs}; "
                             "pick one with --*-mode/--*-alpha/--task")
        by_item[key] = r
    if not by_item:
        raise ValueError(f"{path}: no records match mode={mode} alpha={alpha} task={task}")
    return by_item


def compare_files(path_a: str | Path, path_b: str | Path, select_a: dict | None = None,
                  select_b: dict | None = None, resamples: int = 10_000, seed: int = 0) -> PairedComparison:
    """Paired comparison of the items two generations files share (selectors: mode, alpha, task)."""
    run_a, run_b = load_run(path_a, **(select_a or {})), load_run(path_b, **(select_b or {}))
    keys = sorted(run_a.keys() & run_b.keys())
    if not keys:
        raise ValueError("the two runs share no (task, index) items")
    ra, rb = [run_a[k] for k in keys], [run_b[k] for k in keys]
    return compare([bool(r["correct"]) for r in ra], [bool(r["correct"]) for r in rb],
                   [r.get("output") for r in ra], [r.get("output") for r in rb],
                   [r.get("extracted") for r in ra], [r.get("extracted") for r in rb],
                   resamples=resamples, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evotoken_core.eval.paired",
                                     description="Paired statistics of two runs over the same items.")
    parser.add_argument("a", help="generations.jsonl of run A")
    parser.add_argument("b", help="generations.jsonl of run B (may be the same file with other selectors)")
    for side in ("a", "b"):
        parser.add_argument(f"--{side}-mode", default=None, help=f"decoding mode of run {side.upper()}")
        parser.add_argument(f"--{side}-alpha", type=float, default=None, help=f"alpha of run {side.upper()}")
    parser.add_argument("--task", default=None, help="compare one task only")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        result = compare_files(args.a, args.b, {"mode": args.a_mode, "alpha": args.a_alpha, "task": args.task},
                               {"mode": args.b_mode, "alpha": args.b_alpha, "task": args.task},
                               args.resamples, args.seed)
    except (ValueError, OSError, KeyError, json.JSONDecodeError) as err:
        parser.exit(2, f"error: {err}\n")
    print(json.dumps(result.to_dict()) if args.json else result.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
