"""Choosing the CPU thread count while training on cores shared with other work.

Measured here: with two other busy processes on 2 cores, a 2-thread step took 3x longer than
a 1-thread step (the threads wait on each other at every op while one is descheduled); on
idle cores 2 threads are nearly twice as fast. So with `threads=0` the trainer keeps
re-measuring both and uses whichever is faster now.
"""

from __future__ import annotations

import os

import torch


class AdaptiveThreads:
    """Every `period` steps, run `probe` steps with the other thread count and keep the faster
    (medians, since single steps swing with the neighbours' load)."""

    def __init__(self, choices: tuple[int, ...] | None = None, period: int = 20, probe: int = 3):
        cores = os.cpu_count() or 1
        self.choices = choices or tuple(sorted({1, min(2, cores)}))
        self.period, self.probe = period, probe
        self.current = self.choices[0]  # 1 thread is never catastrophic; 2 must prove itself
        self.recent: list[float] = []   # step times with the current count
        self.trial: list[float] = []    # step times with the probed count
        self.probing: int | None = None
        self.steps = 0
        torch.set_num_threads(self.current)

    def record(self, step_s: float) -> None:
        """Feed the duration of the step just finished; may change torch's thread count."""
        if len(self.choices) < 2:
            return
        self.steps += 1
        if self.probing is not None:
            self.trial.append(step_s)
            if len(self.trial) >= self.probe:
                baseline = sorted(self.recent[-self.probe:])[len(self.recent[-self.probe:]) // 2] if self.recent else float("inf")
                trial = sorted(self.trial)[len(self.trial) // 2]
                if trial < baseline:
                    self.current, self.recent = self.probing, list(self.trial)
                self.probing, self.trial = None, []
                torch.set_num_threads(self.current)
            return
        self.recent = (self.recent + [step_s])[-self.probe * 2:]
        if self.steps % self.period == 0:
            self.probing = next(c for c in self.choices if c != self.current)
            torch.set_num_threads(self.probing)
