"""AdamW with linear warmup and cosine decay, the usual recipe for small transformers.

The decay can run on steps or on a wall-clock budget: on shared CPUs the step rate swings
with the neighbours' load, and a time budget still ends the run with the learning rate fully
annealed at the deadline instead of cut off mid-schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LRSchedule:
    peak_lr: float
    warmup_steps: int
    total_steps: int
    min_ratio: float
    time_budget_s: float | None = None

    def progress(self, step: int, elapsed_s: float) -> float:
        """Fraction of the run done: by steps, or by time when that is further along."""
        by_steps = step / max(1, self.total_steps)
        by_time = elapsed_s / self.time_budget_s if self.time_budget_s else 0.0
        return min(1.0, max(by_steps, by_time))

    def lr(self, step: int, elapsed_s: float = 0.0) -> float:
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return self.peak_lr * (step + 1) / self.warmup_steps
        done = self.progress(step, elapsed_s)
        start = self.warmup_steps / max(1, self.total_steps) if not self.time_budget_s else 0.0
        frac = min(1.0, max(0.0, (done - start) / max(1e-9, 1 - start)))
        return self.peak_lr * (self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))

    def finished(self, step: int, elapsed_s: float) -> bool:
        return step >= self.total_steps or (bool(self.time_budget_s) and elapsed_s >= self.time_budget_s)


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, beta2: float) -> torch.optim.AdamW:
    """Decay matrices only: norms' gains stay unregularised (they sit near 1 by design)."""
    decay, keep = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else keep).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=(0.9, beta2))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
