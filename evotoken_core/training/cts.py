"""Continuous trajectory supervision: the model is trained on its own decoding trajectory.

Per batch (the spec's section of that name): a block of length L inside each answer, ground
truth before it, masks after it and n_keep ~ U[0, L − K·u] of its positions left unmasked, so
that each of the K unrolled steps fills exactly u real masks; then K
unrolled steps. Each step runs the model on the current input, scores the logits against the
ground truth over the whole block, fills a fixed number of pre-chosen masked positions of the
block with the model's argmax, and rebuilds the soft input with `decoding.rules`, the same
code the decoder runs, detached. The loss is the mean over the K steps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from evotoken_core.decoding.rules import build_soft_state, prepare_logits, soft_candidates

from .diffusion import weighted_token_ce
from .encoding import EncodedBatch


@dataclass
class CTSPlan:
    """The random choices of one batch, drawn up front so a step is a pure function of them."""

    block_length: int
    unmask_count: int
    alpha: float
    block_start: torch.Tensor  # (B,) absolute index of the block's first position
    fill_rank: torch.Tensor    # (B, T) order in which masked block positions get filled; -1 elsewhere
    keep: torch.Tensor         # (B, T) bool: block positions left unmasked from the start

    def to(self, device: torch.device | str) -> CTSPlan:
        return CTSPlan(self.block_length, self.unmask_count, self.alpha, self.block_start.to(device),
                       self.fill_rank.to(device), self.keep.to(device))


@dataclass
class CTSStep:
    """What one unrolled step saw and produced (kept only when recording, for tests/debug)."""

    input_ids: torch.Tensor                # (B, T) canvas before the step
    soft_ids: torch.Tensor | None          # (B, T, k+1) soft candidates fed (None: hard input)
    soft_weights: torch.Tensor | None
    logits: torch.Tensor                   # (B, T, V) detached
    masked: torch.Tensor                   # (B, T) after this step's fill
    soft: torch.Tensor                     # (B, T)


@dataclass
class CTSResult:
    loss: torch.Tensor
    step_losses: list[float]
    block_accuracy: float                  # argmax == truth over real block tokens, last step
    trace: list[CTSStep] = field(default_factory=list)


def fitting_unmask_counts(block_length: int, unmask_counts: list[int], unroll_steps: int) -> list[int]:
    """The fill counts u a block of `block_length` can take: K·u < L, so that after keeping
    at most L − K·u positions every one of the K steps still has u masks to fill."""
    return [u for u in unmask_counts if unroll_steps * u < block_length]


def make_plan(batch: EncodedBatch, rng: random.Random, generator: torch.Generator,
              block_lengths: list[int], unmask_counts: list[int], alpha_range: tuple[float, float],
              *, unroll_steps: int, prefix_share: float = 0.0) -> CTSPlan:
    """The published plan: L, then u among the counts with K·u < L, then per row n_keep
    uniformly in [0, L − K·u], so every unrolled step fills exactly u masked positions.

    Blocks sit where the decoder puts them: at a multiple of L from the answer start. The kept
    positions are random ones, or, in a `prefix_share` of the rows, the block's first ones,
    the state of a block that is being written in order (a departure from the published
    trainer, off by default). The positions filled during the unroll are random either way,
    and with `prefix_share` 0 every draw is the same as without it."""
    B, T = batch.input_ids.shape
    device = batch.input_ids.device
    region = batch.answer_lengths
    L = rng.choice([b for b in block_lengths if b <= int(region.min())] or [int(region.min())])
    fitting = fitting_unmask_counts(L, unmask_counts, unroll_steps)
    if not fitting:
        raise ValueError(f"block length {L} leaves no unmask count u with {unroll_steps}·u < {L} "
                         f"(unmask counts {unmask_counts}): use longer blocks or smaller counts")
    u = rng.choice(fitting)
    alpha = rng.uniform(*alpha_range)
    n_blocks = torch.div(region, L, rounding_mode="floor")                     # (B,)
    j = (torch.rand(B, generator=generator, device=device) * n_blocks).floor().long()
    start = batch.answer_start + j * L
    pos = torch.arange(T, device=device)[None, :]
    in_block = (pos >= start[:, None]) & (pos < start[:, None] + L)
    most_kept = L - unroll_steps * u
    n_keep = (torch.rand(B, generator=generator, device=device) * (most_kept + 1)).floor().long()
    n_keep = n_keep.clamp_max(most_kept)                                        # 0..L-K·u
    score = torch.rand(B, T, generator=generator, device=device).masked_fill(~in_block, 2.0)
    rank = score.argsort(1).argsort(1)                                         # block first, random order
    keep = in_block & (rank < n_keep[:, None])
    fill_rank = torch.where(in_block & ~keep, rank - n_keep[:, None], torch.full_like(rank, -1))
    if prefix_share > 0:
        prefix_rows = torch.rand(B, generator=generator, device=device) < prefix_share
        keep = torch.where(prefix_rows[:, None], in_block & (pos - start[:, None] < n_keep[:, None]), keep)
        open_rank = score.masked_fill(keep, 3.0).argsort(1).argsort(1)        # random order of the rest
        fill_rank = torch.where(in_block & ~keep, open_rank, torch.full_like(rank, -1))
    return CTSPlan(L, u, alpha, start, fill_rank, keep)


def initial_canvas(batch: EncodedBatch, plan: CTSPlan, mask_id: int) -> torch.Tensor:
    """Ground truth before the block and at its kept positions, masks everywhere after."""
    pos = torch.arange(batch.input_ids.shape[1], device=batch.input_ids.device)[None, :]
    masked = (pos >= plan.block_start[:, None]) & ~plan.keep
    return batch.input_ids.masked_fill(masked, mask_id)


def block_weights(batch: EncodedBatch, plan: CTSPlan) -> torch.Tensor:
    """(B, T) loss weights over the blocks, scaled so that `(w * ce).sum(1).mean()` is the
    weighted mean over all block tokens of the batch. Normalising over the batch, not per
    row, keeps a block of pure end-of-text padding at its down-weighted share."""
    pos = torch.arange(batch.input_ids.shape[1], device=batch.input_ids.device)[None, :]
    in_block = (pos >= plan.block_start[:, None]) & (pos < plan.block_start[:, None] + plan.block_length)
    w = batch.weight * in_block
    return w * (w.shape[0] / w.sum().clamp_min(1e-6))


def next_soft_input(logits: torch.Tensor, canvas: torch.Tensor, soft: torch.Tensor, mask_id: int,
                    k_soft: int, alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Step 7-8 of the method through `decoding.rules`: (soft ids, soft weights, masked)."""
    prepared = prepare_logits(logits.detach(), mask_id)
    lse = prepared.logsumexp(-1)
    masked = canvas == mask_id
    B = canvas.shape[0]
    state = build_soft_state(prepared, lse, masked, soft,
                             torch.full((B,), k_soft, device=canvas.device, dtype=torch.long),
                             torch.full((B,), alpha, device=canvas.device, dtype=prepared.dtype), k_soft)
    ids, weights = soft_candidates(state, canvas)
    return ids, weights, masked


