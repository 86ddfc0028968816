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
import torch.nn.functional as F

from .records import DecodeRequest, StepRecord


@dataclass
class Row:
    """Host-side facts about one active request."""

    request: DecodeRequest
    generator: torch.Generator | None  # per-request RNG: results do not depend on batch-mates
    steps_done: int = 0
    block: int = 0               # host copy of the row's current block
    cache_fresh: bool = False    # its K/V cache was refreshed in this block (cache modes only)


# tensor name -> (layout, fill value). "row": (B,); "gen": (B, G, ...); "canvas": (B, P+G)
_LAYOUT = {
    "prompt_len": ("row", 0), "gen_len": ("row", 0), "block_len": ("row", 1),
    "steps_per_block": ("row", 1), "num_blocks": ("row", 1), "k_soft": ("row", 1),
    "alpha": ("row", 0.0), "temperature": ("row", 0.0), "threshold": ("row", float("nan")),
    "evotoken": ("row", False), "random_remask": ("row", False), "early_end": ("row", True),
    "block": ("row", 0), "step_in_block": ("row", 0), "nfe": ("row", 0),
    "ids": ("canvas", None), "conf": ("gen", float("nan")),
    "top_ids": ("gen", 0), "top_w": ("gen", 0.0), "cur_w": ("gen", 1.0), "soft_on": ("gen", False),
}


def _pad(t: torch.Tensor, pad: tuple[int, ...], value) -> torch.Tensor:
    if t.dtype == torch.bool:
        return F.pad(t.to(torch.uint8), pad, value=int(bool(value))).bool()
    return F.pad(t, pad, value=value)


