"""Random-weight checkpoints in the published LLaDA format (tests, benchmarks, new models)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .config import LLaDAConfig
from .modeling import LLaDAModelLM

# LLaDA-8B-Instruct's architecture, for benchmarks that need its shape but not its weights.
LLADA_8B_SHAPE = dict(
    d_model=4096, n_heads=32, n_kv_heads=32, n_layers=32, mlp_hidden_size=12288,
    vocab_size=126464, embedding_size=126464, rope_theta=500000.0, max_sequence_length=4096,
)


def random_model(config: LLaDAConfig, seed: int = 0, dtype: torch.dtype = torch.float32) -> LLaDAModelLM:
    torch.manual_seed(seed)
    return LLaDAModelLM(config).to(dtype)


def make_random_checkpoint(
    out_dir: str | os.PathLike,
    tokenizer=None,
    seed: int = 0,
    max_shard_size: str | int | None = None,
    dtype: torch.dtype = torch.float32,
    **config_overrides,
) -> Path:
    """Write config.json, safetensors (sharded when `max_shard_size` is given) and tokenizer.

    With a tokenizer, vocab size, mask and end-of-text ids come from it; without one they
    must be given in `config_overrides`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    values = dict(d_model=64, n_heads=4, n_kv_heads=4, n_layers=2, mlp_hidden_size=128,
                  rope_theta=10000.0, max_sequence_length=512)
    if tokenizer is not None:
        vocab = len(tokenizer)
        values.update(vocab_size=vocab, embedding_size=vocab,
                      mask_token_id=tokenizer.mask_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.eos_token_id)
    values.update(config_overrides)
    config = LLaDAConfig(**values)
    model = random_model(config, seed, dtype)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size is not None else {}
    model.save_pretrained(out, safe_serialization=True, **kwargs)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out
