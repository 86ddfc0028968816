"""The optimisation loop both trainers share: autocast, clipping, schedule, progress,
metrics log and periodic checkpoints. What a step computes is passed in as `loss_fn`."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import checkpoint_dir, prune_checkpoints, save_trainer_state
from .config import TrainConfig
from .optim import LRSchedule, make_optimizer, set_lr
from .stop_rule import StopRule
from .threads import AdaptiveThreads

DIAGNOSTICS_FILE = "diagnostics.json"


@dataclass
class StepOutput:
    """What one step's loss function returns: the loss to minimise, the number of tokens
    the forward passes processed (for throughput) and any metrics to log."""

    loss: torch.Tensor
    tokens: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Monitor:
    """Diagnostics measured while training: at the start, every `every` steps and with every
    checkpoint (as `diagnostics.json` in it), appended to `out/diagnostics.jsonl` and printed
    with the progress output. The run ends early once `rule` holds."""

    measure: Callable[[], dict]
    every: int
    rule: StopRule = field(default_factory=lambda: StopRule(()))
    describe: Callable[[int, dict], str] = lambda step, d: f"diagnostics @ step {step}: {d}"


def setup_runtime(config: TrainConfig) -> torch.device:
    """Threads, denormals, seeds and device, once per process.

    Flushing denormals matters on CPUs: tiny values in a small model's activations otherwise
    take a slow microcode path (measured 10-25x slower decoding here).
    """
    if config.threads:  # 0 or None: see `Trainer` (0 adapts the count while training)
        torch.set_num_threads(config.threads)
    torch.set_flush_denormal(True)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """Noise of step `step` depends only on (seed, step): resuming replays it exactly."""
    gen = torch.Generator(device=device)
    gen.manual_seed((seed * 1_000_003 + step * 7_919 + 17) % (2**63 - 1))
    return gen


class Trainer:
    """Runs `loss_fn(step)` under autocast, steps AdamW on the schedule, logs and checkpoints.

    `save_model(directory)` writes the model part of a checkpoint (full weights or an
    adapter); the trainer adds the optimizer state, step and elapsed time beside it.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        loss_fn: Callable[[int], StepOutput],
        save_model: Callable[[Path], None],
        device: torch.device,
        resume_state: dict | None = None,
        show_progress: bool = True,
        monitor: Monitor | None = None,
    ):
        self.model, self.config, self.loss_fn, self.save_model = model, config, loss_fn, save_model
        self.device, self.show_progress = device, show_progress
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(model, config.lr, config.weight_decay, config.beta2)
        budget = config.time_budget_min * 60 if config.time_budget_min else None
        self.schedule = LRSchedule(config.lr, config.warmup_steps, config.steps, config.min_lr_ratio, budget)
        self.step, self.elapsed_s = 0, 0.0
        if resume_state is not None:
            self.optimizer.load_state_dict(resume_state["optimizer"])
            self.step, self.elapsed_s = resume_state["step"], resume_state.get("elapsed_s", 0.0)
        self.history: list[dict] = []
        self.threads = AdaptiveThreads() if config.threads == 0 and device.type == "cpu" else None
        self.monitor = monitor
        self.diagnostics: tuple[int, dict] | None = None  # (step, values) of the latest measurement
        self.stopped_by_rule = False

    def train_step(self, step: int) -> dict[str, float]:
        self.model.train()
        lr = self.schedule.lr(step, self.elapsed_s)
        set_lr(self.optimizer, lr)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16):
            out = self.loss_fn(step)
        out.loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss": float(out.loss.detach()), "grad_norm": float(grad_norm), "tokens": out.tokens,
                "lr": lr, **out.metrics}

    def checkpoint(self, metrics: dict) -> Path:
        directory = checkpoint_dir(self.config.out, self.step)
        directory.mkdir(parents=True, exist_ok=True)
        self.save_model(directory)
        if self.monitor is not None:
            (directory / DIAGNOSTICS_FILE).write_text(json.dumps(self.diagnose(), indent=2))
        save_trainer_state(directory, self.step, self.elapsed_s, self.optimizer, self.config.to_dict(), metrics)
        prune_checkpoints(self.config.out, self.config.keep_checkpoints)
        return directory

    def diagnose(self, bar=None) -> dict:
        """The monitor's diagnostics at the current step (measured once per step), logged,
        printed, and checked against the stop rule."""
        if self.diagnostics is not None and self.diagnostics[0] == self.step:
            return self.diagnostics[1]
        values = {"step": self.step, **self.monitor.measure()}
        self.diagnostics = (self.step, values)
        with (Path(self.config.out) / "diagnostics.jsonl").open("a") as f:
            f.write(json.dumps(values) + "\n")
        line = self.monitor.describe(self.step, values)
        if self.monitor.rule.met(values):
            self.stopped_by_rule = True
            line += f"  -> stop rule {self.monitor.rule} met"
        if self.show_progress:
            (bar.write if bar is not None else print)(line)
        return values

    def _finished(self) -> bool:
        stop = self.config.stop_at_step
        return (self.stopped_by_rule or self.schedule.finished(self.step, self.elapsed_s)
                or (stop > 0 and self.step >= stop))

    def run(self) -> list[dict]:
        """Train from the current step until the step count or the time budget is reached."""
        cfg = self.config
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        log = (out / "metrics.jsonl").open("a")
        bar = tqdm(initial=self.step, total=cfg.steps, disable=not self.show_progress,
                   dynamic_ncols=True, mininterval=2.0)
        ema, tokens, run_s = math.nan, 0, 0.0
        if self.monitor is not None:
            self.diagnose(bar)
        try:
            while not self._finished():
                t0 = time.perf_counter()
                m = self.train_step(self.step)
                dt = time.perf_counter() - t0
                if self.threads is not None:
                    self.threads.record(dt)
                    m["threads"] = torch.get_num_threads()
                self.step, self.elapsed_s, run_s = self.step + 1, self.elapsed_s + dt, run_s + dt
                ema = m["loss"] if math.isnan(ema) else 0.98 * ema + 0.02 * m["loss"]
                tokens += m["tokens"]
                m.update(step=self.step, loss_ema=ema, elapsed_s=self.elapsed_s, tokens_per_s=tokens / run_s)
                self.history.append(m)
                bar.update(1)
                bar.set_postfix(loss=f"{ema:.3f}", tok_s=f"{m['tokens_per_s']:.0f}", lr=f"{m['lr']:.1e}")
                if self.monitor is not None and self.monitor.every and self.step % self.monitor.every == 0:
                    self.diagnose(bar)
                done = self._finished()
                if self.step % 10 == 0 or done:
                    log.write(json.dumps(m) + "\n")
                    log.flush()
                if self.step % cfg.checkpoint_every == 0 or done:
                    self.checkpoint({"loss_ema": ema, "elapsed_s": self.elapsed_s})
        finally:
            bar.close()
            log.close()
        return self.history
