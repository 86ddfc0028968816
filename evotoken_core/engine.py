"""The batching engine: every active request advances by one refinement step per forward.

`Engine.step()` is the one place decoding happens. It admits waiting requests, drops
cancelled ones, runs one forward pass over the whole batch (each row with its own prompt,
canvas, block schedule and settings), applies the rules of `decoding.rules`, and returns a
`StepRecord` per request. `Engine.stream()` is the decode generator built on it; the CLI,
the evaluation harness and the server worker all consume those records.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from .decoding.batch import BatchState
from .decoding.records import DecodeRequest, StepRecord, TokenState
from .decoding.rules import build_soft_state, compute_dtype, gumbel_argmax, prepare_logits, unmask_selection
from .decoding.schedule import transfer_count_at
from .decoding.settings import SettingsError
from .model.loading import LoadedModel
from .runner import ModelRunner
from .scheduler import Scheduler

log = logging.getLogger(__name__)


@dataclass
class EngineStats:
    """Cumulative counters; `forward_s` vs `decode_s` splits each step's wall time."""

    steps: int = 0
    forwards: int = 0
    rows_stepped: int = 0
    forward_s: float = 0.0
    decode_s: float = 0.0


class Engine:
    def __init__(self, loaded: LoadedModel, max_batch_size: int = 32):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.loaded = loaded
        self.model = loaded.model
        self.max_batch_size = max_batch_size
        self.mask_id = loaded.mask_id
        self.vocab_size = loaded.config.vocab_size
        self.max_length = loaded.config.max_sequence_length
        self.end_ids = torch.tensor(loaded.end_ids or [loaded.config.eos_token_id], device=loaded.device)
        eos = loaded.config.eos_token_id
        self.fill_id = int(eos[0] if isinstance(eos, (list, tuple)) else eos)
        cfg = loaded.config
        self.batch = BatchState(loaded.device, compute_dtype(loaded.dtype), self.mask_id,
                                kv_shape=(cfg.n_layers, cfg.n_kv_heads, cfg.d_model // cfg.n_heads),
                                kv_dtype=loaded.dtype)
        self.runner = ModelRunner(self.model)
        self.stats = EngineStats()
        self.fault_hook: Callable[[list[str]], None] | None = None  # tests inject failures here
        self.scheduler = Scheduler(max_batch_size)

    # --- the thread-safe surface --------------------------------------------------------
    def validate(self, request: DecodeRequest) -> None:
        """Raise SettingsError for a request this model cannot run (before it is queued)."""
        s, ids = request.settings, request.prompt_ids
        if not ids:
            raise SettingsError("prompt", "the prompt is empty")
        if min(ids) < 0 or max(ids) >= self.vocab_size:
            raise SettingsError("prompt", f"prompt token ids must be in [0, {self.vocab_size})")
        if len(ids) + s.gen_length > self.max_length:
            raise SettingsError(
                "max_tokens",
                f"prompt ({len(ids)} tokens) plus canvas ({s.gen_length}) exceeds the model's "
                f"context of {self.max_length} tokens",
            )
        if s.k_soft > self.vocab_size - 1:
            raise SettingsError("k_soft", f"k_soft must be below the vocabulary size {self.vocab_size}")

    def submit(self, request: DecodeRequest) -> None:
        """Queue a request; it joins the batch at the next step."""
        self.validate(request)
        s = request.settings
        if s.seed is None and (s.temperature > 0 or s.remasking == "random"):
            # a concrete seed, so that a restart (after running out of memory) repeats the text
            request.settings = s.with_(seed=secrets.randbits(63))
        self.scheduler.submit(request)

    def cancel(self, request_id: str) -> None:
        """The request leaves before the next step, which reports it as cancelled."""
        self.scheduler.cancel(request_id)

    @property
    def active_count(self) -> int:
        return len(self.batch)

    @property
    def pending_count(self) -> int:
        return self.scheduler.pending_count

    @property
    def batch_cap(self) -> int:
        return self.scheduler.batch_cap

    # --- the decode generator -----------------------------------------------------------
    def stream(self, requests: Iterable[DecodeRequest] = ()) -> Iterator[StepRecord]:
        """Submit `requests`, then yield every record until no request is left."""
        for r in requests:
            self.submit(r)
        while self.batch.rows or self.scheduler.pending_count:
            yield from self.step()

    def step(self) -> list[StepRecord]:
        records = self._admit()
        if not self.batch.rows:
            return records
        rows = list(self.batch.rows)
        rng = [(r.generator, r.generator.get_state()) for r in rows if r.generator is not None]
        try:
            if self.fault_hook is not None:
                self.fault_hook([r.request.request_id for r in rows])
            records += self._advance()
            self.scheduler.stepped()
        except Exception as error:  # narrow the failure down to its rows; the engine stays usable
            for generator, state in rng:  # a retried step draws the same noise
                generator.set_state(state)
            records += self._split_after_failure(rows, error)
        return records

    # --- internals ----------------------------------------------------------------------
    def _split_after_failure(self, rows, error: Exception) -> list[StepRecord]:
        """Keep the first half of the batch and send the rest back to the front of the queue.

        Out of memory is usually the batch's size; any other exception may be one row's
        doing. Halving (with the batch size capped for a while) isolates it: a step changes
        nothing before it has all its results, so kept rows continue where they were, and
        requeued ones restart from their first step with the same seed and the same text. A
        row that fails on its own ends with an error record.
        """
        oom = isinstance(error, torch.OutOfMemoryError)
        if oom and self.loaded.device.type == "cuda":
            torch.cuda.empty_cache()
        ids = [r.request.request_id for r in rows]
        if len(rows) == 1:
            if oom:
                message = "out of memory: this request does not fit on the device"
            else:
                message = f"{type(error).__name__}: {error}"
            log.error("decode step failed for request %s", ids[0], exc_info=error)
            self.batch.keep([])
            record = self._terminal(rows[0].request, "error", message)
            record.error_kind = "out_of_memory" if oom else "step_failed"
            return [record]
        half = len(rows) // 2
        log.warning("%s with %d rows; continuing with %d, requeueing %s",
                    "out of memory" if oom else f"step failed ({type(error).__name__}: {error})",
                    len(rows), half, ids[half:])
        self.batch.keep(list(range(half)))
        self.scheduler.requeue_first(r.request for r in rows[half:])
        self.scheduler.shrink(half)
        return []

    def _terminal(self, request: DecodeRequest, finish: str, error: str | None = None, index: int | None = None) -> StepRecord:
        G = request.settings.gen_length
        if index is not None:
            ids = self.batch.gen_ids[index, :G].cpu()
            nfe = int(self.batch.nfe[index])
        else:
            ids, nfe = torch.full((G,), self.mask_id, dtype=torch.long), 0
        return StepRecord(request.request_id, -1, -1, nfe, ids, torch.zeros(G, dtype=torch.int8), 0, 0, 0,
                          finish=finish, error=error)

    def _admit(self) -> list[StepRecord]:
        joining, dropped, cancelled = self.scheduler.admit(len(self.batch))
        records = [self._terminal(r, "cancelled") for r in dropped]
        if cancelled and self.batch.rows:
            keep = []
            for i, row in enumerate(self.batch.rows):
                if row.request.request_id in cancelled:
                    records.append(self._terminal(row.request, "cancelled", index=i))
                else:
                    keep.append(i)
            self.batch.keep(keep)
        self.batch.add(joining)
        return records

    def _advance(self) -> list[StepRecord]:
        b, t0 = self.batch, time.perf_counter()
        t, rows, G, dev = b.t, b.rows, b.G, b.device
        settings = [r.request.settings for r in rows]
        any_evo = any(s.evotoken for s in settings)

        # 1. the forward pass, and logits only where this step needs them
        region = self.runner.run(b, rows, settings)
        logits = self.model.logits(region.hidden)
        t1 = time.perf_counter()  # the model forward ends with its output head
        logits_r = prepare_logits(logits, self.mask_id)                         # (B, N, V)
        lse_r = logits_r.logsumexp(-1)
        V = logits_r.shape[-1]
        logits_b = logits_r.gather(1, region.block_index[..., None].expand(-1, -1, V))  # (B, W, V)
        lse_b = lse_r.gather(1, region.block_index)
        W = logits_b.shape[1]
        block_len = t["block_len"]
        bs = t["block"] * block_len                                            # (B,) block start
        blk_cols = (bs[:, None] + torch.arange(W, device=dev)).clamp(max=G - 1)  # (B, W)
        valid_b = torch.arange(W, device=dev) < block_len[:, None]

        # 2-3. candidates x0 and their confidence
        x0 = logits_b.argmax(-1)
        for i, (row, s) in enumerate(zip(rows, settings)):
            if s.temperature > 0:
                x0[i, : s.block_length] = gumbel_argmax(logits_b[i, : s.block_length], s.temperature, row.generator)
        conf = (logits_b.gather(-1, x0[..., None])[..., 0] - lse_b).exp()
        for i, (row, s) in enumerate(zip(rows, settings)):
            if s.remasking == "random":
                conf[i, : s.block_length] = torch.rand(s.block_length, dtype=conf.dtype, device=dev,
                                                       generator=row.generator)

        # 4-6. unmask the scheduled / confident positions, revise decoded ones (EvoToken)
        gen = b.gen_ids
        ids_b = gen.gather(1, blk_cols)
        masked_b = (ids_b == self.mask_id) & valid_b
        count = transfer_count_at(block_len, t["steps_per_block"], t["step_in_block"])
        update_b = unmask_selection(conf, masked_b, count, t["threshold"])
        stored_b = t["conf"].gather(1, blk_cols)
        update_b |= t["evotoken"][:, None] & valid_b & ~masked_b & (conf > stored_b)

        cols = torch.arange(G, device=dev)
        rel = cols - bs[:, None]
        in_blk = (rel >= 0) & (rel < block_len[:, None])               # (B, G)
        rel = rel.clamp(0, W - 1)
        update = in_blk & update_b.gather(1, rel)
        gen = torch.where(update, x0.gather(1, rel), gen)
        # nothing in `t` changes until every result of the step exists (see _split_after_oom)
        new = {"conf": torch.where(update, conf.gather(1, rel), t["conf"])}

        # 7. the soft state for the next step, with this step's block boundaries
        valid_g = cols < t["gen_len"][:, None]
        masked_g = (gen == self.mask_id) & valid_g
        lift = region.lifter(G)                                          # region values -> (B, G)
        state = None
        if any_evo:
            masked_r = masked_g.gather(1, region.cols) & region.valid
            soft_r = region.valid & (region.cols >= bs[:, None]) & t["evotoken"][:, None]
            state = build_soft_state(logits_r, lse_r, masked_r, soft_r, t["k_soft"], t["alpha"], b.K)
            new["top_ids"] = lift(state.top_ids, t["top_ids"])
            new["top_w"] = lift(state.top_w, t["top_w"])
            new["cur_w"] = lift(state.cur_w, t["cur_w"])
            new["soft_on"] = lift(soft_r, t["soft_on"])

        # block bookkeeping, early end
        block_done = ~(masked_g & in_blk).any(1)
        ended = block_done & t["early_end"] & (torch.isin(gen, self.end_ids) & in_blk).any(1)
        gen = torch.where(ended[:, None] & (cols >= (bs + block_len)[:, None]) & valid_g,
                          torch.full_like(gen, self.fill_id), gen)
        block_before = t["block"]
        new["block"] = block_before + block_done.long()
        new["step_in_block"] = torch.where(block_done, torch.zeros_like(block_done, dtype=torch.long),
                                           t["step_in_block"] + 1)
        new["nfe"] = t["nfe"] + 1
        finished = ended | (new["block"] >= t["num_blocks"])
        confirmed = torch.where(finished, t["gen_len"], new["block"] * block_len)
        soft_g = new.get("soft_on", t["soft_on"]) & t["evotoken"][:, None]
        states = torch.where(cols < confirmed[:, None], TokenState.FINAL,
                             torch.where(masked_g, torch.where(soft_g, TokenState.SOFT, TokenState.MASKED),
                                         TokenState.DECODED)).to(torch.int8)
        detail = None
        if any(r.request.want_steps for r in rows):
            if state is None:
                v, i = logits_r.topk(b.K, dim=-1)
                top_ids, top_probs = i, (v - lse_r[..., None]).exp()
            else:
                top_ids, top_probs = state.top_ids, state.top_probs
            zeros = torch.zeros_like
            cur_w = new.get("cur_w", t["cur_w"])
            share = torch.where(masked_g & soft_g, cur_w, torch.full_like(cur_w, float("nan")))
            detail = (new["conf"].float().cpu(), lift(top_ids, zeros(t["top_ids"])).cpu(),
                      lift(top_probs, zeros(t["top_w"])).float().cpu(), share.float().cpu())
        t.update(new)
        t["ids"][:, b.P:] = gen
        records = b.emit_records(gen, states, confirmed, finished, block_before, detail)
        self.stats.steps += 1
        self.stats.forwards += 1
        self.stats.rows_stepped += len(rows)
        self.stats.forward_s += t1 - t0
        self.stats.decode_s += time.perf_counter() - t1
        return records
