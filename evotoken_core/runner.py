"""The model side of a step: which positions to recompute, with or without the K/V cache.

Returns hidden states for each row's *region*: the generated positions whose logits the
step needs. Rows decoded without a cache (or whose cache is stale, at a block start) run a
full forward; their region is the whole canvas when any of them is in EvoToken mode (the
soft state covers every later block), else just the current block. Rows with a fresh cache
recompute only the current block ("dual") or everything from it on ("prefix") and attend
over the cached keys and values of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .decoding.batch import BatchState, Row
from .decoding.settings import DecodeSettings
from .decoding.step import BlockWindow
from .model.modeling import LLaDAModelLM, soft_embed


@dataclass
class Region:
    """Per row, N positions of the generated region (B, N): hidden states, their canvas
    column in gen coordinates, validity; and where the current block sits in it (B, W)."""

    hidden: torch.Tensor
    cols: torch.Tensor
    valid: torch.Tensor
    block_index: torch.Tensor

    def at_block(self, x: torch.Tensor) -> torch.Tensor:
        """Per-region values (B, N, ...) at the current block's positions (B, W, ...)."""
        B, W = self.block_index.shape
        extra = [1] * (x.dim() - 2)
        return x.gather(1, self.block_index.view(B, W, *extra).expand(B, W, *x.shape[2:]))

    def lifter(self, G: int):
        """A function taking per-region values (B, N, ...) onto the generated positions
        (B, G, ...), keeping `old` wherever this step computed nothing."""
        B, N = self.cols.shape
        inv = torch.full((B, G + 1), -1, dtype=torch.long, device=self.cols.device)
        target = torch.where(self.valid, self.cols, torch.full_like(self.cols, G))
        inv.scatter_(1, target, torch.arange(N, device=inv.device).expand(B, N))
        inv = inv[:, :G]
        inside, inv = inv >= 0, inv.clamp_min(0)

        def lift(x: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
            extra = [1] * (x.dim() - 2)
            index = inv.view(B, G, *extra).expand(B, G, *x.shape[2:])
            return torch.where(inside.view(B, G, *extra), x.gather(1, index), old)

        return lift


class ModelRunner:
    def __init__(self, model: LLaDAModelLM):
        self.model = model

    def embeddings(self, b: BatchState, rows: list[Row], settings: list[DecodeSettings]) -> torch.Tensor:
        """Plain token embeddings, with the soft mixture (step 8) where the soft state is on."""
        t, model = b.t, self.model
        emb = model.embed(t.ids)
        if any(s.evotoken and r.steps_done > 0 for s, r in zip(settings, rows)):
            mix = soft_embed(model.transformer.wte.weight,
                             torch.cat([t.top_ids, b.gen_ids[..., None]], -1),
                             torch.cat([t.top_w, t.cur_w[..., None]], -1))
            emb[:, b.P:] = torch.where(t.soft_on[..., None], mix, emb[:, b.P:])
        return emb

    def run(self, b: BatchState, window: BlockWindow) -> Region:
        """Hidden states over each row's region; `window` is where its current block sits."""
        rows = b.rows
        settings = [r.settings for r in rows]
        emb = self.embeddings(b, rows, settings)
        cached = [i for i, r in enumerate(rows) if not r.full_forward_now()]
        full = [i for i in range(len(rows)) if i not in set(cached)]
        parts = []
        if full:
            parts.append((full, *self._full(b, emb, rows, settings, full, window.cols, window.valid)))
        if cached:
            parts.append((cached, *self._cached(b, emb, rows, settings, cached, window)))
        return self._assemble(parts, b, window, emb.shape[-1])

    def recompute(self, b: BatchState, window: BlockWindow, region: Region, index: list[int]) -> Region:
        """`region` with the rows in `index` recomputed by a full forward (the cache guard's
        exact step; it refreshes their caches too). The other rows keep what they had."""
        rows = b.rows
        settings = [r.settings for r in rows]
        emb = self.embeddings(b, rows, settings)
        keep = [i for i in range(len(rows)) if i not in set(index)]
        parts = [(index, *self._full(b, emb, rows, settings, index, window.cols, window.valid))]
        if keep:
            idx = torch.tensor(keep, device=b.device)
            parts.append((keep, region.hidden[idx], region.cols[idx], region.valid[idx], region.block_index[idx]))
        return self._assemble(parts, b, window, emb.shape[-1])

    @staticmethod
    def _assemble(parts, b: BatchState, window: BlockWindow, D: int) -> Region:
        """One region from parts computed for disjoint sets of rows: (rows, hidden, cols,
        valid, block_index), each padded to the widest part."""
        if len(parts) == 1:
            return Region(*parts[0][1:])
        dev, B, W = b.device, len(b.rows), window.cols.shape[1]
        N = max(p[1].shape[1] for p in parts)
        hidden = parts[0][1].new_zeros((B, N, D))
        cols = torch.zeros((B, N), dtype=torch.long, device=dev)
        valid = torch.zeros((B, N), dtype=torch.bool, device=dev)
        block_index = torch.zeros((B, W), dtype=torch.long, device=dev)
        for index, h, c, v, bi in parts:
            idx = torch.tensor(index, device=dev)
            n = h.shape[1]
            hidden[idx, :n], cols[idx, :n], valid[idx, :n], block_index[idx] = h, c, v, bi
        return Region(hidden, cols, valid, block_index)

    def _full(self, b, emb, rows, settings, index, block_cols, block_valid):
        t, P, G, dev = b.t, b.P, b.G, b.device
        everyone = len(index) == len(rows)
        idx = torch.tensor(index, device=dev)
        pick = (lambda x: x) if everyone else (lambda x: x.index_select(0, idx))
        key_mask, positions = b.key_mask_and_positions()
        padded = any(len(rows[i].request.prompt_ids) != P or settings[i].gen_length != G for i in index)
        caching = [i for i in index if settings[i].cache != "none"]
        kv_out = [] if caching else None
        h = self.model.hidden(pick(emb), pick(key_mask) if padded else None, pick(positions), kv_out=kv_out)
        if caching:
            self._store_kv(b, index, kv_out)
            for i in caching:
                rows[i].cache_fresh = True
        if any(settings[i].evotoken for i in index):
            cols = torch.arange(G, device=dev).expand(len(index), G)
            valid = cols < pick(t.gen_len)[:, None]
            return h[:, P:], cols, valid, pick(block_cols)
        cols = pick(block_cols)
        hidden = h.gather(1, (P + cols)[..., None].expand(-1, -1, h.shape[-1]))
        W = cols.shape[1]
        return hidden, cols, pick(block_valid), torch.arange(W, device=dev).expand(len(index), W)

    def _store_kv(self, b: BatchState, index: list[int], kv_out) -> None:
        L = b.P + b.G
        idx = torch.tensor(index, device=b.device)
        for layer, (k, v) in enumerate(kv_out):
            b.t.kv[idx, layer, 0, :, :L] = k.to(b.t.kv.dtype)
            b.t.kv[idx, layer, 1, :, :L] = v.to(b.t.kv.dtype)

    def _cached(self, b, emb, rows, settings, index, window: BlockWindow):
        block_cols, block_valid = window.cols, window.valid
        t, P, G, dev = b.t, b.P, b.G, b.device
        L = P + G
        everyone = len(index) == len(rows)
        idx = torch.tensor(index, device=dev)
        pick = (lambda x: x) if everyone else (lambda x: x.index_select(0, idx))
        W = block_cols.shape[1]
        if any(settings[i].cache == "prefix" for i in index):
            Q = max(settings[i].gen_length - rows[i].block * settings[i].block_length for i in index)
            Q = max(Q, W)
        else:
            Q = W
        q = torch.arange(Q, device=dev)
        start = pick(window.start)[:, None]
        gen_cols = start + q                                                  # (C, Q)
        dual = torch.tensor([settings[i].cache == "dual" for i in index], device=dev)[:, None]
        limit = torch.where(dual, start + pick(t.block_len)[:, None], pick(t.gen_len)[:, None])
        active = gen_cols < limit
        canvas_cols = torch.where(active, P + gen_cols, torch.full_like(gen_cols, L))  # L = dummy column
        key_mask, positions = b.key_mask_and_positions()
        key_mask = F.pad(pick(key_mask), (0, 1), value=False)
        e = pick(emb).gather(1, canvas_cols.clamp(max=L - 1)[..., None].expand(-1, -1, emb.shape[-1]))
        pos = pick(positions).gather(1, canvas_cols.clamp(max=L - 1))
        kv = pick(t.kv)
        layers = [(kv[:, layer, 0], kv[:, layer, 1]) for layer in range(kv.shape[1])]
        h = self.model.hidden(e, key_mask, pos, kv=layers, cols=canvas_cols)
        block_index = torch.arange(W, device=dev).expand(len(index), W)
        if any(settings[i].cache == "prefix" and settings[i].evotoken for i in index):
            # the later blocks were recomputed too: their soft state moves on as in exact decoding
            return h, gen_cols.clamp(max=G - 1), active, block_index
        return h[:, :W], pick(block_cols), pick(block_valid), block_index
