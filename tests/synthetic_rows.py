"""Prompt/answer id rows for trainer tests that need many rows of varied lengths, no tokenizer."""

from __future__ import annotations

import torch

from evotoken_core.training.encoding import SpecialIds

IDS = SpecialIds(mask=99, end_of_text=2, end_of_turn=3)


def answer_pairs(rows: int, prompt_lengths: tuple[int, int], answer_lengths: tuple[int, int],
                 seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """`rows` (prompt, answer + eot) pairs; lengths drawn uniformly from [low, high)."""
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for _ in range(rows):
        p = int(torch.randint(*prompt_lengths, (1,), generator=g))
        a = int(torch.randint(*answer_lengths, (1,), generator=g))
        pairs.append(([10 + i for i in range(p)], [40 + i for i in range(a)] + [IDS.end_of_turn]))
    return pairs
