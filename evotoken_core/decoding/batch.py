"""The batch: every active request as one row of padded tensors, re-laid out on join/leave.

Layout: each row's canvas is `[left pad | prompt | generated | right pad]`, with every
row's generated region starting at the same column `P` (the longest prompt). Generated
positions of all rows therefore share the columns `P:P+G`, and per-position state lives in
(B, G) tensors. Position ids count from each row's first prompt token, and padded keys are
masked, so a row decodes exactly as it would alone.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import torch

from .records import DecodeRequest, StepRecord
from .tensors import BatchTensors


@dataclass
class Row:
    """Host-side facts about one active request."""

    request: DecodeRequest
    generator: torch.Generator | None  # per-request RNG: results do not depend on batch-mates
    steps_done: int = 0
    block: int = 0               # host copy of the row's current block
    cache_fresh: bool = False    # its K/V cache was refreshed in this block (cache modes only)
    block_step: int = 0          # host copy of the row's steps done in the current block

    @property
    def settings(self):
        return self.request.settings

    def full_forward_now(self) -> bool:
        """Whether this step recomputes the whole canvas (refreshing a cached row's K/V).

        A cached row does at its block's first step, and in EvoToken mode again at the
        second: at the first, the previous block is still fed as soft tokens (the method's
        order; at the very first step, the canvas is plain masks), so only from the second on
        does the canvas outside the block stay what exact decoding feeds for the rest of the
        block. `cache_refresh` r adds every r-th step.
        """
        s = self.settings
        if s.cache == "none" or not self.cache_fresh:
            return True
        if s.cache_refresh and self.block_step % s.cache_refresh == 0:
            return True
        return s.evotoken and self.block_step == 1


class BatchState:
    """The typed per-row tensors `t` plus the host-side `rows`; the engine replaces `t` after
    each step, once every result of the step exists."""

    def __init__(self, device: torch.device, prob_dtype: torch.dtype, mask_id: int,
                 kv_shape: tuple[int, int, int] = (0, 0, 0), kv_dtype: torch.dtype = torch.float32):
        self.device, self.prob_dtype, self.mask_id = device, prob_dtype, mask_id
        self.kv_shape, self.kv_dtype = kv_shape, kv_dtype  # (layers, kv heads, head dim)
        self.rows: list[Row] = []
        self.P = self.G = self.K = 0
        self.t: BatchTensors | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def window(self) -> int:
        """W: the widest block among the rows, the width of every row's block window."""
        return max(r.settings.block_length for r in self.rows)

    # --- layout --------------------------------------------------------------------------
    def _kv_new(self, n: int, P: int, G: int) -> torch.Tensor:
        layers, heads, hd = self.kv_shape
        return torch.zeros((n, layers, 2, heads, P + G + 1, hd), dtype=self.kv_dtype, device=self.device)

    def _new_rows(self, requests: list[DecodeRequest], P: int, G: int, K: int) -> BatchTensors:
        dev, n = self.device, len(requests)
        s = [r.settings for r in requests]

        def row(values, dtype):
            return torch.tensor(values, dtype=dtype, device=dev)

        ids = torch.full((n, P + G), self.mask_id, dtype=torch.long, device=dev)
        for i, r in enumerate(requests):
            ids[i, P - len(r.prompt_ids):P] = torch.tensor(r.prompt_ids, dtype=torch.long)
        zeros = torch.zeros(n, dtype=torch.long, device=dev)
        wants_kv = any(x.cache != "none" for x in s)
        return BatchTensors(
            prompt_len=row([len(r.prompt_ids) for r in requests], torch.long),
            gen_len=row([x.gen_length for x in s], torch.long),
            block_len=row([x.block_length for x in s], torch.long),
            steps_per_block=row([x.steps_per_block for x in s], torch.long),
            num_blocks=row([x.num_blocks for x in s], torch.long),
            k_soft=row([x.k_soft for x in s], torch.long),
            alpha=row([x.alpha_soft_mask for x in s], self.prob_dtype),
            threshold=row([float("nan") if x.threshold is None else x.threshold for x in s], self.prob_dtype),
            threshold_stable=row([x.threshold_stable for x in s], torch.bool),
            evotoken=row([x.evotoken for x in s], torch.bool),
            early_end=row([x.early_end for x in s], torch.bool),
            min_tokens=row([x.min_tokens for x in s], torch.long),
            block=zeros, step_in_block=zeros.clone(), nfe=zeros.clone(),
            ids=ids,
            conf=torch.full((n, G), float("nan"), dtype=self.prob_dtype, device=dev),
            top_ids=torch.zeros((n, G, K), dtype=torch.long, device=dev),
            top_w=torch.zeros((n, G, K), dtype=self.prob_dtype, device=dev),
            cur_w=torch.ones((n, G), dtype=self.prob_dtype, device=dev),
            soft_on=torch.zeros((n, G), dtype=torch.bool, device=dev),
            proposal=torch.full((n, G), -1, dtype=torch.long, device=dev),
            kv=self._kv_new(n, P, G) if wants_kv else None,
        )

    def add(self, requests: list[DecodeRequest]) -> None:
        if not requests:
            return
        P = max([self.P] + [len(r.prompt_ids) for r in requests])
        G = max([self.G] + [r.settings.gen_length for r in requests])
        K = max([self.K] + [r.settings.k_soft for r in requests])
        new = self._new_rows(requests, P, G, K)
        if self.rows:
            self.t = self.t.relaid(P - self.P, G - self.G, K - self.K, self.mask_id).cat(new)
        else:
            self.t = new
        self.P, self.G, self.K = P, G, K
        for r in requests:
            s = r.settings
            gen = None
            if s.temperature > 0 or s.remasking == "random":
                gen = torch.Generator(device=self.device)
                gen.manual_seed(s.seed if s.seed is not None else secrets.randbits(63))
            self.rows.append(Row(request=r, generator=gen))

    def keep(self, keep: list[int]) -> None:
        """Drop every row not listed, then trim the padding the dropped rows needed."""
        if len(keep) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in keep]
        if not self.rows:
            self.t, self.P, self.G, self.K = None, 0, 0, 0
            return
        t = self.t.select(torch.tensor(keep, dtype=torch.long, device=self.device))
        if t.kv is not None and not any(r.settings.cache != "none" for r in self.rows):
            t.kv = None
        P = max(len(r.request.prompt_ids) for r in self.rows)
        G = max(r.settings.gen_length for r in self.rows)
        K = max(r.settings.k_soft for r in self.rows)
        self.t = t.relaid(P - self.P, G - self.G, K - self.K, self.mask_id)
        self.P, self.G, self.K = P, G, K

    def emit_records(self, gen, states, confirmed, finished, block_before, detail) -> list[StepRecord]:
        """One record per row from this step's results (moved to the CPU together); rows
        that finished leave the batch."""
        gen_c, states_c = gen.cpu(), states.cpu()
        meta = torch.stack([confirmed, finished.long(), block_before, self.t.nfe, self.t.block,
                            self.t.step_in_block], 1).tolist()
        records, keep = [], []
        for i, row in enumerate(self.rows):
            s, rid = row.settings, row.request.request_id
            conf_i, fin, blk, nfe, block_after, row.block_step = meta[i]
            if block_after != row.block:
                row.block, row.cache_fresh = block_after, False
            G = s.gen_length
            rec = StepRecord(rid, row.steps_done, blk, nfe, gen_c[i, :G], states_c[i, :G], conf_i,
                             blk * s.block_length, (blk + 1) * s.block_length)
            if detail is not None and row.request.want_steps:
                c, ti, tp, share = detail
                rec.conf, rec.top_ids, rec.top_probs = c[i, :G], ti[i, :G, : s.k_soft], tp[i, :G, : s.k_soft]
                rec.mask_share = share[i, :G]
            row.steps_done += 1
            if fin:
                rec.finish = "completed"
            else:
                keep.append(i)
            records.append(rec)
        self.keep(keep)
        return records

    # --- derived views ---------------------------------------------------------------------
    @property
    def gen_ids(self) -> torch.Tensor:
        """(B, G) view of the generated region of the canvas."""
        return self.t.ids[:, self.P:]

    def key_mask_and_positions(self) -> tuple[torch.Tensor, torch.Tensor]:
        cols = torch.arange(self.P + self.G, device=self.device)
        start = (self.P - self.t.prompt_len)[:, None]
        end = (self.P + self.t.gen_len)[:, None]
        return (cols >= start) & (cols < end), (cols - start).clamp_min(0)
