"""The decoding a checkpoint recommends for itself, kept in its `generation_config.json`.

The reference defaults (gen 128, block 32, 64 steps) suit LLaDA-8B-Instruct. A small model
trained on 48-token answers decodes best with a shorter canvas and smaller blocks, so a
checkpoint may name its own under the `evotoken` key:

    {"evotoken": {"max_tokens": 48, "block_length": 4, "steps_ratio": 0.5}}

Every consumer (the server, `evotoken generate`, `evotoken eval`) resolves a setting the same
way: what the user gave, else the checkpoint's recommendation, else the reference default.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .settings import DecodeSettings, steps_for

KEY = "evotoken"
GENERATION_CONFIG = "generation_config.json"


@dataclass(frozen=True)
class RecommendedDecoding:
    """Canvas size, block length and steps per token; the defaults are the reference's."""

    max_tokens: int = 128
    block_length: int = 32
    steps_ratio: float = 0.5

    def __post_init__(self):
        for name in ("max_tokens", "block_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        ratio = self.steps_ratio
        if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 < ratio <= 1:
            raise ValueError(f"steps_ratio must be in (0, 1], got {ratio!r}")

    @classmethod
    def from_dict(cls, data: dict) -> RecommendedDecoding:
        if not isinstance(data, dict):
            raise ValueError(f"must be an object like {json.dumps(asdict(cls()))}, got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def read(cls, model_dir: str | Path) -> RecommendedDecoding:
        """The checkpoint's recommendation, or the reference defaults when it names none."""
        path = Path(model_dir) / GENERATION_CONFIG
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text()).get(KEY)
            return cls() if data is None else cls.from_dict(data)
        except (ValueError, TypeError, AttributeError, OSError) as error:
            raise ValueError(f"{path}: bad `{KEY}` decoding recommendation: {error}") from None

    def write(self, model_dir: str | Path) -> None:
        """Store this recommendation in the checkpoint, keeping the file's other keys."""
        path = Path(model_dir) / GENERATION_CONFIG
        data = json.loads(path.read_text()) if path.is_file() else {}
        data[KEY] = asdict(self)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    def settings(self, gen_length: int | None = None, block_length: int | None = None,
                 steps: int | None = None, **others) -> DecodeSettings:
        """Settings with the given values kept and the missing ones filled from this.

        A canvas taken from `max_tokens` is rounded up to whole blocks; missing `steps` are
        `steps_ratio` of each block. Bad given values raise `SettingsError` as usual.
        """
        block = self.block_length if block_length is None else block_length
        good_block = isinstance(block, int) and not isinstance(block, bool) and block >= 1
        if gen_length is None:  # a bad block length is left for DecodeSettings to name
            gen_length = -(-self.max_tokens // block) * block if good_block else self.max_tokens
        if steps is None:
            fits = good_block and isinstance(gen_length, int) and gen_length % block == 0
            steps = steps_for(gen_length, block, self.steps_ratio) if fits else 1
        return DecodeSettings(gen_length=gen_length, block_length=block, steps=steps, **others)
