"""`evotoken bench`: decoding speed of the engine against the published loop, in one run.

    evotoken bench --task arith --requests 8 --concurrency 1,4,16 --reference
    evotoken bench --random-shape llada-8b --device cuda --dtype bfloat16 --gen-length 256 --concurrency 1,8,32
    evotoken bench --http --concurrency 1,16          # starts `evotoken serve` on loopback

Every configuration decodes the same prompts with the same settings; with --reference the
bench also checks that the engine's batch-1 answers equal the reference loop's, token for
token (cut at the first end-of-text), and says so.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from evotoken_core.commands.common import fail, load_from_args
from evotoken_core.decoding import RecommendedDecoding, SettingsError
from evotoken_core.flags import add_decoding_flags, add_model_flags, decoding_settings
from evotoken_core.model import ModelNotFoundError

from .measure import Run, check_pairable, run_engine, run_paired
from .workload import RANDOM_SHAPES, eval_prompts, random_prompts, random_weight_model

COLUMNS = [("name", "run"), ("concurrency", "conc"), ("requests", "reqs"), ("tok_s", "tok/s"),
           ("s_per_request", "s/req"), ("nfe_per_request", "nfe/req"), ("tokens_per_forward", "tok/fwd"),
           ("ms_per_step", "ms/step"), ("decode_share", "decode%"), ("achieved_gflops", "GFLOP/s"),
           ("peak_mb", "peak MB"), ("speedup", "x ref")]


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="measure decoding speed against the reference loop",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flags(p)
    p.add_argument("--random-shape", choices=sorted(RANDOM_SHAPES), default=None,
                   help="random weights of a published shape instead of --model (speed only)")
    add_decoding_flags(p)
    w = p.add_argument_group("workload")
    w.add_argument("--task", default="arith", help="shipped eval set whose questions are the prompts")
    w.add_argument("--prompt-length", type=int, default=64, help="random prompt length (models without tokenizer)")
    w.add_argument("--requests", type=int, default=8)
    w.add_argument("--concurrency", default="1", help="comma list of rows in flight, e.g. 1,4,16")
    w.add_argument("--reference", action="store_true", help="also run the published loop and compare texts")
    w.add_argument("--http", action="store_true", help="also measure through HTTP (starts a server unless --base-url)")
    w.add_argument("--base-url", default=None)
    w.add_argument("--api-key", default=None)
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print one JSON object")
    o.add_argument("--plot", default=None, metavar="PNG", help="throughput vs concurrency and the step-time split")
    p.set_defaults(func=run_bench)
    return p


def _load(args):
    if args.random_shape:
        from evotoken_core.model import default_device, parse_dtype

        torch.set_flush_denormal(True)
        if args.threads:
            torch.set_num_threads(args.threads)
        return random_weight_model(args.random_shape, parse_dtype(args.dtype), args.device or default_device())
    return load_from_args(args)


def run_bench(args) -> int:
    try:
        loaded = _load(args)
        settings = decoding_settings(args, RecommendedDecoding.read(loaded.path) if loaded.path else None)
        levels = [int(c) for c in args.concurrency.split(",")]
        if args.reference:
            check_pairable(settings)
    except (SettingsError, ModelNotFoundError, FileNotFoundError, ValueError) as error:
        return fail(str(error))
    if loaded.tokenizer is not None:
        prompts = eval_prompts(loaded, args.task, args.requests)
    else:
        prompts = random_prompts(loaded, args.requests, args.prompt_length)
    args._mean_prompt = round(sum(map(len, prompts)) / len(prompts), 1)
    runs: list[Run] = []
    reference = None
    if args.reference:  # batch 1 is measured paired with the reference, prompt by prompt
        reference, engine_solo = run_paired(loaded, prompts, settings)
        runs += [reference, engine_solo]
    for c in levels:
        if not (args.reference and c == 1):
            runs.append(run_engine(loaded, prompts, settings, c))
    if args.http or args.base_url:
        runs += _http_runs(args, prompts, settings, levels)
    report = _report(args, loaded, settings, runs, reference)
    if args.json:
        print(json.dumps(report, indent=None))
    else:
        _print_table(report)
    if args.plot:
        from .plot import plot_bench

        plot_bench(report, args.plot)
    return 0


def _http_runs(args, prompts, settings, levels) -> list[Run]:
    from .http_load import ServerProcess, run_http

    if args.base_url:
        return [run_http(args.base_url, prompts, settings, c, args.api_key) for c in levels]
    extra = ["--max-batch-size", str(max(levels)), "--dtype", args.dtype]
    if args.threads:
        extra += ["--threads", str(args.threads)]
    with ServerProcess(args.model, extra) as server:
        return [run_http(server.base_url, prompts, settings, c) for c in levels]


def _report(args, loaded, settings, runs, reference) -> dict:
    rows = []
    for run in runs:
        row = run.row()
        if reference is not None:
            row["speedup"] = round(reference.seconds / run.seconds * run.requests / reference.requests, 2)
            if run.name == "engine":
                row["same_text_as_reference"] = sum(a == b for a, b in zip(run.answers, reference.answers))
        rows.append(row)
    from .roofline import forward_flops, matmul_gflops

    rate = matmul_gflops(str(loaded.device), loaded.dtype if loaded.dtype != torch.float64 else torch.float32)
    for row in rows:
        if row.get("ms_per_step"):
            seq = args._mean_prompt + settings.gen_length
            head = settings.gen_length if settings.evotoken else settings.block_length
            rows_per_step = row["concurrency"]
            flops = forward_flops(loaded.config, rows_per_step, seq, head)
            row["gflops_per_step"] = round(flops / 1e9, 3)
            row["achieved_gflops"] = round(flops / 1e9 / (row["ms_per_step"] / 1000), 2)
    return {
        "model": str(loaded.path or args.random_shape), "device": str(loaded.device), "dtype": str(loaded.dtype),
        "threads": torch.get_num_threads(), "matmul_gflops": round(rate, 2), "settings": settings.__dict__,
        "mean_prompt_tokens": args._mean_prompt, "rows": rows,
    }


def _print_table(report: dict) -> None:
    s = report["settings"]
    print(f"model {report['model']} on {report['device']} ({report['dtype']}, {report['threads']} threads, "
          f"matmul {report['matmul_gflops']} GFLOP/s); prompts {report['mean_prompt_tokens']} tokens; "
          f"gen {s['gen_length']} block {s['block_length']} steps {s['steps']} {s['decoding']} cache {s['cache']}")
    header = [title for _, title in COLUMNS]
    lines = [[("" if r.get(k) is None else str(r.get(k))) for k, _ in COLUMNS] for r in report["rows"]]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for line in lines:
        print("  ".join(v.rjust(w) for v, w in zip(line, widths)))
    for r in report["rows"]:
        if "same_text_as_reference" in r:
            print(f"engine at concurrency {r['concurrency']}: {r['same_text_as_reference']}/{r['requests']} "
                  "answers identical to the reference loop")


if __name__ == "__main__":
    sys.exit(0)
