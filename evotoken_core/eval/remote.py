"""Answers for evaluation jobs from a running OpenAI-compatible server.

This is how a user scores LLaDA-8B on a GPU host: the same items, prompts and scorers as a
local run, with the diffusion settings sent as `extra_body` fields. Requests go out from a
thread pool of `concurrency` so the server can batch them, like the local engine does.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from evotoken_core.data.prompts import chat_messages
from evotoken_core.decoding import RecommendedDecoding
from evotoken_core.flags import request_extras

from .generation import Generation, Job, Progress


def _nfe(response) -> int | None:
    """Forward passes, when the server reports them (an `nfe` extra on the body or usage)."""
    for holder in (response, getattr(response, "usage", None)):
        extra = getattr(holder, "model_extra", None) or {}
        if isinstance(extra.get("nfe"), int):
            return extra["nfe"]
    return None


class RemoteGenerator:
    def __init__(self, base_url: str, api_key: str | None = None, model_name: str | None = None,
                 concurrency: int = 8, timeout: float = 600.0):
        try:
            from openai import OpenAI
        except ImportError:
            raise RuntimeError("--base-url needs the openai package: pip install openai") from None
        self.client = OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout)
        self.model_name = model_name
        self.concurrency = max(1, concurrency)

    def resolve_model_name(self) -> str:
        """The served model's id when none was given: the first one `/v1/models` lists."""
        if self.model_name is None:
            models = self.client.models.list().data
            if not models:
                raise RuntimeError("the server lists no models; pass --model-name")
            self.model_name = models[0].id
        return self.model_name

    def recommended(self) -> RecommendedDecoding:
        """The canvas, block length and steps ratio the served model decodes with by default
        (this server's `evotoken_defaults` model extra), else the reference defaults."""
        name = self.resolve_model_name()
        card = next((m for m in self.client.models.list().data if m.id == name), None)
        defaults = (getattr(card, "model_extra", None) or {}).get("evotoken_defaults") or {}
        try:
            return RecommendedDecoding(int(defaults["max_tokens"]), int(defaults["block_length"]),
                                       float(defaults["steps_ratio"]))
        except (KeyError, TypeError, ValueError):  # not this project's server: the reference
            return RecommendedDecoding()

    def _one(self, job: Job) -> Generation:
        s = job.settings
        try:
            response = self.client.chat.completions.create(
                model=self.resolve_model_name(),
                messages=chat_messages(job.item.question, job.item.task),
                max_tokens=s.gen_length,
                temperature=s.temperature,
                seed=s.seed,
                extra_body=request_extras(s),
            )
        except Exception as error:  # one failed request is one wrong answer, not a lost sweep
            return Generation(job.job_id, "", None, "error", f"{type(error).__name__}: {error}")
        text = response.choices[0].message.content or ""
        return Generation(job.job_id, text, _nfe(response), "completed")

    def generate(self, jobs: list[Job], progress: Progress = lambda n: None) -> list[Generation]:
        self.resolve_model_name()
        out: list[Generation] = []
        with ThreadPoolExecutor(self.concurrency) as pool:
            for generation in pool.map(self._one, jobs):
                out.append(generation)
                progress(1)
        return out
