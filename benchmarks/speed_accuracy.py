"""Speed against accuracy for each opt-in speed-up, on held-out eval sets (Fast-dLLM's table).

    python -m benchmarks.speed_accuracy --task arith --threads 1 --thresholds 0.7,0.9
    python -m benchmarks.speed_accuracy --model DIR --task arith,countdown --limit 128 --json

Every `evotoken eval` flag applies (model, data, limits, decoding settings, batch size). One
model load, then for each decoding mode the same items run under each configuration, one after
the other on the same machine:

- `exact, fixed steps`: the published loop's schedule (no early end): the speed baseline;
- `exact`: early end-of-text exit, which leaves every answer unchanged;
- `threshold T`: confidence-threshold parallel unmasking (plus early end);
- `threshold T, stable`: the same, passing only candidates the previous step proposed too;
- `prefix cache` / `dual cache`: the approximate K/V caches (plus early end);
- `prefix cache, refresh R` / `dual cache, refresh R` (`--cache-refreshes`): the caches with the
  whole canvas recomputed every R-th step of a block too;
- `prefix cache, guard D` / `dual cache, guard D` (`--cache-guards`): the caches with the margin
  guard, which recomputes a step exactly when one of its decisions was closer than D (log-odds);
- `dual cache + threshold T`: both.

Per row: accuracy, its change against exact decoding in points with a paired bootstrap 95% CI
and an exact McNemar p over the same items, answers identical to exact decoding, mean forward passes, answer tokens per second (tokens up to the end-of-text), seconds
per item and the speed-up against the fixed-step baseline. Rows of one mode are only comparable
within one run: they share the machine's load.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

from evotoken_core.eval.cli import (EvalError, base_settings, configure_parser, make_generator, recommended_decoding,
                                    task_files)
from evotoken_core.eval.datasets import DatasetError, load_items
from evotoken_core.eval.harness import RunResult, evaluate_task, plan_runs
from evotoken_core.eval.paired import compare
from evotoken_core.flags import comma_list


@dataclass(frozen=True)
class Config:
    name: str
    changes: dict


def configs(thresholds: list[float], refreshes: list[int] = (), guards: list[float] = ()) -> list[Config]:
    off = {"cache": "none", "threshold": None, "cache_refresh": 0, "cache_guard": 0.0, "threshold_stable": False}
    rows = [Config("exact, fixed steps", off | {"early_end": False}), Config("exact", off)]
    rows += [Config(f"threshold {t:g}", off | {"threshold": t}) for t in thresholds]
    rows += [Config(f"threshold {t:g}, stable", off | {"threshold": t, "threshold_stable": True}) for t in thresholds]
    for cache in ("prefix", "dual"):
        rows.append(Config(f"{cache} cache", off | {"cache": cache}))
        rows += [Config(f"{cache} cache, refresh {r}", off | {"cache": cache, "cache_refresh": r}) for r in refreshes]
        rows += [Config(f"{cache} cache, guard {g:g}", off | {"cache": cache, "cache_guard": g}) for g in guards]
    rows += [Config(f"dual cache + threshold {t:g}", off | {"cache": "dual", "threshold": t}) for t in thresholds]
    return rows


def answer_tokens(tokenizer, result: RunResult) -> int:
    return sum(len(tokenizer(r["output"], add_special_tokens=False).input_ids) for r in result.records)


def measure(args) -> list[dict]:
    base = base_settings(args, recommended_decoding(args))
    datasets = [(task, load_items(task, path, args.limit)) for task, path in task_files(args)]
    generator, model_ref = make_generator(args)
    tokenizer = generator.tokenizer
    rows = []
    for task, items in datasets:
        for run in plan_runs(args.decoding, args.alpha_soft_mask[:1]):
            exact: RunResult | None = None
            baseline_s = None
            for config in configs(args.thresholds, args.cache_refreshes, args.cache_guards):
                settings = base.with_(**config.changes)
                start = time.perf_counter()
                (result,) = evaluate_task(task, items, [run], settings, generator)
                seconds = time.perf_counter() - start
                if config.name == "exact":
                    exact = result
                baseline_s = baseline_s or seconds
                paired = None if exact is None else compare(
                    [r["correct"] for r in result.records], [r["correct"] for r in exact.records],
                    [r["output"] for r in result.records], [r["output"] for r in exact.records])
                same = None if paired is None else paired.same_output
                tokens = answer_tokens(tokenizer, result)
                rows.append({
                    "task": task, "mode": run.mode, "alpha": run.alpha, "config": config.name,
                    "accuracy": result.accuracy, "n": result.n,
                    "delta_points": None if exact is None else 100 * (result.accuracy - exact.accuracy),
                    "same_as_exact": same, "mean_nfe": result.mean_nfe,
                    "ci_points": None if paired is None else [100 * paired.ci_low, 100 * paired.ci_high],
                    "mcnemar_p": None if paired is None else paired.mcnemar_p,
                    "discordant": None if paired is None else [paired.only_a, paired.only_b],
                    "tokens_per_s": tokens / seconds, "s_per_item": seconds / max(1, result.n),
                    "speedup": baseline_s / seconds, "model": model_ref,
                })
                if not args.no_progress:
                    print(f"{task} {run.mode} {config.name}: {100 * result.accuracy:.1f}% "
                          f"{tokens / seconds:.1f} tok/s", file=sys.stderr)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| task | mode | configuration | accuracy | vs exact (95% paired CI) | McNemar p | same as exact "
             "| forwards/answer | answer tok/s | s/item | speed-up |", "|" + "---|" * 11]
    for r in rows:
        delta = "" if r["delta_points"] is None else f"{r['delta_points']:+.1f}"
        if r.get("ci_points") is not None:
            delta += f" [{r['ci_points'][0]:+.1f}, {r['ci_points'][1]:+.1f}]"
        p = "" if r.get("mcnemar_p") is None else f"{r['mcnemar_p']:.2g}"
        same = "" if r["same_as_exact"] is None else f"{r['same_as_exact']}/{r['n']}"
        lines.append(f"| {r['task']} | {r['mode']} | {r['config']} | {100 * r['accuracy']:.1f}% | {delta} | {p} "
                     f"| {same} | {r['mean_nfe']:.1f} | {r['tokens_per_s']:.1f} | {r['s_per_item']:.3f} "
                     f"| {r['speedup']:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed_accuracy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    configure_parser(parser)
    parser.add_argument("--thresholds", type=comma_list(float), default=[0.9],
                        help="confidence thresholds to try, alone and with the dual cache")
    parser.add_argument("--cache-refreshes", type=comma_list(int), default=[],
                        help="cache_refresh intervals to try with each cache, e.g. 4,8")
    parser.add_argument("--cache-guards", type=comma_list(float), default=[],
                        help="cache_guard margins (log-odds) to try with each cache, e.g. 0.25,1")
    parser.set_defaults(batch_size=1)
    args = parser.parse_args(argv)
    try:
        rows = measure(args)
    except (EvalError, DatasetError) as error:
        print(f"speed_accuracy: error: {error}", file=sys.stderr)
        return 2
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "speed_accuracy.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(json.dumps(rows) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
