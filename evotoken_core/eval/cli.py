"""`evotoken eval`: score a model on benchmark JSONL files, locally or through a server.

    evotoken eval --task arith --decoding evotoken,hard_mask --alpha-soft-mask 0.5,0.7,0.9
    evotoken eval --task gsm8k --data gsm8k_test.jsonl --base-url http://gpu-host:8000/v1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evotoken_core.decoding import (CACHE_MODES, DECODING_MODES, REMASKING_RULES, DecodeSettings,
                                    RecommendedDecoding, SettingsError)
from evotoken_core.model.loading import ModelNotFoundError, resolve_model_path

from .datasets import TASKS, DatasetError, load_items, shipped_test_set
from .harness import evaluate_task, plan_runs, report_object
from .report import format_table, plot_accuracy, write_generations


class EvalError(RuntimeError):
    """A problem with the command line or its inputs, reported without a traceback."""


def _csv(kind, choices=None):
    def parse(text: str):
        try:
            values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError("the list is empty")
        bad = [v for v in values if choices is not None and v not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"{', '.join(map(str, bad))} not in {', '.join(choices)}")
        return values
    return parse


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    """Register `eval` on an argparse subparsers object; the command runs `args.func(args)`."""
    p = subparsers.add_parser("eval", help="score a model on Countdown / GSM8K / MATH500 / SVAMP JSONL files",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    configure_parser(p)
    p.set_defaults(func=run_eval_command)
    return p


def configure_parser(p: argparse.ArgumentParser) -> None:
    d = DecodeSettings()
    data = p.add_argument_group("data")
    data.add_argument("--task", type=_csv(str, TASKS), default=["arith"],
                      help="comma list of: " + ", ".join(TASKS) + " (arith, countdown and demo default to the shipped held-out sets)")
    data.add_argument("--data", action="append", default=None, metavar="FILE.jsonl",
                      help="JSONL in the public layout; give it once per task, in --task order")
    data.add_argument("--limit", type=int, default=None, help="evaluate only the first N items of each task")
    model = p.add_argument_group("model (local run)")
    model.add_argument("--model", default=None, help="checkpoint directory or hub id (default: the embedded demo model)")
    model.add_argument("--lora", default=None, help="peft adapter to apply, e.g. the EvoToken CTS LoRA")
    model.add_argument("--merge-lora", action="store_true", help="fold the adapter into the weights first")
    model.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    model.add_argument("--dtype", default="float32", help="float32, bfloat16, float16 or float64")
    model.add_argument("--batch-size", type=int, default=32, help="requests decoded together (also the server concurrency)")
    model.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads (default: torch's choice; 1 is fastest for tiny models on a busy CPU)")
    remote = p.add_argument_group("server (remote run)")
    remote.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint, e.g. http://host:8000/v1")
    remote.add_argument("--api-key", default=None)
    remote.add_argument("--model-name", default=None, help="served model id (default: the first /v1/models entry)")
    dec = p.add_argument_group("decoding")
    dec.add_argument("--gen-length", type=int, default=None,
                     help="tokens generated per answer (default: the model's recommendation, else 128)")
    dec.add_argument("--block-length", type=int, default=None,
                     help="(default: the model's recommendation, else 32)")
    dec.add_argument("--steps", type=int, default=None,
                     help="refinement steps (default: the model's steps ratio of every block, else half, "
                          "as the reference eval)")
    dec.add_argument("--temperature", type=float, default=d.temperature)
    dec.add_argument("--k-soft", type=int, default=d.k_soft)
    dec.add_argument("--alpha-soft-mask", type=_csv(float), default=[d.alpha_soft_mask],
                     help="comma list; each value is reported, e.g. 0.5,0.6,0.7,0.8,0.9")
    dec.add_argument("--remasking", choices=REMASKING_RULES, default=d.remasking)
    dec.add_argument("--threshold", type=float, default=None)
    dec.add_argument("--decoding", type=_csv(str, DECODING_MODES), default=["evotoken"],
                     help="comma list of modes to compare: evotoken,hard_mask")
    dec.add_argument("--seed", type=int, default=0, help="item i is decoded with seed + i")
    dec.add_argument("--cache", choices=CACHE_MODES, default="none",
                     help="approximate K/V cache (prefix or dual): faster, may cost accuracy")
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    out.add_argument("--out", type=Path, default=None, metavar="DIR",
                     help="write generations.jsonl, results.json and accuracy_vs_alpha.png here")
    out.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def base_settings(args, recommended: RecommendedDecoding | None = None) -> DecodeSettings:
    """The flags' settings; canvas, block length and steps left unset come from `recommended`."""
    return (recommended or RecommendedDecoding()).settings(
        gen_length=args.gen_length, block_length=args.block_length, steps=args.steps,
        temperature=args.temperature, k_soft=args.k_soft, alpha_soft_mask=args.alpha_soft_mask[0],
        remasking=args.remasking, threshold=args.threshold, seed=args.seed, cache=args.cache)


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
    try:
        from evotoken_core.assets import default_model_path as embedded
        path = embedded()
    except (ImportError, AttributeError, FileNotFoundError) as error:
        raise EvalError(f"no --model given and no embedded model is installed ({error}); "
                        "pass --model PATH or --base-url URL") from None
    if path is None or not Path(path).is_dir():
        raise EvalError(f"no --model given and the embedded model is missing at {path}; pass --model PATH")
    return str(path)


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
