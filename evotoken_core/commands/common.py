"""Flags shared by the core's commands: which model, on what device, and how to decode."""

from __future__ import annotations

import argparse

import torch

from ..decoding import CACHE_MODES, DECODING_MODES, REMASKING_RULES, DecodeSettings, RecommendedDecoding, SettingsError
from ..model import LoadedModel, load_model


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, help="LLaDA-format checkpoint dir or hub id (default: the embedded demo model)")
    g.add_argument("--lora", default=None, help="peft adapter dir or hub id, e.g. zhongzero/EvoToken_LLaDA_Instruct_8B_Lora")
    g.add_argument("--merge-lora", action="store_true", help="fold the adapter into the base weights")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    g.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "float64"])
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def add_decoding_args(p: argparse.ArgumentParser) -> None:
    d = DecodeSettings()
    g = p.add_argument_group("decoding (unset canvas settings come from the model's recommendation, "
                             "else the reference command's 128 / 32 / 64)")
    g.add_argument("--gen-length", type=int, default=None, help="tokens to generate")
    g.add_argument("--block-length", type=int, default=None)
    g.add_argument("--steps", type=int, default=None, help="refinement steps (default: half of every block)")
    g.add_argument("--temperature", type=float, default=d.temperature)
    g.add_argument("--k-soft", type=int, default=d.k_soft)
    g.add_argument("--alpha-soft-mask", type=float, default=d.alpha_soft_mask)
    g.add_argument("--remasking", choices=REMASKING_RULES, default=d.remasking)
    g.add_argument("--threshold", type=float, default=None, help="confidence-threshold parallel unmasking")
    g.add_argument("--decoding", choices=DECODING_MODES, default=d.decoding)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--cache", choices=CACHE_MODES, default=d.cache,
                   help="approximate K/V cache (Fast-dLLM): faster, changes outputs slightly")
    g.add_argument("--no-early-end", dest="early_end", action="store_false",
                   help="decode every block even after an end token (same text, more forward passes)")


def settings_from_args(args: argparse.Namespace, recommended: RecommendedDecoding | None = None) -> DecodeSettings:
    """The flags' settings; canvas, block length and steps left unset come from `recommended`
    (the loaded checkpoint's), else the reference defaults."""
    return (recommended or RecommendedDecoding()).settings(
        gen_length=args.gen_length, block_length=args.block_length, steps=args.steps,
        temperature=args.temperature, k_soft=args.k_soft, alpha_soft_mask=args.alpha_soft_mask,
        remasking=args.remasking, threshold=args.threshold, decoding=args.decoding, seed=args.seed,
        early_end=args.early_end, cache=args.cache,
    )


def load_from_args(args: argparse.Namespace) -> LoadedModel:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_flush_denormal(True)  # subnormal floats made tiny-model decoding 10-25x slower on CPU
    if args.threads:
        torch.set_num_threads(args.threads)
    ref = args.model
    if ref is None:
        from ..assets import default_model_path

        ref = default_model_path()
    return load_model(ref, dtype=args.dtype, device=args.device, lora=args.lora, merge_lora=args.merge_lora)


def fail(message: str) -> int:
    import sys

    print(f"evotoken: error: {message}", file=sys.stderr)
    return 2


__all__ = ["SettingsError", "add_decoding_args", "add_model_args", "fail", "load_from_args", "settings_from_args"]
