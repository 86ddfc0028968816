"""Timed runs of the engine, the reference loop and the HTTP server on one workload."""

from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass, field

import torch

from evotoken_core.decoding import DecodeRequest, DecodeSettings
from evotoken_core.engine import Engine
from evotoken_core.model import LoadedModel

from .reference_loop import reference_generate
from .workload import first_end_cut


@dataclass
class Run:
    """One measured configuration. Throughput counts answer tokens (cut at end-of-text)."""

    name: str
    concurrency: int
    requests: int
    seconds: float
    answer_tokens: int
    nfe_total: int
    forwards: int
    forward_s: float = 0.0
    decode_s: float = 0.0
    peak_mb: float = 0.0
    answers: list[list[int]] = field(default_factory=list, repr=False)

    @property
    def tok_s(self) -> float:
        return self.answer_tokens / self.seconds

    @property
    def s_per_request(self) -> float:
        """Wall time a request holds one of the `concurrency` slots, on average."""
        return self.seconds * self.concurrency / self.requests

    def row(self) -> dict:
        steps = max(self.forwards, 1)
        out = {k: v for k, v in asdict(self).items() if k != "answers"}
        out["peak_mb"] = round(self.peak_mb, 1) if self.peak_mb else None
        out["seconds"] = round(self.seconds, 3)
        counted = self.forwards > 0  # HTTP runs see answers, not the engine's forward passes
        out.update(tok_s=round(self.tok_s, 2), s_per_request=round(self.s_per_request, 4),
                   nfe_per_request=round(self.nfe_total / self.requests, 2) if counted else None,
                   tokens_per_forward=round(self.answer_tokens / steps, 3) if counted else None,
                   ms_per_step=round(1000 * (self.forward_s + self.decode_s) / steps, 3) if self.forward_s else None,
                   decode_share=round(self.decode_s / (self.forward_s + self.decode_s), 4) if self.forward_s else None)
        return out


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _reset_peak(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _peak_mb(device) -> float:
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_engine(loaded: LoadedModel, prompts: list[list[int]], settings: DecodeSettings, concurrency: int,
               name: str = "engine") -> Run:
    """All prompts through one engine with `concurrency` rows in flight (closed loop)."""
    engine = Engine(loaded, max_batch_size=concurrency)
    requests = [DecodeRequest(f"r{i}", p, settings) for i, p in enumerate(prompts)]
    answers: dict[str, list[int]] = {}
    nfe = 0
    _reset_peak(loaded.device)
    _sync(loaded.device)
    start = time.perf_counter()
    with torch.inference_mode():
        for rec in engine.stream(requests):
            if rec.finished:
                answers[rec.request_id] = first_end_cut(rec.gen_ids.tolist(), loaded.end_ids)
                nfe += rec.nfe
    _sync(loaded.device)
    seconds = time.perf_counter() - start
    ordered = [answers[r.request_id] for r in requests]
    s = engine.stats
    return Run(name, concurrency, len(prompts), seconds, sum(map(len, ordered)), nfe, s.forwards,
               s.forward_s, s.decode_s, _peak_mb(loaded.device), ordered)


def check_pairable(settings: DecodeSettings) -> None:
    """The published loop has neither `min_tokens` nor `threshold_stable`, which change the
    answers; paired with either, the two sides would decode different things. (The caches are
    allowed: the pairing then measures the cached engine's speed against the published loop's
    and reports how many answers agree.)"""
    extensions = [name for name, on in (("min_tokens", settings.min_tokens > 0),
                                        ("threshold_stable", settings.threshold_stable)) if on]
    if extensions:
        raise ValueError(f"the published loop has no {' or '.join(extensions)}: measure it with "
                         "the engine alone (no --reference), or unset it")


def run_paired(loaded: LoadedModel, prompts: list[list[int]], settings: DecodeSettings) -> tuple[Run, Run]:
    """The published loop and the engine at batch 1, alternating prompt by prompt, so that a
    change in machine load during the run hits both sides alike."""
    check_pairable(settings)
    ref = Run("reference", 1, len(prompts), 0.0, 0, 0, 0)
    eng = Run("engine", 1, len(prompts), 0.0, 0, 0, 0)
    for i, p in enumerate(prompts):
        _sync(loaded.device)
        start = time.perf_counter()
        with torch.inference_mode():
            ids, n = reference_generate(
                loaded.model, p, mask_id=loaded.mask_id, gen_length=settings.gen_length,
                block_length=settings.block_length, steps=settings.steps, temperature=settings.temperature,
                k_soft=settings.k_soft, alpha_soft_mask=settings.alpha_soft_mask,
                remasking=settings.remasking, threshold=settings.threshold, decoding=settings.decoding)
        _sync(loaded.device)
        ref.seconds += time.perf_counter() - start
        ref.answers.append(first_end_cut(ids, loaded.end_ids))
        ref.nfe_total += n
        ref.forwards += n
        one = run_engine(loaded, [p], settings, 1)
        for name in ("seconds", "nfe_total", "forwards", "forward_s", "decode_s"):
            setattr(eng, name, getattr(eng, name) + getattr(one, name))
        eng.answers += one.answers
    for run in (ref, eng):
        run.answer_tokens = sum(map(len, run.answers))
        run.peak_mb = _peak_mb(loaded.device)
    return ref, eng