def cts_unroll(model, batch: EncodedBatch, plan: CTSPlan, mask_id: int, unroll_steps: int,
               k_soft: int, record: bool = False) -> CTSResult:
    """K steps of the trajectory; gradients flow through each step's forward, not between steps."""
    canvas = initial_canvas(batch, plan, mask_id)
    weights = block_weights(batch, plan)
    pos = torch.arange(canvas.shape[1], device=canvas.device)[None, :]
    soft = (pos >= plan.block_start[:, None]).expand_as(canvas)
    soft_ids = soft_w = None
    losses, trace = [], []
    for k in range(unroll_steps):
        fed = (canvas, soft_ids, soft_w)
        if soft_ids is None:  # the first step sees plain embeddings, like a request's first step
            logits = model(input_ids=canvas).logits
        else:
            logits = model(soft_ids=soft_ids, soft_weights=soft_w).logits
        losses.append(weighted_token_ce(logits, batch.input_ids, weights).sum(1).mean())
        with torch.no_grad():
            x0 = prepare_logits(logits.detach(), mask_id).argmax(-1)
            rank = plan.fill_rank
            fill = (rank >= k * plan.unmask_count) & (rank < (k + 1) * plan.unmask_count)
            canvas = torch.where(fill, x0, canvas)
            soft_ids, soft_w, masked = next_soft_input(logits, canvas, soft, mask_id, k_soft, plan.alpha)
            if record:
                trace.append(CTSStep(*fed, logits.detach(), masked, soft))
    with torch.no_grad():
        real = (weights > 0) & (batch.weight >= 1)
        hit = (logits.argmax(-1) == batch.input_ids) & real
        accuracy = float(hit.sum() / real.sum().clamp_min(1))
    loss = torch.stack(losses).mean()
    return CTSResult(loss, [float(v.detach()) for v in losses], accuracy, trace)
