"""`evotoken eval`: score a model on benchmark JSONL files, locally or through a server.

    evotoken eval --task arith --decoding evotoken,hard_mask --alpha-soft-mask 0.5,0.7,0.9
    evotoken eval --task gsm8k --data gsm8k_test.jsonl --base-url http://gpu-host:8000/v1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evotoken_core.decoding import DecodeSettings, RecommendedDecoding, SettingsError
from evotoken_core.flags import (add_decoding_flags, add_model_flags, comma_list, decoding_settings,
                                 model_or_embedded)
from evotoken_core.model.loading import ModelNotFoundError, resolve_model_path

from .datasets import TASKS, DatasetError, load_items, shipped_test_set
from .harness import evaluate_task, plan_runs, report_object
from .report import format_table, plot_accuracy, write_generations


class EvalError(RuntimeError):
    """A problem with the command line or its inputs, reported without a traceback."""


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    """Register `eval` on an argparse subparsers object; the command runs `args.func(args)`."""
    p = subparsers.add_parser("eval", help="score a model on Countdown / GSM8K / MATH500 / SVAMP JSONL files",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    configure_parser(p)
    p.set_defaults(func=run_eval_command)
    return p


def configure_parser(p: argparse.ArgumentParser) -> None:
    data = p.add_argument_group("data")
    data.add_argument("--task", type=comma_list(str, TASKS), default=["arith"],
                      help="comma list of: " + ", ".join(TASKS) + " (arith, countdown and demo default to the shipped held-out sets)")
    data.add_argument("--data", action="append", default=None, metavar="FILE.jsonl",
                      help="JSONL in the public layout; give it once per task, in --task order")
    data.add_argument("--limit", type=int, default=None, help="evaluate only the first N items of each task")
    add_model_flags(p, "model (local run)")
    p.add_argument("--batch-size", type=int, default=32, help="requests decoded together (also the server concurrency)")
    remote = p.add_argument_group("server (remote run)")
    remote.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint, e.g. http://host:8000/v1")
    remote.add_argument("--api-key", default=None)
    remote.add_argument("--model-name", default=None, help="served model id (default: the first /v1/models entry)")
    reference = DecodeSettings()
    # A sweep compares modes and alphas on the same items: item i is decoded with seed + i.
    add_decoding_flags(p, sweep={"alpha_soft_mask": "each value is reported, e.g. 0.5,0.6,0.7,0.8,0.9",
                                 "decoding": "the modes to compare, e.g. evotoken,hard_mask"},
                       defaults={"alpha_soft_mask": [reference.alpha_soft_mask],
                                 "decoding": [reference.decoding], "seed": 0})
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    out.add_argument("--out", type=Path, default=None, metavar="DIR",
                     help="write generations.jsonl, results.json and accuracy_vs_alpha.png here")
    out.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def base_settings(args, recommended: RecommendedDecoding | None = None) -> DecodeSettings:
    """The flags' settings (the first mode and alpha of the sweep); canvas, block length and
    steps left unset come from `recommended`."""
    return decoding_settings(args, recommended)


def recommended_decoding(args) -> RecommendedDecoding:
    """What the model decodes best with: its checkpoint's recommendation, or for --base-url
    the server's advertised defaults."""
    if args.gen_length is not None and args.block_length is not None and args.steps is not None:
        return RecommendedDecoding()  # nothing left to fill
    if args.base_url:
        from .remote import RemoteGenerator

        try:
            return RemoteGenerator(args.base_url, args.api_key, args.model_name).recommended()
        except Exception as error:
            raise EvalError(f"cannot read the server's models at {args.base_url}: {error}") from None
    try:
        return RecommendedDecoding.read(resolve_model_path(args.model or default_model_path()))
    except ValueError as error:
        raise EvalError(str(error)) from None


def default_model_path() -> str:
    """The embedded model, for a local run that names none."""
    try:
        return model_or_embedded(None)
    except FileNotFoundError as error:
        raise EvalError(f"{error} (or --base-url URL)") from None


def make_generator(args):
    if args.base_url:
        from .remote import RemoteGenerator

        return RemoteGenerator(args.base_url, args.api_key, args.model_name, concurrency=args.batch_size), args.base_url
    import torch

    from evotoken_core.model import load_model

    from .generation import LocalGenerator

    torch.set_flush_denormal(True)  # 10-25x faster CPU decoding once soft states go subnormal
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    ref = args.model or default_model_path()
    loaded = load_model(ref, dtype=args.dtype, device=args.device, lora=args.lora, merge_lora=args.merge_lora)
    return LocalGenerator(loaded, batch_size=args.batch_size), str(ref)


def task_files(args) -> list[tuple[str, Path]]:
    if args.data is not None and len(args.data) != len(args.task):
        raise EvalError(f"--data was given {len(args.data)} time(s) for {len(args.task)} task(s); give one per task")
    pairs = []
    for i, task in enumerate(args.task):
        path = Path(args.data[i]) if args.data else shipped_test_set(task)
        if path is None:
            raise EvalError(f"--task {task} has no shipped test set; pass --data FILE.jsonl")
        pairs.append((task, path))
    return pairs


def run_eval(args) -> tuple[dict, list]:
    """The whole evaluation; returns the JSON report object and the per-run results."""
    from tqdm import tqdm

    if args.limit is not None and args.limit < 1:
        raise EvalError("--limit must be at least 1")
    if args.batch_size < 1:
        raise EvalError("--batch-size must be at least 1")
    try:
        base = base_settings(args, recommended_decoding(args))
        for alpha in args.alpha_soft_mask:
            base.with_(alpha_soft_mask=alpha)
    except SettingsError as error:
        raise EvalError(f"--{error.param.replace('_', '-')}: {error}") from None
    datasets = [(task, path, load_items(task, path, args.limit)) for task, path in task_files(args)]
    runs = plan_runs(args.decoding, args.alpha_soft_mask)
    generator, model_ref = make_generator(args)
    results = []
    for task, _, items in datasets:
        with tqdm(total=len(items) * len(runs), desc=f"eval {task}", unit="answer", file=sys.stderr,
                  disable=args.no_progress, dynamic_ncols=True) as bar:
            results += evaluate_task(task, items, runs, base, generator, bar.update)
    meta = {"model": model_ref, "lora": args.lora, "modes": args.decoding, "alphas": args.alpha_soft_mask,
            "data": {task: str(path) for task, path, _ in datasets}}
    return report_object(results, base, meta), results


def run_eval_command(args) -> int:
    try:
        report, results = run_eval(args)
    except (EvalError, DatasetError, ModelNotFoundError) as error:
        print(f"evotoken eval: error: {error}", file=sys.stderr)
        return 2
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_generations(results, args.out)
        (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
        plot_accuracy(results, args.out)
    if args.json:
        print(json.dumps(report))
    else:
        print(format_table(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evotoken eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    configure_parser(parser)
    return run_eval_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
