"""What the benchmark decodes: realistic prompts and a model to decode them with."""

from __future__ import annotations

import random

import torch

from evotoken_core.model import LLaDAConfig, LoadedModel
from evotoken_core.model.random_init import LLADA_8B_SHAPE, random_model

RANDOM_SHAPES = {
    "llada-8b": dict(LLADA_8B_SHAPE, mask_token_id=126336, eos_token_id=126081, pad_token_id=126081),
    "demo": dict(d_model=256, n_heads=8, n_kv_heads=8, n_layers=6, mlp_hidden_size=768, vocab_size=1200,
                 embedding_size=1200, mask_token_id=3, eos_token_id=1, pad_token_id=1,
                 max_sequence_length=1024, rope_theta=10000.0),
}


def random_weight_model(shape: str, dtype: torch.dtype, device: str) -> LoadedModel:
    """A model of a published shape with random weights: speed only, no download."""
    config = LLaDAConfig(**RANDOM_SHAPES[shape])
    with torch.device(device):
        model = random_model(config, seed=0, dtype=dtype)
    model.eval().requires_grad_(False)
    return LoadedModel(model=model, tokenizer=None, path=None, mask_id=config.mask_token_id,
                       end_ids=[config.eos_token_id])


def eval_prompts(loaded: LoadedModel, task: str, n: int) -> list[list[int]]:
    """The first n questions of a shipped held-out set, as the chat prompts eval would send."""
    from evotoken_core.data.prompts import render_prompt
    from evotoken_core.eval.datasets import load_items, shipped_test_set

    items = load_items(task, shipped_test_set(task), limit=n)
    tok = loaded.tokenizer
    return [tok(render_prompt(tok, item.question, task), add_special_tokens=False).input_ids for item in items]


def random_prompts(loaded: LoadedModel, n: int, length: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    avoid = {loaded.mask_id, *loaded.end_ids}
    vocab = [i for i in range(min(loaded.config.vocab_size, 32000)) if i not in avoid]
    return [[rng.choice(vocab) for _ in range(length)] for _ in range(n)]


def first_end_cut(ids: list[int], end_ids) -> list[int]:
    """The answer's ids up to the first end token: what 'the same text' compares."""
    for i, t in enumerate(ids):
        if t in end_ids:
            return ids[:i]
    return ids
