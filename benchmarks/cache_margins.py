"""Why a K/V cache changes answers: its error against the margins the decoding rule decides by.

    python -m benchmarks.cache_margins --task arith --limit 30 --threads 1 \\
        --decoding evotoken,hard_mask --gen-length 128 --block-length 32 --steps 64

A cached step computes the current block against keys and values kept from an earlier
forward. It changes the decoded text only when one of the step's decisions (which masked
positions the schedule unmasks, which token a position takes, whether EvoToken revises a
token, a threshold) was closer than the cache's error. This decodes held-out items
*exactly* with a dual (or `--cache prefix`) cache whose guard recomputes every cached step,
so at every step both results exist: the cached block logits, one step stale (the best case
for any cache), and the exact ones. Per mode it reports, over all cached steps:

- the cache's error: the largest |change| of a block position's top-candidate log-odds;
- the step's decision margin on the exact logits (`decoding.guard.decision_margin`);
- the share of steps whose margin is below the cache's error: steps where a cache may flip a
  decision, and where `cache_guard` must recompute to keep the answer exact.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from evotoken_core.decoding import DecodeRequest
from evotoken_core.decoding.guard import decision_margin, top_log_odds
from evotoken_core.engine import Engine
from evotoken_core.eval.cli import (base_settings, configure_parser, make_generator, recommended_decoding,
                                    task_files)
from evotoken_core.eval.datasets import load_items
from evotoken_core.eval.harness import plan_runs

PERCENTILES = (10, 25, 50, 75, 90)
NEVER_PASSES = 1e9  # a guard margin no step clears: every cached step is recomputed


class MarginProbe(Engine):
    """An engine that, at every guarded step, records the cached step's error and the exact
    step's margin (its guard must recompute every step: `NEVER_PASSES`)."""

    def __init__(self, loaded):
        super().__init__(loaded, 1)
        self.errors: list[float] = []
        self.margins: list[float] = []

    def _guard(self, guarded, window, region, logits):
        cached = region.at_block(logits)
        region, logits = super()._guard(guarded, window, region, logits)
        exact = region.at_block(logits)
        b, valid = self.batch, window.valid
        err = (top_log_odds(cached, self.mask_id) - top_log_odds(exact, self.mask_id)).abs()
        self.errors.append(float(err[valid].max()))
        self.margins.append(float(decision_margin(b.t, b.gen_ids, exact, window.cols, valid, self.mask_id)[0]))
        return region, logits


def _quantiles(values: list[float]) -> dict[str, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return {f"p{p}": float(t.quantile(p / 100)) for p in PERCENTILES}


def measure(args) -> list[dict]:
    base = base_settings(args, recommended_decoding(args))
    generator, _ = make_generator(args)
    task, path = task_files(args)[0]
    prompts = [generator.prompt_ids(item) for item in load_items(task, path, args.limit)]
    rows = []
    for run in plan_runs(args.decoding, args.alpha_soft_mask[:1]):
        settings = run.settings(base, 0).with_(cache=args.cache, cache_guard=NEVER_PASSES, early_end=True)
        probe = MarginProbe(generator.loaded)
        for i, prompt in enumerate(prompts):
            list(probe.stream([DecodeRequest(f"item{i}", prompt, settings)]))
        below = sum(m < e for m, e in zip(probe.margins, probe.errors))
        rows.append({"mode": run.mode, "cache": args.cache, "items": len(prompts), "cached_steps": len(probe.errors),
                     "error": _quantiles(probe.errors), "margin": _quantiles(probe.margins),
                     "margin_below_error": below / max(1, len(probe.errors))})
    return rows


def table(rows: list[dict]) -> str:
    head = " | ".join(f"p{p}" for p in PERCENTILES)
    lines = [f"| mode | cache | what (log-odds) | {head} |", "|" + "---|" * (3 + len(PERCENTILES))]
    for r in rows:
        for what, key in (("cache error, one step stale", "error"), ("exact decision margin", "margin")):
            cells = " | ".join(f"{r[key][f'p{p}']:.3f}" for p in PERCENTILES)
            lines.append(f"| {r['mode']} | {r['cache']} | {what} | {cells} |")
    lines.append("")
    lines += [f"- {r['mode']}: {100 * r['margin_below_error']:.0f}% of {r['cached_steps']} cached steps "
              f"({r['items']} items) decided by less than the cache's error" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cache_margins", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    configure_parser(parser)
    parser.set_defaults(cache="dual")
    args = parser.parse_args(argv)
    if args.cache == "none":
        parser.error("--cache must be prefix or dual: the probe measures a cache")
    rows = measure(args)
    print(json.dumps(rows) if args.json else table(rows), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
