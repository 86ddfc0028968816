"""`evotoken train pretrain|cts`: flags generated from the config dataclasses.

Every field of `PretrainConfig` / `CTSConfig` is a flag (`answer_length` -> `--answer-length`,
booleans as `--bf16/--no-bf16`), so the CLI cannot drift from the trainers' defaults.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, fields

from .config import CTSConfig, PretrainConfig, TrainConfig

_PARSERS = {"int": int, "float": float, "str": str}

HELP = {
    "out": "run directory: checkpoints, metrics.jsonl and the final model",
    "steps": "optimizer steps (the cosine schedule's length)",
    "time_budget_min": "stop after this many minutes of training, with the lr annealed by then",
    "stop_at_step": "end the run at this step without changing the lr schedule, as a run stopped by hand (0: never)",
    "resume": "continue from a checkpoint directory, or the latest checkpoint of a run directory",
    "init": "start pretraining from this LLaDA checkpoint instead of random weights",
    "base": "the pretrained LLaDA checkpoint to tune",
    "full": "full fine-tune instead of LoRA (default: LoRA, as the published trainer)",
    "lora_r": "LoRA rank", "lora_alpha": "LoRA alpha (scale alpha/r)", "lora_dropout": "LoRA dropout",
    "lora_targets": "comma-separated module names that get LoRA layers",
    "init_adapter": "continue training this LoRA adapter of --base (e.g. a shipped model's adapter/) with a fresh optimizer and lr schedule; its own r, alpha, dropout and targets apply, not the --lora-* flags; --resume takes precedence",
    "diagnostics_every": "measure self-copy, kept-position CE and the later-step loss on a fixed held-out batch every N steps (0: never); also written with every checkpoint",
    "diagnostics_rows": "held-out rows of the diagnostic batch",
    "stop_when": "stop once every condition holds at a measurement, e.g. self_copy>=0.99,kept_ce<=0.05 (names: self_copy, kept_ce, kept_ce_rise, masked_ce, suffix_ce, later_excess, block_loss)",
    "tasks": "data tasks with weights, e.g. arith:3,countdown:1 (default: the data module's mix)",
    "unmask_counts": "tokens u filled per unrolled step; one drawn per batch among those with unroll_steps*u < block length",
    "block_prefix_share": "share of rows whose kept block positions are the block's first ones, as when a block is written in order; a departure from the published trainer (0: random positions, as published)",
    "block_lengths": "CTS block lengths; one value drawn per batch",
    "anchor_weight": "add this weight times the masked-diffusion pretraining loss of the same batch (one more forward per step), so that CTS keeps hard-mask decoding trained; a departure from the published trainer (0: off, as published)",
    "anchor_suffix_share": "share of the anchor's rows that mask their answer's last t-fraction, as the base's last pretraining phases did",
    "copy_weight": "add this weight times the cross-entropy of giving back the clean answer shown whole, nothing masked (one more forward per step): trains the self-copy EvoToken relies on when it feeds decoded tokens back; a departure from the published trainer (0: off, as published)",
    "mask_eps": "masked diffusion's mask ratio t is drawn from (mask_eps, 1] (pretraining, and CTS's anchor)",
    "whole_numbers": "demo tokenizer with every integer 0-1000 one token; --no-whole-numbers spells numbers in digits",
    "save_dtype": "dtype of the final weights on disk (float32, bfloat16, float16)",
}


def _add_config_flags(parser: argparse.ArgumentParser, config_cls: type[TrainConfig]) -> None:
    for f in fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        type_name = str(f.type).replace(" ", "")
        default = None if f.default is MISSING else f.default
        help_text = HELP.get(f.name, "")
        if type_name == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
            continue
        base = type_name.split("|")[0]
        parser.add_argument(flag, type=_PARSERS.get(base, str), default=default,
                            help=f"{help_text} (default: {default})".strip())


def _config_from_args(config_cls: type[TrainConfig], args: argparse.Namespace) -> TrainConfig:
    return config_cls(**{f.name: getattr(args, f.name) for f in fields(config_cls)})


def _run_pretrain(args: argparse.Namespace) -> int:
    from .pretrain import run_pretrain

    config = _config_from_args(PretrainConfig, args)
    trainer = run_pretrain(config)
    _summary(trainer)
    return 0


def _run_cts(args: argparse.Namespace) -> int:
    from .cts_train import run_cts

    config = _config_from_args(CTSConfig, args)
    trainer = run_cts(config)
    _summary(trainer)
    return 0


def _summary(trainer) -> None:
    last = trainer.history[-1] if trainer.history else {}
    print(json.dumps({"out": trainer.config.out, "step": trainer.step, "elapsed_s": round(trainer.elapsed_s, 1),
                      "loss_ema": last.get("loss_ema"), "tokens_per_s": last.get("tokens_per_s")}))


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Register `train` with its `pretrain` and `cts` subcommands on an argparse subparsers."""
    train = subparsers.add_parser("train", help="train LLaDA-format models (masked diffusion, CTS)")
    sub = train.add_subparsers(dest="train_command", required=True)
    pre = sub.add_parser("pretrain", help="masked-diffusion training from scratch or a checkpoint")
    _add_config_flags(pre, PretrainConfig)
    pre.set_defaults(func=_run_pretrain)
    cts = sub.add_parser("cts", help="continuous trajectory supervision (LoRA or full fine-tune)")
    _add_config_flags(cts, CTSConfig)
    cts.set_defaults(func=_run_cts)
    return train


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (`python -m evotoken_core.training.cli pretrain ...`)."""
    parser = argparse.ArgumentParser(prog="evotoken")
    add_train_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", *(argv or [])] if argv is not None else None)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main(__import__("sys").argv[1:]))
