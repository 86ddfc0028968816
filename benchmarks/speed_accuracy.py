"""Speed against accuracy for each opt-in speed-up, on held-out eval sets (Fast-dLLM's table).

    python -m benchmarks.speed_accuracy --task arith --threads 1 --thresholds 0.7,0.9
    python -m benchmarks.speed_accuracy --model DIR --task arith,countdown --limit 128 --json

Every `evotoken eval` flag applies (model, data, limits, decoding settings, batch size). One
model load, then for each decoding mode the same items run under each configuration, one after
the other on the same machine:

- `exact, fixed steps`: the published loop's schedule (no early end): the speed baseline;
- `exact`: early end-of-text exit, which leaves every answer unchanged;
- `threshold T`: confidence-threshold parallel unmasking (plus early end);
- `prefix cache` / `dual cache`: the approximate K/V caches (plus early end);
- `dual cache + threshold T`: both.

Per row: accuracy, its change against exact decoding in points, answers identical to exact
decoding, mean forward passes, answer tokens per second (tokens up to the end-of-text), seconds
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
from evotoken_core.flags import comma_list


@dataclass(frozen=True)
class Config:
    name: str
    changes: dict


def configs(thresholds: list[float]) -> list[Config]:
    rows = [Config("exact, fixed steps", {"early_end": False, "cache": "none", "threshold": None}),
            Config("exact", {"cache": "none", "threshold": None})]
    rows += [Config(f"threshold {t:g}", {"cache": "none", "threshold": t}) for t in thresholds]
    rows += [Config("prefix cache", {"cache": "prefix", "threshold": None}),
             Config("dual cache", {"cache": "dual", "threshold": None})]
    rows += [Config(f"dual cache + threshold {t:g}", {"cache": "dual", "threshold": t}) for t in thresholds]
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
            for config in configs(args.thresholds):
                settings = base.with_(**config.changes)
                start = time.perf_counter()
                (result,) = evaluate_task(task, items, [run], settings, generator)
                seconds = time.perf_counter() - start
                if config.name == "exact":
                    exact = result
                baseline_s = baseline_s or seconds
                same = (None if exact is None else
                        sum(a["output"] == b["output"] for a, b in zip(result.records, exact.records)))
                tokens = answer_tokens(tokenizer, result)
                rows.append({
                    "task": task, "mode": run.mode, "alpha": run.alpha, "config": config.name,
                    "accuracy": result.accuracy, "n": result.n,
                    "delta_points": None if exact is None else 100 * (result.accuracy - exact.accuracy),
                    "same_as_exact": same, "mean_nfe": result.mean_nfe,
                    "tokens_per_s": tokens / seconds, "s_per_item": seconds / max(1, result.n),
                    "speedup": baseline_s / seconds, "model": model_ref,
                })
                if not args.no_progress:
                    print(f"{task} {run.mode} {config.name}: {100 * result.accuracy:.1f}% "
                          f"{tokens / seconds:.1f} tok/s", file=sys.stderr)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| task | mode | configuration | accuracy | vs exact | same as exact | forwards/answer "
             "| answer tok/s | s/item | speed-up |", "|" + "---|" * 10]
    for r in rows:
        delta = "" if r["delta_points"] is None else f"{r['delta_points']:+.1f}"
        same = "" if r["same_as_exact"] is None else f"{r['same_as_exact']}/{r['n']}"
        lines.append(f"| {r['task']} | {r['mode']} | {r['config']} | {100 * r['accuracy']:.1f}% | {delta} | {same} "
                     f"| {r['mean_nfe']:.1f} | {r['tokens_per_s']:.1f} | {r['s_per_item']:.3f} | {r['speedup']:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed_accuracy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    configure_parser(parser)
    parser.add_argument("--thresholds", type=comma_list(float), default=[0.9],
                        help="confidence thresholds to try, alone and with the dual cache")
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
