"""Which block positions a CTS batch keeps and fills: the published plan (n_keep uniform in
[0, L − K·u], so each of the K unrolled steps fills exactly u masks), or a prefix of the block."""

from __future__ import annotations

import random

import pytest
import torch

from evotoken_core.training.config import CTSConfig
from evotoken_core.training.cts import initial_canvas, make_plan
from evotoken_core.training.encoding import collate
from evotoken_core.training.loop import step_generator
from evotoken_core.training.source import step_rng
from tests.synthetic_rows import IDS, answer_pairs

CPU = torch.device("cpu")


def batch(rows: int = 96):
    """Prompts of 3 to 6 tokens, answers of 8 to 19 tokens plus eot, a region of at least 24."""
    return collate(answer_pairs(rows, (3, 7), (8, 20)), IDS, answer_length=24, pad_weight=0.1)


K = 4


def plan(b, share: float, seed: int = 0):
    return make_plan(b, step_rng(seed, 0, "cts"), step_generator(seed, 0, CPU), [16], [2], (0.5, 1.0),
                     unroll_steps=K, prefix_share=share)


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


def published_plan(b, rng: random.Random, gen: torch.Generator, lengths, counts, unroll_steps):
    """The published collator's plan written out row by row from the same draws: L, then u
    among the counts with K·u < L, alpha; then per row the block index, n_keep uniform in
    [0, L − K·u], and a random order of the block whose first n_keep positions are kept and
    the rest filled in that order."""
    region = int(b.answer_lengths.min())
    L = rng.choice([x for x in lengths if x <= region] or [region])
    u = rng.choice([c for c in counts if unroll_steps * c < L])
    alpha = rng.uniform(0.5, 1.0)
    B, T = b.input_ids.shape
    j = (torch.rand(B, generator=gen) * torch.div(b.answer_lengths, L, rounding_mode="floor")).floor().long()
    n_keep = (torch.rand(B, generator=gen) * (L - unroll_steps * u + 1)).floor().long()
    score = torch.rand(B, T, generator=gen)
    keep = torch.zeros(B, T, dtype=torch.bool)
    fill = torch.full((B, T), -1)
    for r in range(B):
        start = int(b.answer_start[r]) + int(j[r]) * L
        order = sorted(range(start, start + L), key=lambda t: float(score[r, t]))
        for i, t in enumerate(order):
            if i < int(n_keep[r]):
                keep[r, t] = True
            else:
                fill[r, t] = i - int(n_keep[r])
    return L, u, alpha, keep, fill


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_plan_is_the_published_plan_draw_for_draw(seed):
    b = batch()
    lengths, counts = [8, 16, 24], [1, 2, 4, 8]
    got = make_plan(b, step_rng(seed, 0, "cts"), step_generator(seed, 0, CPU), lengths, counts, (0.5, 1.0),
                    unroll_steps=K)
    L, u, alpha, keep, fill = published_plan(b, step_rng(seed, 0, "cts"), step_generator(seed, 0, CPU),
                                             lengths, counts, K)
    assert (got.block_length, got.unmask_count, got.alpha) == (L, u, alpha)
    assert torch.equal(got.keep, keep) and torch.equal(got.fill_rank, fill)
    # share 0 is the same plan, draw for draw
    again = make_plan(b, step_rng(seed, 0, "cts"), step_generator(seed, 0, CPU), lengths, counts, (0.5, 1.0),
                      unroll_steps=K, prefix_share=0.0)
    assert torch.equal(again.keep, got.keep) and torch.equal(again.fill_rank, got.fill_rank)


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_every_unrolled_step_fills_exactly_u_real_masks(share):
    """Many seeds, answer lengths, block lengths and unroll counts: replaying the plan on the
    initial canvas, step k fills the u positions of fill ranks k·u..(k+1)·u−1 and every one of
    them is a mask of the block that nothing filled before."""
    plans = 0
    for seed in range(40):
        g = random.Random(seed)
        unroll = g.choice([1, 2, 4])
        lo = g.choice([6, 10, 20])
        b = collate(answer_pairs(24, (3, 7), (lo, lo + 12), seed=seed), IDS,
                    answer_length=g.choice([16, 24, 40]), pad_weight=0.1)
        lengths = [x for x in (5, 8, 12, 16, 24, 40) if x > unroll]
        p = make_plan(b, step_rng(seed, 0, "cts"), step_generator(seed, 0, CPU), lengths, [1, 2, 3, 4, 8],
                      (0.5, 1.0), unroll_steps=unroll, prefix_share=share)
        L, u = p.block_length, p.unmask_count
        assert unroll * u < L
        canvas = initial_canvas(b, p, IDS.mask)
        for k in range(unroll):
            fill = (p.fill_rank >= k * u) & (p.fill_rank < (k + 1) * u)
            assert (fill.sum(1) == u).all()                      # u per row, every step
            assert (canvas[fill] == IDS.mask).all()              # each one still a mask
            canvas = torch.where(fill, b.input_ids, canvas)
        n_keep = p.keep.sum(1)
        assert (n_keep <= L - unroll * u).all() and (n_keep >= 0).all()
        plans += 1
    assert plans == 40


def test_kept_count_is_uniform_over_zero_to_l_minus_k_u():
    b = batch(rows=96)
    seen = set()
    for seed in range(30):
        p = make_plan(b, step_rng(seed, 0, "cts"), step_generator(seed, 0, CPU), [16], [2], (0.5, 1.0),
                      unroll_steps=K)
        seen |= set(p.keep.sum(1).tolist())
    assert seen == set(range(16 - K * 2 + 1))                   # 0..8, every value drawn


def test_a_block_with_no_fitting_unmask_count_is_a_clear_error():
    b = batch()
    with pytest.raises(ValueError, match="no unmask count"):
        make_plan(b, step_rng(0, 0, "cts"), step_generator(0, 0, CPU), [8], [2, 4], (0.5, 1.0), unroll_steps=K)


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


def test_config_checks_the_share_and_that_every_block_fits_a_fill_count():
    with pytest.raises(ValueError, match="block_prefix_share"):
        CTSConfig(base="x", block_prefix_share=1.5)
    with pytest.raises(ValueError, match="block length 8 leaves no unmask count"):
        CTSConfig(base="x", block_lengths="8,16", unmask_counts="2,4", unroll_steps=4)
    CTSConfig(base="x", block_lengths="8,16", unmask_counts="1,4", unroll_steps=4)  # u = 1 fits both
