"""What the core's commands share: loading the model their flags name, and failing plainly.

The flags themselves are declared once in `evotoken_core.flags`.
"""

from __future__ import annotations

import argparse
import sys

import torch

from ..flags import model_or_embedded
from ..model import LoadedModel, load_model


def load_from_args(args: argparse.Namespace) -> LoadedModel:
    """The model of the model flags (`add_model_flags`), with the process set up for decoding."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_flush_denormal(True)  # subnormal floats made tiny-model decoding 10-25x slower on CPU
    if args.threads:
        torch.set_num_threads(args.threads)
    return load_model(model_or_embedded(args.model), dtype=args.dtype, device=args.device, lora=args.lora,
                      merge_lora=args.merge_lora)


def fail(message: str) -> int:
    print(f"evotoken: error: {message}", file=sys.stderr)
    return 2


__all__ = ["fail", "load_from_args"]
