"""Which block positions a CTS batch keeps and fills: random ones, or a prefix of the block."""

from __future__ import annotations

import pytest
import torch

from evotoken_core.training.config import CTSConfig
from evotoken_core.training.cts import make_plan
from evotoken_core.training.encoding import collate
from evotoken_core.training.loop import step_generator
from evotoken_core.training.source import step_rng
from tests.synthetic_rows import IDS, answer_pairs

CPU = torch.device("cpu")


def batch(rows: int = 96):
    """Prompts of 3 to 6 tokens, answers of 8 to 19 tokens plus eot, a region of at least 24."""
    return collate(answer_pairs(rows, (3, 7), (8, 20)), IDS, answer_length=24, pad_weight=0.1)


def plan(b, share: float, seed: int = 0):
    return make_plan(b, step_rng(seed, 0, "cts"), step_generator(seed, 0, CPU), [8], [2], (0.5, 1.0),
                     prefix_share=share)


def block_view(b, p):
    """(kept, fill_rank) of each row, over the row's block only."""
    rows = []
    for r in range(b.input_ids.shape[0]):
        s = int(p.block_start[r])
        rows.append((p.keep[r, s:s + p.block_length].tolist(), p.fill_rank[r, s:s + p.block_length].tolist()))
        assert not p.keep[r, :s].any() and not p.keep[r, s + p.block_length:].any()
        assert (p.fill_rank[r, :s] == -1).all() and (p.fill_rank[r, s + p.block_length:] == -1).all()
    return rows


def is_prefix(kept: list[bool]) -> bool:
    n = sum(kept)
    return kept == [True] * n + [False] * (len(kept) - n)


def test_share_zero_is_the_reference_plan_draw_for_draw():
    b = batch()
    a, c = plan(b, 0.0), make_plan(b, step_rng(0, 0, "cts"), step_generator(0, 0, CPU), [8], [2], (0.5, 1.0))
    assert a.alpha == c.alpha and torch.equal(a.keep, c.keep) and torch.equal(a.fill_rank, c.fill_rank)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_every_open_block_position_is_filled_once_in_a_random_order(share):
    b = batch()
    for kept, rank in block_view(b, plan(b, share)):
        open_ranks = sorted(r for k, r in zip(kept, rank) if not k)
        assert open_ranks == list(range(len(open_ranks)))       # 0..n_open-1, each once
        assert all(r == -1 for k, r in zip(kept, rank) if k)


def test_prefix_rows_keep_the_first_positions_of_their_block():
    b = batch()
    rows = block_view(b, plan(b, 1.0))
    assert all(is_prefix(kept) for kept, _ in rows)
    assert len({sum(kept) for kept, _ in rows}) >= 6              # the kept count still varies
    # the fill order stays random, not left to right
    in_order = [kept for kept, rank in rows if [r for r in rank if r >= 0] == sorted(r for r in rank if r >= 0)]
    assert len(in_order) < len(rows) / 2


def test_half_share_mixes_prefix_and_random_rows_with_the_same_kept_counts():
    b = batch()
    reference, mixed = block_view(b, plan(b, 0.0)), block_view(b, plan(b, 0.5))
    assert [sum(k) for k, _ in reference] == [sum(k) for k, _ in mixed]
    scattered = sum(not is_prefix(k) for k, _ in mixed)
    changed = sum(k1 != k2 for (k1, _), (k2, _) in zip(reference, mixed))
    assert scattered > 10 and changed > 10


def test_config_checks_the_share():
    with pytest.raises(ValueError, match="block_prefix_share"):
        CTSConfig(base="x", block_prefix_share=1.5)