class BatchState:
    """Padded per-row tensors plus the host-side `rows`; the engine mutates them per step."""

    def __init__(self, device: torch.device, prob_dtype: torch.dtype, mask_id: int,
                 kv_shape: tuple[int, int, int] = (0, 0, 0), kv_dtype: torch.dtype = torch.float32):
        self.device, self.prob_dtype, self.mask_id = device, prob_dtype, mask_id
        self.kv_shape, self.kv_dtype = kv_shape, kv_dtype  # (layers, kv heads, head dim)
        self.rows: list[Row] = []
        self.P = self.G = self.K = 0
        self.t: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getattr__(self, name: str) -> torch.Tensor:
        t = self.__dict__.get("t")
        if t is not None and name in t:
            return t[name]
        raise AttributeError(name)

    # --- layout --------------------------------------------------------------------------
    def _resize(self, P: int, G: int, K: int) -> None:
        """Pad or trim every tensor to a new longest prompt P, canvas G and candidate count K."""
        for name, (layout, fill) in _LAYOUT.items():
            t = self.t[name]
            if layout == "canvas":
                left, right = P - self.P, G - self.G
                t = _pad(t, (left, right), self.mask_id)
            elif layout == "gen":
                if t.dim() == 3 and K != self.K:
                    t = _pad(t, (0, K - self.K), fill)
                t = _pad(t, (0, 0, 0, G - self.G) if t.dim() == 3 else (0, G - self.G), fill)
            self.t[name] = t
        if "kv" in self.t:
            self.t["kv"] = self._kv_relayout(self.t["kv"], P - self.P, G - self.G)
        self.P, self.G, self.K = P, G, K

    def _kv_relayout(self, kv: torch.Tensor, left: int, right: int) -> torch.Tensor:
        """K/V cache (B, layers, 2, kv heads, L + 1, hd): its last column is a write-only
        dummy for padded queries, so the canvas is padded or trimmed before it."""
        body = kv[..., :-1, :]
        body = F.pad(body, (0, 0, max(left, 0), max(right, 0)))
        if left < 0 or right < 0:
            end = body.shape[-2] + min(right, 0)
            body = body[..., -min(left, 0): end, :]
        return torch.cat([body, torch.zeros_like(body[..., :1, :])], dim=-2)

    def _kv_new(self, n: int, P: int, G: int) -> torch.Tensor:
        layers, heads, hd = self.kv_shape
        return torch.zeros((n, layers, 2, heads, P + G + 1, hd), dtype=self.kv_dtype, device=self.device)

    def _new_rows(self, requests: list[DecodeRequest], P: int, G: int, K: int) -> dict[str, torch.Tensor]:
        dev, n = self.device, len(requests)
        s = [r.settings for r in requests]
        row = lambda values, dtype: torch.tensor(values, dtype=dtype, device=dev)  # noqa: E731
        new = {
            "prompt_len": row([len(r.prompt_ids) for r in requests], torch.long),
            "gen_len": row([x.gen_length for x in s], torch.long),
            "block_len": row([x.block_length for x in s], torch.long),
            "steps_per_block": row([x.steps_per_block for x in s], torch.long),
            "num_blocks": row([x.num_blocks for x in s], torch.long),
            "k_soft": row([x.k_soft for x in s], torch.long),
            "alpha": row([x.alpha_soft_mask for x in s], self.prob_dtype),
            "temperature": row([x.temperature for x in s], torch.float64),
            "threshold": row([float("nan") if x.threshold is None else x.threshold for x in s], self.prob_dtype),
            "evotoken": row([x.evotoken for x in s], torch.bool),
            "random_remask": row([x.remasking == "random" for x in s], torch.bool),
            "early_end": row([x.early_end for x in s], torch.bool),
        }
        for name in ("block", "step_in_block", "nfe"):
            new[name] = torch.zeros(n, dtype=torch.long, device=dev)
        ids = torch.full((n, P + G), self.mask_id, dtype=torch.long, device=dev)
        for i, r in enumerate(requests):
            ids[i, P - len(r.prompt_ids):P] = torch.tensor(r.prompt_ids, dtype=torch.long)
        new["ids"] = ids
        new["conf"] = torch.full((n, G), float("nan"), dtype=self.prob_dtype, device=dev)
        new["top_ids"] = torch.zeros((n, G, K), dtype=torch.long, device=dev)
        new["top_w"] = torch.zeros((n, G, K), dtype=self.prob_dtype, device=dev)
        new["cur_w"] = torch.ones((n, G), dtype=self.prob_dtype, device=dev)
        new["soft_on"] = torch.zeros((n, G), dtype=torch.bool, device=dev)
        return new

    def add(self, requests: list[DecodeRequest]) -> None:
        if not requests:
            return
        P = max([self.P] + [len(r.prompt_ids) for r in requests])
        G = max([self.G] + [r.settings.gen_length for r in requests])
        K = max([self.K] + [r.settings.k_soft for r in requests])
        new = self._new_rows(requests, P, G, K)
        wants_kv = "kv" in self.t or any(r.settings.cache != "none" for r in requests)
        if self.rows:
            self._resize(P, G, K)
            if wants_kv and "kv" not in self.t:
                self.t["kv"] = self._kv_new(len(self.rows), P, G)
            self.t = {name: torch.cat([self.t[name], new[name]]) for name in _LAYOUT} | (
                {"kv": torch.cat([self.t["kv"], self._kv_new(len(requests), P, G)])} if wants_kv else {})
        else:
            self.t, self.P, self.G, self.K = new, P, G, K
            if wants_kv:
                self.t["kv"] = self._kv_new(len(requests), P, G)
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
            self.t, self.P, self.G, self.K = {}, 0, 0, 0
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.t = {name: t.index_select(0, index) for name, t in self.t.items()}
        P = int(max(len(r.request.prompt_ids) for r in self.rows))
        G = int(max(r.request.settings.gen_length for r in self.rows))
        K = int(max(r.request.settings.k_soft for r in self.rows))
        trim_left = self.P - P
        self.t["ids"] = self.t["ids"][:, trim_left: trim_left + P + G]
        if "kv" in self.t:
            if any(r.request.settings.cache != "none" for r in self.rows):
                self.t["kv"] = self._kv_relayout(self.t["kv"], P - self.P, G - self.G)
            else:
                del self.t["kv"]
        for name, (layout, _) in _LAYOUT.items():
            if layout == "gen":
                t = self.t[name][:, :G]
                self.t[name] = t[..., :K] if t.dim() == 3 else t
        self.P, self.G, self.K = P, G, K

    def emit_records(self, gen, states, confirmed, finished, block_before, detail) -> list[StepRecord]:
        """One record per row from this step's results (moved to the CPU together); rows
        that finished leave the batch."""
        gen_c, states_c = gen.cpu(), states.cpu()
        meta = torch.stack([confirmed, finished.long(), block_before, self.t["nfe"], self.t["block"]], 1).tolist()
        records, keep = [], []
        for i, row in enumerate(self.rows):
            s, rid = row.request.settings, row.request.request_id
            conf_i, fin, blk, nfe, block_after = meta[i]
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
        return self.t["ids"][:, self.P:]

    def key_mask_and_positions(self) -> tuple[torch.Tensor, torch.Tensor]:
        cols = torch.arange(self.P + self.G, device=self.device)
        start = (self.P - self.prompt_len)[:, None]
        end = (self.P + self.gen_len)[:, None]
        return (cols >= start) & (cols < end), (cols - start).clamp_min(0)
