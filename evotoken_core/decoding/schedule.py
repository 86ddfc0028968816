"""How many masked positions of a block are unmasked at each of its steps."""

from __future__ import annotations

import torch


def transfer_counts(num_masked: int, steps: int) -> list[int]:
    """Split `num_masked` evenly over `steps`, the remainder one each to the first steps.

    >>> transfer_counts(10, 4)
    [3, 3, 2, 2]
    """
    base, rem = divmod(num_masked, steps)
    return [base + (i < rem) for i in range(steps)]


def transfer_count_at(block_len: torch.Tensor, steps_per_block: torch.Tensor, step_in_block: torch.Tensor) -> torch.Tensor:
    """Batched `transfer_counts(block_len, steps)[step_in_block]`; all arguments (B,) int64."""
    base = torch.div(block_len, steps_per_block, rounding_mode="floor")
    rem = block_len - base * steps_per_block
    return base + (step_in_block < rem).long()
