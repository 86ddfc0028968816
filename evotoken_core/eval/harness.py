"""The evaluation harness: items x decoding runs -> answers -> scores -> one report.

A run is one decoding mode at one alpha. hard_mask decoding never reads `alpha_soft_mask`,
so it runs once per task (reported under alpha "none") however many alphas are swept; an
alpha sweep therefore costs one evotoken run per alpha plus one hard_mask run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from evotoken_core.decoding import DecodeSettings

from .datasets import EvalItem
from .generation import Generation, Job
from .scoring import predicted_answer

NO_ALPHA = "none"


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default): unlike the
    normal-approximation ± z·SE, it stays inside [0, 1] and is sound at 0 or n successes,
    which small sets and weak models produce. Two runs on the same items are compared with
    paired statistics (eval.paired), not by overlapping intervals."""
    if n == 0:
        return 0.0, 1.0
    p, z2 = correct / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Run:
    """One decoding configuration of a sweep."""

    mode: str
    alpha: float | None   # None for hard_mask, which has no soft state

    @property
    def alpha_key(self) -> str:
        return NO_ALPHA if self.alpha is None else f"{self.alpha:g}"

    def settings(self, base: DecodeSettings, item_index: int) -> DecodeSettings:
        """Per-item seed `seed + index`: every mode sees the same noise for the same item."""
        seed = None if base.seed is None else base.seed + item_index
        alpha = base.alpha_soft_mask if self.alpha is None else self.alpha
        return base.with_(decoding=self.mode, alpha_soft_mask=alpha, seed=seed)


def plan_runs(modes: Sequence[str], alphas: Sequence[float]) -> list[Run]:
    runs: list[Run] = []
    for mode in modes:
        if mode == "hard_mask":
            runs.append(Run(mode, None))
        else:
            runs.extend(Run(mode, a) for a in alphas)
    return list(dict.fromkeys(runs))


@dataclass
class RunResult:
    """Scores of one task under one run, with every answer kept for `--out`."""

    task: str
    run: Run
    records: list[dict] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.records)

    @property
    def correct(self) -> int:
        return sum(r["correct"] for r in self.records)

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def mean_nfe(self) -> float | None:
        nfes = [r["nfe"] for r in self.records if r["nfe"] is not None]
        return sum(nfes) / len(nfes) if nfes and len(nfes) == self.n else None

    def summary(self) -> dict:
        return {"accuracy": self.accuracy, "ci95": list(wilson_interval(self.correct, self.n)), "n": self.n,
                "correct": self.correct, "mean_nfe": self.mean_nfe,
                "errors": sum(r["finish"] == "error" for r in self.records)}


class Generator(Protocol):
    """What the harness needs from a backend (the local engine or a remote server)."""

    def generate(self, jobs: list[Job], progress: Callable[[int], None]) -> list[Generation]: ...


def score_generation(item: EvalItem, run: Run, settings: DecodeSettings, gen: Generation) -> dict:
    """One saved line of `--out`: the question, the answer, what the scorer read, the verdict."""
    return {
        "task": item.task, "index": item.index, "mode": run.mode, "alpha": run.alpha,
        "question": item.question, "reference": item.reference, "output": gen.text,
        "extracted": predicted_answer(item.task, gen.text), "correct": item.score(gen.text),
        "nfe": gen.nfe, "finish": gen.finish, "error": gen.error, "seed": settings.seed,
        **({"kind": item.kind} if item.kind else {}),
    }


def evaluate_task(
    task: str,
    items: list[EvalItem],
    runs: list[Run],
    base: DecodeSettings,
    generator: Generator,
    progress: Callable[[int], None] = lambda n: None,
) -> list[RunResult]:
    """Every item under every run, submitted together so the backend can batch across runs."""
    jobs: list[tuple[Run, EvalItem, Job]] = []
    for r, run in enumerate(runs):
        for item in items:
            jobs.append((run, item, Job(f"{task}/{r}/{item.index}", item, run.settings(base, item.index))))
    generations = generator.generate([job for _, _, job in jobs], progress)
    results = {run: RunResult(task, run) for run in runs}
    for (run, item, job), gen in zip(jobs, generations):
        results[run].records.append(score_generation(item, run, job.settings, gen))
    return [results[run] for run in runs]


def report_object(results: list[RunResult], base: DecodeSettings, meta: dict) -> dict:
    """The `--json` object: results[task][mode][alpha] = {accuracy, n, mean_nfe, ...}."""
    nested: dict = {}
    for res in results:
        nested.setdefault(res.task, {}).setdefault(res.run.mode, {})[res.run.alpha_key] = res.summary()
    settings = {k: getattr(base, k) for k in DecodeSettings.field_names() if k not in ("decoding", "alpha_soft_mask")}
    return {"results": nested, "settings": settings, **meta}
