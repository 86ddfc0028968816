"""The batch's per-row tensors as one typed record, with the re-layouts that join and leave need.

Every field has a layout, and the layout alone decides how the field is padded, trimmed,
selected and concatenated when rows join or leave:

- "row": (B,), one value per request;
- "canvas": (B, P + G), the token ids `[left pad | prompt | generated | right pad]`;
- "gen": (B, G) or (B, G, K), one value (or K candidates) per generated position.

The optional K/V cache has its own layout, (B, layers, 2, kv heads, P + G + 1, head dim).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch
import torch.nn.functional as F


def _row(fill):
    return field(metadata={"layout": "row", "fill": fill})


def _gen(fill):
    return field(metadata={"layout": "gen", "fill": fill})


@dataclass
class BatchTensors:
    # a row's settings, fixed while it is in the batch (B,)
    prompt_len: torch.Tensor = _row(0)
    gen_len: torch.Tensor = _row(0)
    block_len: torch.Tensor = _row(1)
    steps_per_block: torch.Tensor = _row(1)
    num_blocks: torch.Tensor = _row(1)
    k_soft: torch.Tensor = _row(1)
    alpha: torch.Tensor = _row(0.0)
    threshold: torch.Tensor = _row(float("nan"))  # NaN: unmask a scheduled count instead
    threshold_stable: torch.Tensor = _row(False)
    evotoken: torch.Tensor = _row(False)
    early_end: torch.Tensor = _row(True)
    min_tokens: torch.Tensor = _row(0)
    # a row's progress (B,)
    block: torch.Tensor = _row(0)
    step_in_block: torch.Tensor = _row(0)
    nfe: torch.Tensor = _row(0)
    # the canvas (B, P + G)
    ids: torch.Tensor = field(metadata={"layout": "canvas", "fill": None})
    # per generated position: stored confidence (B, G) and the soft state of step 7
    conf: torch.Tensor = _gen(float("nan"))
    top_ids: torch.Tensor = _gen(0)          # (B, G, K)
    top_w: torch.Tensor = _gen(0.0)          # (B, G, K)
    cur_w: torch.Tensor = _gen(1.0)          # (B, G) weight of the position's own token
    soft_on: torch.Tensor = _gen(False)      # (B, G) fed as a soft token at the next step
    proposal: torch.Tensor = _gen(-1)        # (B, G) the candidate the last step proposed there
    kv: torch.Tensor | None = field(default=None, metadata={"layout": "kv", "fill": 0})

    def select(self, index: torch.Tensor) -> BatchTensors:
        """The rows at `index`, in that order."""
        return replace(self, **{f.name: _opt(getattr(self, f.name), lambda t: t.index_select(0, index))
                                for f in fields(self)})

    def cat(self, other: BatchTensors) -> BatchTensors:
        """These rows followed by `other`'s (same P, G, K; a missing cache counts as zeros)."""
        kv = None
        if self.kv is not None or other.kv is not None:
            kv = torch.cat([_or_zeros(self.kv, other.kv, len(self)), _or_zeros(other.kv, self.kv, len(other))])
        return replace(self, kv=kv, **{f.name: torch.cat([getattr(self, f.name), getattr(other, f.name)])
                                       for f in fields(self) if f.name != "kv"})

    def relaid(self, left: int, right: int, k_change: int, mask_id: int) -> BatchTensors:
        """Pad (positive) or trim (negative) the canvas by `left` prompt columns and `right`
        generated columns, and the candidate dimension by `k_change`."""
        changes = {"ids": _pad_or_trim(self.ids, left, right, mask_id)}
        for f in fields(self):
            t, fill = getattr(self, f.name), f.metadata["fill"]
            if f.metadata["layout"] == "gen":
                if t.dim() == 3:
                    t = _pad_or_trim(t.transpose(1, 2), 0, k_change, fill).transpose(1, 2)
                changes[f.name] = _pad_or_trim(t, 0, right, fill)
        if self.kv is not None:
            changes["kv"] = kv_relayout(self.kv, left, right)
        return replace(self, **changes)

    def __len__(self) -> int:
        return self.ids.shape[0]


def _opt(t: torch.Tensor | None, fn):
    return None if t is None else fn(t)


def _or_zeros(kv: torch.Tensor | None, like: torch.Tensor, n: int) -> torch.Tensor:
    return kv if kv is not None else like.new_zeros((n, *like.shape[1:]))


def _pad_or_trim(t: torch.Tensor, left: int, right: int, value) -> torch.Tensor:
    """Along dim 1 (after any batch dim): add `left`/`right` columns of `value`, or drop
    them where negative."""
    if left < 0 or right < 0:
        t = t[:, -min(left, 0): t.shape[1] + min(right, 0)]
    left, right = max(left, 0), max(right, 0)
    if not left and not right:
        return t
    pad = (0, 0) * (t.dim() - 2) + (left, right)
    if t.dtype == torch.bool:
        return F.pad(t.to(torch.uint8), pad, value=int(bool(value))).bool()
    return F.pad(t, pad, value=value)


def kv_relayout(kv: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """K/V cache (B, layers, 2, kv heads, L + 1, hd): its last column is a write-only dummy for
    padded queries, so the canvas is padded or trimmed before it."""
    body = kv[..., :-1, :]
    body = F.pad(body, (0, 0, max(left, 0), max(right, 0)))
    if left < 0 or right < 0:
        end = body.shape[-2] + min(right, 0)
        body = body[..., -min(left, 0): end, :]
    return torch.cat([body, torch.zeros_like(body[..., :1, :])], dim=-2)
