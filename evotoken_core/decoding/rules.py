"""The per-step rules of EvoToken decoding as small pure tensor functions.

Shapes: B rows, N positions, V vocabulary, K soft candidates. Every function works on a
whole batch at once; rows differ only through per-row tensors (B,) of their settings.
The engine and the CTS trainer both call these, so training sees exactly the soft states
that decoding produces.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model.modeling import compute_dtype

NEG_INF = float("-inf")


def prepare_logits(logits: torch.Tensor, mask_id: int) -> torch.Tensor:
    """A copy of the logits in the compute dtype with the mask id at -inf: a mask is never
    proposed and takes no probability mass. logits: (..., V)."""
    out = logits.to(compute_dtype(logits.dtype), copy=True)
    out[..., mask_id] = NEG_INF
    return out


def gumbel_argmax(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """The reference's sampler: argmax of exp(l) / (-log u)^T with u ~ U(0,1) in float64.
    logits: (N, V) -> (N,)."""
    l64 = logits.to(torch.float64)
    u = torch.rand(l64.shape, dtype=torch.float64, device=l64.device, generator=generator)
    return (l64.exp() / (-torch.log(u)) ** temperature).argmax(-1)


def ordered_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over the last dim in index order, so zero padding leaves the result bit-identical."""
    acc = x[..., 0]
    for j in range(1, x.shape[-1]):
        acc = acc + x[..., j]
    return acc


def unmask_selection(
    conf: torch.Tensor,          # (B, W) confidence of this step's candidates
    masked: torch.Tensor,        # (B, W) bool: masked positions of the current block
    count: torch.Tensor,         # (B,) how many to unmask (count mode)
    threshold: torch.Tensor,     # (B,) confidence threshold, NaN = count mode
) -> torch.Tensor:
    """Which masked positions of the block are decoded now: the `count` most confident, or
    (threshold rows) all with conf >= threshold and at least the single most confident."""
    B, W = conf.shape
    score = torch.where(masked, conf, torch.full_like(conf, NEG_INF))
    order = score.argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(W, device=conf.device).expand(B, W))
    by_count = rank < count[:, None]
    thr = threshold[:, None]
    by_threshold = (conf >= thr) | (rank == 0)
    use_threshold = ~torch.isnan(thr)
    return masked & torch.where(use_threshold, by_threshold, by_count)


@dataclass
class SoftState:
    """Per position: K candidate tokens with weights, plus the weight of the position's own
    current token (the mask id for still-masked positions). (B, N, K) and (B, N)."""

    top_ids: torch.Tensor
    top_w: torch.Tensor
    cur_w: torch.Tensor
    top_probs: torch.Tensor  # the model's probabilities q_j of the candidates (for display)


def build_soft_state(
    logits: torch.Tensor,      # (B, N, V) prepared logits (mask id at -inf)
    lse: torch.Tensor,         # (B, N) logsumexp of `logits`
    masked: torch.Tensor,      # (B, N) bool: position still holds the mask id
    soft: torch.Tensor,        # (B, N) bool: position is fed softly (current block and later)
    k_soft: torch.Tensor,      # (B,) candidates per row
    alpha: torch.Tensor,       # (B,) alpha_soft_mask per row
    k_max: int,
) -> SoftState:
    """Step 7 of the method: mask-aware soft tokens for masked positions, pure soft tokens for
    decoded positions of the current block, hard tokens (weight 1 on the current token) for
    everything else."""
    top_logits, top_ids = logits.topk(k_max, dim=-1)
    q = (top_logits - lse[..., None]).exp()
    q = q * (torch.arange(k_max, device=q.device) < k_soft[:, None, None])
    s = ordered_sum(q)[..., None]
    a = alpha.to(q.dtype)[:, None, None]
    masked3 = masked[..., None]
    top_w = torch.where(masked3, (1 - a) * q / s, q / s)
    cur_w = torch.where(masked, alpha.to(q.dtype)[:, None], torch.zeros_like(s[..., 0]))
    top_w, cur_w = top_w.clamp_min(0), cur_w.clamp_min(0)
    total = ordered_sum(top_w) + cur_w
    top_w, cur_w = top_w / total[..., None], cur_w / total
    soft3 = soft[..., None]
    top_w = torch.where(soft3, top_w, torch.zeros_like(top_w))
    cur_w = torch.where(soft, cur_w, torch.ones_like(cur_w))
    return SoftState(top_ids=top_ids, top_w=top_w, cur_w=cur_w, top_probs=q)


def soft_candidates(state: SoftState, current_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The k+1 candidates of step 8 as (B, N, K+1) ids and weights, current token last."""
    ids = torch.cat([state.top_ids, current_ids[..., None]], dim=-1)
    weights = torch.cat([state.top_w, state.cur_w[..., None]], dim=-1)
    return ids, weights
