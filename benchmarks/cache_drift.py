"""How stale a block-start K/V cache gets, per canvas region, during exact decoding.

    python -m benchmarks.cache_drift [--decoding evotoken,hard_mask] [--gen-length 128 --block-length 32 --steps 64]

A prefix or dual cache keeps the keys and values that a full forward computed at some step
and reuses them for the rest of the block. This decodes eval prompts *exactly*, and at every
step compares the keys/values the exact forward computes now with those the cache would hold:
computed at the block's first step ("start"), or at its second, once the previous block is fed
as hard tokens ("settled"). Reported per region of the canvas (the prompt, earlier blocks, the
current block, later blocks) as the mean cosine distance 1 - cos over layers, heads and
positions, by step within the block. Where the distance is large, a cache there feeds the model
something exact decoding does not.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch

from evotoken_core.decoding import DecodeRequest
from evotoken_core.engine import Engine
from evotoken_core.eval.cli import base_settings, configure_parser, recommended_decoding
from evotoken_core.model import load_model

from .workload import eval_prompts

REGIONS = ("prompt", "earlier blocks", "current block", "later blocks")


def exact_kv(engine: Engine) -> torch.Tensor:
    """The keys and values of a full forward over the batch's current (soft) input:
    (layers, 2, kv heads, L, head dim) for the single row."""
    b = engine.batch
    emb = engine.runner.embeddings(b, b.rows, [r.settings for r in b.rows])
    out: list = []
    with torch.no_grad():
        engine.model.hidden(emb, None, None, kv_out=out)
    return torch.stack([torch.stack([k[0], v[0]]) for k, v in out])


def region_of(L: int, P: int, start: int, end: int) -> torch.Tensor:
    col = torch.arange(L)
    g = col - P
    return torch.where(col < P, 0, torch.where(g < start, 1, torch.where(g < end, 2, 3)))


def drift(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - cosine per position, averaged over layers, K/V and heads: (L,)."""
    cos = torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1)  # (layers, 2, heads, L)
    return (1 - cos).mean(dim=(0, 1, 2))


def measure(loaded, prompts, settings) -> dict:
    sums: dict = defaultdict(lambda: [0.0, 0])
    for prompt in prompts:
        engine = Engine(loaded, 1)
        engine.submit(DecodeRequest("drift", prompt, settings))
        held: dict[str, torch.Tensor] = {}
        block, step_in_block = -1, 0
        while True:
            engine._admit()
            if not engine.batch.rows:
                break
            row = engine.batch.rows[0]
            if row.block != block:
                block, step_in_block = row.block, 0
            kv = exact_kv(engine)
            if step_in_block == 0:
                held = {"start": kv}
            elif step_in_block == 1:
                held["settled"] = kv
            start = block * settings.block_length
            regions = region_of(kv.shape[-2], engine.batch.P, start, start + settings.block_length)
            for name, cached in held.items():
                d = drift(cached, kv)
                for r, region in enumerate(REGIONS):
                    sel = d[regions == r]
                    if sel.numel():
                        acc = sums[(name, region, step_in_block)]
                        acc[0] += float(sel.mean())
                        acc[1] += 1
            records = engine.step()
            if any(rec.finished for rec in records):
                break
            step_in_block += 1
    return {key: total / n for key, (total, n) in sums.items()}


def table(results: dict, mode: str, steps_per_block: int) -> str:
    shown = sorted({s for (_, _, s) in results})
    picks = [s for s in shown if s in (1, 2, 3) or s == steps_per_block - 1 or s % 4 == 0]
    lines = [f"| {mode}: cache built at | region | " + " | ".join(f"step {s}" for s in picks) + " |",
             "|---|---|" + "---|" * len(picks)]
    for name in ("start", "settled"):
        for region in REGIONS:
            cells = [results.get((name, region, s)) for s in picks]
            if all(c is None for c in cells):
                continue
            lines.append(f"| {name} | {region} | " + " | ".join("" if c is None else f"{c:.4f}" for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cache_drift", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    configure_parser(p)
    p.add_argument("--prompts", type=int, default=8)
    p.set_defaults(threads=1)
    args = p.parse_args(argv)
    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    from evotoken_core.flags import model_or_embedded

    loaded = load_model(model_or_embedded(args.model), device="cpu", dtype=args.dtype)
    base = base_settings(args, recommended_decoding(args)).with_(early_end=False, cache="none", threshold=None)
    prompts = eval_prompts(loaded, "arith", args.prompts)
    for mode in args.decoding:
        settings = base.with_(decoding=mode)
        print(table(measure(loaded, prompts, settings), mode, settings.steps_per_block))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
