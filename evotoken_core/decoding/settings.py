"""Per-request decoding settings, validated once, before any work is queued."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

DECODING_MODES = ("evotoken", "hard_mask")
REMASKING_RULES = ("low_confidence", "random")
CACHE_MODES = ("none", "prefix", "dual")


def steps_for(gen_length: int, block_length: int, steps_ratio: float = 0.5) -> int:
    """Refinement steps for a canvas: `steps_ratio` of every block (rounded down), at least
    one per block. The reference evaluation uses half of each block."""
    return max(1, int(steps_ratio * block_length + 1e-9)) * (gen_length // block_length)


class SettingsError(ValueError):
    """A setting is out of range; `param` names it the way the API spells it."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class DecodeSettings:
    """The knobs of the reference `generate` command, one request's worth.

    Defaults are the reference's: gen 128, block 32, steps 64, temperature 0, k_soft 3,
    alpha_soft_mask 0.7, low-confidence remasking, EvoToken decoding.
    """

    gen_length: int = 128
    block_length: int = 32
    steps: int = 64
    temperature: float = 0.0
    k_soft: int = 3
    alpha_soft_mask: float = 0.7
    remasking: str = "low_confidence"
    threshold: float | None = None
    decoding: str = "evotoken"
    seed: int | None = None
    # Stop a row once a finished block holds an end token; the text is unchanged by it.
    early_end: bool = True
    # Approximate K/V cache (Fast-dLLM): "prefix" reuses the keys/values of everything before
    # the current block, "dual" also those after it; both refresh at every block start.
    # Changes outputs, so it is opt-in; its accuracy cost is measured in the README.
    cache: str = "none"

    def __post_init__(self):
        def need(ok: bool, param: str, message: str):
            if not ok:
                raise SettingsError(param, message)

        for name in ("gen_length", "block_length", "steps", "k_soft"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool), name, f"{name} must be an integer")
        need(self.gen_length >= 1, "gen_length", "gen_length must be at least 1")
        need(self.block_length >= 1, "block_length", "block_length must be at least 1")
        need(self.gen_length % self.block_length == 0, "block_length",
             f"gen_length {self.gen_length} is not divisible by block_length {self.block_length}")
        need(self.steps >= 1, "steps", "steps must be at least 1")
        need(self.steps % self.num_blocks == 0, "steps",
             f"steps {self.steps} is not divisible by the number of blocks {self.num_blocks} "
             f"(gen_length {self.gen_length} / block_length {self.block_length})")
        need(self.steps <= self.gen_length, "steps",
             f"steps {self.steps} is more than the {self.gen_length} tokens to generate")
        need(isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature)
             and self.temperature >= 0, "temperature", "temperature must be a finite number >= 0")
        need(self.k_soft >= 1, "k_soft", "k_soft must be at least 1")
        need(isinstance(self.alpha_soft_mask, (int, float)) and 0.0 <= self.alpha_soft_mask < 1.0,
             "alpha_soft_mask", "alpha_soft_mask must be in [0, 1)")
        need(self.remasking in REMASKING_RULES, "remasking",
             f"remasking must be one of {', '.join(REMASKING_RULES)}")
        need(self.cache in CACHE_MODES, "cache", f"cache must be one of {', '.join(CACHE_MODES)}")
        need(self.decoding in DECODING_MODES, "decoding",
             f"decoding must be one of {', '.join(DECODING_MODES)}")
        if self.threshold is not None:
            need(isinstance(self.threshold, (int, float)) and 0.0 < self.threshold <= 1.0,
                 "threshold", "threshold must be in (0, 1]")
        if self.seed is not None:
            need(isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed < 2**63,
                 "seed", "seed must be an integer in [0, 2**63)")

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block_length

    @property
    def steps_per_block(self) -> int:
        return self.steps // self.num_blocks

    @property
    def evotoken(self) -> bool:
        return self.decoding == "evotoken"

    def with_(self, **changes) -> DecodeSettings:
        return replace(self, **changes)

    @classmethod
    def for_max_tokens(cls, max_tokens: int, block_length: int = 32, steps: int | None = None,
                       **others) -> DecodeSettings:
        """Settings for an API request of `max_tokens`: the canvas is rounded up to whole
        blocks (the output is cut back later) and `steps` defaults to half the canvas, the
        reference evaluation's ratio."""
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise SettingsError("max_tokens", "max_tokens must be a positive integer")
        if not isinstance(block_length, int) or block_length < 1:
            raise SettingsError("block_length", "block_length must be a positive integer")
        gen_length = -(-max_tokens // block_length) * block_length
        if steps is None:
            steps = steps_for(gen_length, block_length)
        return cls(gen_length=gen_length, block_length=block_length, steps=steps, **others)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
