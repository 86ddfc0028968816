"""The masked-diffusion objective of LLaDA's SFT, as pure tensor functions.

Per row, a mask ratio t ~ U(eps, 1]; each answer-region token is replaced by the mask id
with probability t; the loss is the cross-entropy on the masked tokens weighted by 1/t (the
ELBO weighting), normalised by the row's total loss weight. The prompt is never masked.

`suffix_share` (default 0, LLaDA's objective exactly) is an opt-in variant: that share of the
rows masks the *last* t-fraction of its answer region instead of a random t-fraction, so the
model also learns to write the next tokens from a fully given prefix, which is what it must
do when it decodes, with nothing after it shown. Random masking alone almost never shows
it that case: some later copy of a result is nearly always visible, and a small model learns
to read the answer off it instead of computing it (model card, "Suffix masking").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .encoding import EncodedBatch


@dataclass
class NoisedBatch:
    noisy_ids: torch.Tensor  # (B, L) input with masked answer tokens
    masked: torch.Tensor     # (B, L) bool: which positions were masked
    t: torch.Tensor          # (B,) mask ratio of each row


def sample_mask_ratio(batch_size: int, eps: float, generator: torch.Generator | None,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """t in (eps, 1], stratified over the batch: row b gets a draw from the b-th of B equal
    slices of [0, 1), shuffled. Marginally still uniform, but every batch covers easy and
    hard noise levels, which steadies the 1/t-weighted loss of small batches."""
    u = torch.rand(batch_size, generator=generator, device=device)
    slot = torch.randperm(batch_size, generator=generator, device=device).to(u.dtype)
    stratified = (slot + u) / batch_size          # [0, 1)
    return eps + (1 - eps) * (1 - stratified)     # (eps, 1]


def add_mask_noise(batch: EncodedBatch, mask_id: int, eps: float,
                   generator: torch.Generator | None = None, suffix_share: float = 0.0) -> NoisedBatch:
    """Mask each answer-region token with probability t; with `suffix_share` > 0, that share
    of the rows instead masks the last ceil(t * n) of the n tokens of its answer and eot and
    all the padding after them, and its t becomes count / n. The answer region must be
    contiguous per row, answer before padding (as `encoding` builds it)."""
    ids = batch.input_ids
    t = sample_mask_ratio(ids.shape[0], eps, generator, ids.device)
    u = torch.rand(ids.shape, generator=generator, device=ids.device)
    masked = (u < t[:, None]) & batch.answer
    if suffix_share > 0:
        n = (batch.answer & (batch.weight >= 1)).sum(1)
        count = torch.ceil(t * n).clamp(1, None).minimum(n)
        position = batch.answer.cumsum(1)  # 1..n over the answer region
        suffix = batch.answer & (position > (n - count)[:, None])
        rows = torch.rand(ids.shape[0], generator=generator, device=ids.device) < suffix_share
        masked = torch.where(rows[:, None], suffix, masked)
        t = torch.where(rows, count / n.clamp_min(1), t)
    noisy = torch.where(masked, torch.full_like(ids, mask_id), ids)
    return NoisedBatch(noisy, masked, t)


def weighted_token_ce(logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy times `weight`, in float32. (B, L, V), (B, L), (B, L) -> (B, L)."""
    ce = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
    return ce.view_as(weight) * weight


def diffusion_loss(logits: torch.Tensor, batch: EncodedBatch, noised: NoisedBatch) -> torch.Tensor:
    """sum over masked tokens of w * CE / t, per row divided by the row's total answer weight,
    averaged over rows. logits: (B, L, V)."""
    token = weighted_token_ce(logits, batch.input_ids, batch.weight * noised.masked)
    per_row = token.sum(1) / noised.t / batch.weight.sum(1).clamp_min(1e-6)
    return per_row.mean()


def clean_copy_loss(logits: torch.Tensor, batch: EncodedBatch) -> torch.Tensor:
    """The model shown its clean row, nothing masked, scored on giving each answer token back:
    sum of w * CE over the answer region, per row divided by its total weight, averaged over
    rows. logits: (B, L, V) of `batch.input_ids`."""
    token = weighted_token_ce(logits, batch.input_ids, batch.weight * batch.answer)
    return (token.sum(1) / batch.weight.sum(1).clamp_min(1e-6)).mean()


def masked_accuracy(logits: torch.Tensor, batch: EncodedBatch, noised: NoisedBatch) -> float:
    """Share of masked non-padding tokens predicted exactly (a progress signal for the bar)."""
    real = noised.masked & (batch.weight >= 1)
    if not bool(real.any()):
        return float("nan")
    hit = logits.argmax(-1) == batch.input_ids
    return float((hit & real).sum() / real.sum())
