"""The batching engine: every active request advances by one refinement step per forward.

`Engine.step()` is the one place decoding happens. It admits waiting requests, drops
cancelled ones, runs one forward pass over the whole batch (each row with its own prompt,
canvas, block schedule and settings), applies the rule of `decoding.step`, and returns a
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
from .decoding.guard import decision_margin
from .decoding.records import DecodeRequest, StepRecord
from .decoding.settings import SettingsError
from .decoding.step import BlockWindow, SpecialIds, StepOutcome, block_window, forbid_early_end, refine
from .model.loading import LoadedModel
from .model.modeling import compute_dtype
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
    guard_recomputes: int = 0


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
        eos = loaded.config.eos_token_id
        self.ids = SpecialIds(mask=self.mask_id,
                              ends=torch.tensor(loaded.end_ids or [eos], device=loaded.device),
                              fill=int(eos[0] if isinstance(eos, (list, tuple)) else eos))
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
        """Admit waiting requests, run the model, apply the decoding rule, emit a record per row."""
        records = self._admit()
        if not self.batch.rows:
            return records
        rows = list(self.batch.rows)
        rng = [(r.generator, r.generator.get_state()) for r in rows if r.generator is not None]
        try:
            if self.fault_hook is not None:
                self.fault_hook([r.request.request_id for r in rows])
            t0 = time.perf_counter()
            guarded = self._guarded_rows()
            window, region, logits = self._run_model()
            if guarded:
                region, logits = self._guard(guarded, window, region, logits)
            t1 = time.perf_counter()  # the model forward ends with its output head
            outcome = self._apply_rule(window, region, logits)
            records += self._emit(outcome)
            self.stats.forward_s += t1 - t0
            self.stats.decode_s += time.perf_counter() - t1
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
            nfe = int(self.batch.t.nfe[index])
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

    def _run_model(self):
        """The forward pass over every row's region, and the output head on it."""
        b = self.batch
        window = block_window(b.t, b.window, b.G)
        region = self.runner.run(b, window)
        return window, region, self.model.logits(region.hidden)

    def _guarded_rows(self) -> list[int]:
        """Rows whose forward this step reads their cache under a `cache_guard`."""
        return [i for i, r in enumerate(self.batch.rows) if r.settings.cache_guard > 0 and not r.full_forward_now()]

    def _guard(self, guarded: list[int], window: BlockWindow, region, logits: torch.Tensor):
        """The cache guard: recomputes exactly the `guarded` rows whose step was too close to
        call (`decoding.guard`); returns the step's region and logits."""
        b, rows = self.batch, self.batch.rows
        logits_b = region.at_block(logits)
        if self._bans_early_end():  # the margins of the logits the rule reads
            logits_b = forbid_early_end(logits_b.clone(), window.cols, b.t.min_tokens, self.ids.ends)
        margin = decision_margin(b.t, b.gen_ids, logits_b, window.cols, window.valid, self.mask_id).tolist()
        trips = [i for i in guarded if margin[i] < rows[i].settings.cache_guard]
        if not trips:
            return region, logits
        region = self.runner.recompute(b, window, region, trips)
        extra = torch.zeros_like(b.t.nfe)  # the cached forward was spent too
        extra[trips] = 1
        b.t.nfe = b.t.nfe + extra
        self.stats.guard_recomputes += len(trips)
        self.stats.forwards += 1
        return region, self.model.logits(region.hidden)

    def _bans_early_end(self) -> bool:
        """Some row's `min_tokens` bans end tokens this step (`decoding.step.forbid_early_end`)."""
        return any(r.settings.min_tokens > 0 for r in self.batch.rows)

    def _apply_rule(self, window: BlockWindow, region, logits: torch.Tensor) -> StepOutcome:
        rows = self.batch.rows
        samplers = [(i, r.settings, r.generator) for i, r in enumerate(rows) if r.generator is not None]
        return refine(self.batch.t, self.batch.gen_ids, region, logits, window, samplers, self.ids, self.batch.K,
                      any_evotoken=any(r.settings.evotoken for r in rows),
                      any_min_tokens=self._bans_early_end(),
                      any_stable=any(r.settings.threshold_stable and r.settings.threshold is not None for r in rows),
                      want_detail=any(r.request.want_steps for r in rows))

    def _emit(self, out: StepOutcome) -> list[StepRecord]:
        """Commit the step (the batch changed nothing before every result existed, so a failed
        step can be retried or split) and report it; finished rows leave."""
        b = self.batch
        b.t = out.t
        b.t.ids[:, b.P:] = out.gen
        self.stats.steps += 1
        self.stats.forwards += 1
        self.stats.rows_stepped += len(b.rows)
        p = out.progress
        return b.emit_records(out.gen, out.states, p.confirmed, p.finished, out.block_before, out.detail)
