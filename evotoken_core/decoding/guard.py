"""The margin guard of the approximate K/V cache: how close a step's decisions came to going
the other way.

A cached forward perturbs the logits a little. That changes the decoded text only when some
decision of the step was nearly a tie: which masked positions the schedule unmasks (their
confidences ranked), which token a position takes (top-1 against top-2), whether EvoToken
revises a decoded token (new confidence against the stored one), or a threshold. The guard
measures the smallest of those margins in log-odds, where a confidence of 0.9995 and one of
0.9997 are 0.4 apart rather than 2e-4, and the engine recomputes the step exactly for rows
whose margin is below their `cache_guard`. See docs/caching.md.
"""

from __future__ import annotations

import torch

from .rules import NEG_INF, prepare_logits
from .schedule import transfer_count_at
from .tensors import BatchTensors

INF = float("inf")


def log_odds(p: torch.Tensor) -> torch.Tensor:
    return p.log() - (-p).log1p()


def _top_two(logits: torch.Tensor, mask_id: int):
    """The top candidate's log-odds computed from the logits (exact where 1 - p underflows),
    its lead over the runner-up, and its id: (..., V) -> (...), (...), (...)."""
    lb = prepare_logits(logits, mask_id)
    top2, arg = lb.topk(2, dim=-1)
    rest = lb.scatter(-1, arg[..., :1], NEG_INF).logsumexp(-1)
    return top2[..., 0] - rest, top2[..., 0] - top2[..., 1], arg[..., 0]


def top_log_odds(logits: torch.Tensor, mask_id: int) -> torch.Tensor:
    """Log-odds of each position's top candidate (..., V) -> (...)."""
    return _top_two(logits, mask_id)[0]


def decision_margin(t: BatchTensors, gen: torch.Tensor, logits_b: torch.Tensor, window_cols: torch.Tensor,
                    window_valid: torch.Tensor, mask_id: int) -> torch.Tensor:
    """The smallest decision margin of each row's step, in log-odds (B,). `logits_b`: the
    model's raw logits over each row's block window (B, W, V); `gen` the generated ids
    before the step (B, G)."""
    score, token_gap, arg = _top_two(logits_b, mask_id)
    masked = (gen.gather(1, window_cols) == mask_id) & window_valid
    decoded = ~masked & window_valid
    B, W = score.shape
    inf = torch.full_like(score, INF)

    # the schedule's count: the gap between the last position taken and the first one left
    ranked = torch.where(masked, score, torch.full_like(score, NEG_INF)).sort(1, descending=True).values
    count = transfer_count_at(t.block_len, t.steps_per_block, t.step_in_block)
    n_masked = masked.sum(1)
    taken = torch.minimum(count, n_masked)
    last_in = ranked.gather(1, (taken - 1).clamp(0, W - 1)[:, None])[:, 0]
    first_out = ranked.gather(1, taken.clamp(max=W - 1)[:, None])[:, 0]
    count_gap = torch.where((count < n_masked) & (count > 0), last_in - first_out, torch.full_like(last_in, INF))
    # a threshold: every masked position's distance to it
    thr = t.threshold.to(score.dtype)
    thr_gap = torch.where(masked, (score - log_odds(thr)[:, None]).abs(), inf).amin(1)
    by_threshold = ~torch.isnan(thr)
    # ... and when none passes it, the most confident one is taken: its lead over the next
    forced = (ranked[:, 0] < log_odds(thr)) & (n_masked > 1)
    lead = torch.where(forced, ranked[:, 0] - ranked[:, min(1, W - 1)], torch.full_like(last_in, INF))
    sched_gap = torch.where(by_threshold, torch.minimum(thr_gap, lead), count_gap)
    # the token of each position the step writes: those unmasked now, and (EvoToken) the
    # decoded ones it may revise
    lo_thr = torch.where(by_threshold, log_odds(thr), last_in)
    current = gen.gather(1, window_cols)
    revisable = decoded & t.evotoken[:, None]
    taken_first = forced[:, None] & (score >= ranked[:, :1])
    writes = (masked & ((score >= lo_thr[:, None]) | taken_first)) | revisable
    tok_gap = torch.where(writes, token_gap, inf).amin(1)
    # EvoToken's revision of a decoded position to another token: its new confidence against
    # the stored one (re-deciding the same token only refreshes the stored confidence)
    stored = t.conf.gather(1, window_cols).to(score.dtype)
    other = revisable & (arg != current)
    rev = torch.where(other, (score - log_odds(stored)).abs(), inf).amin(1)
    return torch.minimum(torch.minimum(sched_gap, tok_gap), rev)
