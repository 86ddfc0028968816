"""Shared fixtures: tiny random checkpoints in the real LLaDA format, built once per session."""

from __future__ import annotations

import pytest
import torch

torch.set_flush_denormal(True)

pytest_plugins = ["tests.server_harness"]  # the `app` fixture: a live server on the tiny checkpoint

@pytest.fixture
def restore_threads():
    """Commands under test set torch's thread count (`--threads 1`); put it back afterwards so
    other tests are unaffected."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Lily runs 48 km in the first 4 hours and 12 km in the next hour.",
    "What is 12 + 30? The answer is 42.",
    "Sort the list: 5, 3, 9, 1. Answer: 1, 3, 5, 9.",
    "Hello! How are you today? I am fine, thank you.",
    "<reasoning>7 * 6 = 42</reasoning>\n<answer>\\boxed{42}</answer>",
]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from evotoken_core.tokenizer import train_bpe_tokenizer

    return train_bpe_tokenizer(CORPUS * 20, vocab_size=320)


def _checkpoint(tmp_path_factory, tokenizer, name, **overrides):
    from evotoken_core.model.random_init import make_random_checkpoint

    return make_random_checkpoint(tmp_path_factory.mktemp(name), tokenizer, **overrides)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_tokenizer):
    """2 layers, d_model 64, 4 heads: fast enough for every test that needs a real model."""
    return _checkpoint(tmp_path_factory, tiny_tokenizer, "tiny", seed=0, init_std=0.15)


@pytest.fixture(scope="session")
def tiny_gqa_checkpoint(tmp_path_factory, tiny_tokenizer):
    """Grouped KV heads (4 query heads over 2 KV heads), sharded into several safetensors files."""
    return _checkpoint(tmp_path_factory, tiny_tokenizer, "tiny_gqa", seed=1, n_kv_heads=2,
                       n_layers=3, max_shard_size="40KB", init_std=0.15)
