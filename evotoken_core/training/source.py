"""Where training batches come from: the data module's mixture, under a curriculum.

Batch `step` is drawn from a generator seeded by (seed, step) alone, so a resumed run sees
exactly the batches the uninterrupted run would have seen, with no stream to fast-forward.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from .config import TrainConfig, parse_floats, parse_task_weights
from .encoding import EncodedBatch, SpecialIds, collate, example_encoder

Pair = tuple[list[int], list[int]]


def level_mix_at(step: int, start: Sequence[float], end: Sequence[float], ramp_steps: int) -> dict[int, float]:
    """Curriculum weights of levels 0,1,2...: linear from `start` to `end` over `ramp_steps`."""
    frac = 1.0 if ramp_steps <= 0 else min(1.0, step / ramp_steps)
    n = max(len(start), len(end))
    s = list(start) + [0.0] * (n - len(start))
    e = list(end) + [0.0] * (n - len(end))
    return {level: (1 - frac) * s[level] + frac * e[level] for level in range(n)}


def step_rng(seed: int, step: int, stream: str = "data") -> random.Random:
    """A generator that depends only on the run seed, the step and the purpose."""
    return random.Random(f"{seed}:{stream}:{step}")


class BatchSource:
    """Draws, encodes and collates the batch of a given step.

    `sample(rng, level_mix) -> example` is any example sampler (the data module's mixture in
    real runs, a fixed list in tests); `encode(example) -> (prompt ids, answer ids)`.
    """

    def __init__(
        self,
        sample: Callable[[random.Random, dict[int, float]], object],
        encode: Callable[[object], Pair],
        ids: SpecialIds,
        config: TrainConfig,
    ):
        self.sample, self.encode, self.ids, self.config = sample, encode, ids, config
        self.level_start = parse_floats(config.level_start)
        self.level_end = parse_floats(config.level_end)

    def batch(self, step: int) -> EncodedBatch:
        cfg = self.config
        rng = step_rng(cfg.seed, step)
        mix = level_mix_at(step, self.level_start, self.level_end, cfg.curriculum_steps)
        pairs: list[Pair] = []
        tries = 0
        while len(pairs) < cfg.batch_size:
            tries += 1
            if tries > 20 * cfg.batch_size:
                raise ValueError("almost every example exceeds max_prompt_length/answer_length")
            prompt, answer = self.encode(self.sample(rng, mix))
            if len(prompt) <= cfg.max_prompt_length and len(answer) <= cfg.answer_length:
                pairs.append((prompt, answer))
        return collate(pairs, self.ids, cfg.answer_length, cfg.pad_weight)


def mixture_source(tokenizer, config: TrainConfig) -> BatchSource:
    """The real data: the project's synthetic task mixture, rendered with its chat prompt."""
    from evotoken_core.data.mixture import sample_train_example
    from evotoken_core.data.prompts import render_prompt

    tasks = parse_task_weights(config.tasks) if config.tasks else None

    def sample(rng: random.Random, level_mix: dict[int, float]):
        return sample_train_example(rng, level_mix, tasks)

    return BatchSource(sample, example_encoder(tokenizer, render_prompt),
                       SpecialIds.from_tokenizer(tokenizer), config)


def fixed_source(examples: Sequence, tokenizer, config: TrainConfig, render=None) -> BatchSource:
    """Batches drawn from a fixed list of examples (tests, tiny corpora)."""
    render = render or (lambda tok, prompt, task: tok.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True))

    def sample(rng: random.Random, level_mix: dict[int, float]):
        return rng.choice(list(examples))

    return BatchSource(sample, example_encoder(tokenizer, render), SpecialIds.from_tokenizer(tokenizer), config)
