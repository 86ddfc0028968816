"""Answers for evaluation jobs from a local model, batched through the engine.

All jobs of an evaluation (every item under every decoding mode and alpha) go into one
engine stream: the engine keeps `batch_size` rows in flight and admits the next job as soon
as a row finishes, so a sweep costs about as many forward passes as its longest rows need,
not one pass per item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evotoken_core.data.prompts import render_prompt
from evotoken_core.decoding import DecodeRequest, DecodeSettings, SettingsError
from evotoken_core.text import TextAssembler

from .datasets import EvalItem


@dataclass(frozen=True)
class Job:
    """One item under one set of decoding settings."""

    job_id: str
    item: EvalItem
    settings: DecodeSettings


@dataclass
class Generation:
    """What came back for a job: the answer text, its cost, and why it stopped."""

    job_id: str
    text: str
    nfe: int | None
    finish: str
    error: str | None = None


Progress = Callable[[int], None]


class LocalGenerator:
    """Runs jobs on a loaded model (`evotoken_core.model.LoadedModel`) through `Engine`."""

    def __init__(self, loaded, batch_size: int = 32):
        from evotoken_core.engine import Engine

        if loaded.tokenizer is None:
            raise ValueError(f"model {loaded.path} has no tokenizer; evaluation needs one to build prompts")
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.engine = Engine(loaded, max_batch_size=batch_size)
        self._prompts: dict[tuple[str, str], list[int]] = {}

    def prompt_ids(self, item: EvalItem) -> list[int]:
        key = (item.task, item.question)
        if key not in self._prompts:
            text = render_prompt(self.tokenizer, item.question, item.task)
            # The chat template writes the BOS itself, so no special tokens are added here.
            self._prompts[key] = self.tokenizer(text, add_special_tokens=False).input_ids
        return self._prompts[key]

    def generate(self, jobs: list[Job], progress: Progress = lambda n: None) -> list[Generation]:
        results: dict[str, Generation] = {}
        requests = []
        for job in jobs:
            request = DecodeRequest(job.job_id, self.prompt_ids(job.item), job.settings)
            try:
                self.engine.validate(request)
            except SettingsError as error:  # e.g. a prompt too long for the model: scored wrong
                results[job.job_id] = Generation(job.job_id, "", 0, "error", f"{error.param}: {error}")
                progress(1)
                continue
            requests.append(request)
        by_id = {job.job_id: job for job in jobs}
        for record in self.engine.stream(requests):
            if not record.finished:
                continue
            settings = by_id[record.request_id].settings
            assembler = TextAssembler(self.tokenizer, self.loaded.end_ids, max_tokens=settings.gen_length)
            assembler.update(record.gen_ids.tolist(), settings.gen_length, final=True)
            text = assembler.text if record.finish == "completed" else ""
            results[record.request_id] = Generation(record.request_id, text, record.nfe,
                                                    record.finish, record.error)
            progress(1)
        return [results[job.job_id] for job in jobs]
