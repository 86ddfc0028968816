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

from .knobs import SettingsError, knob, knobs_of
from .settings import (COUNT, KNOBS, MAX_TOKENS, REFERENCE_MAX_TOKENS, REFERENCE_STEPS_RATIO, STEPS_RATIO,
                       DecodeSettings)

KEY = "evotoken"
GENERATION_CONFIG = "generation_config.json"


@dataclass(frozen=True)
class RecommendedDecoding:
    """Canvas size, block length and steps per token; the defaults are the reference's."""

    max_tokens: int = knob(REFERENCE_MAX_TOKENS, MAX_TOKENS, "answer length a request gets by default")
    block_length: int = knob(KNOBS["block_length"][0], COUNT, KNOBS["block_length"][1].help)
    steps_ratio: float = knob(REFERENCE_STEPS_RATIO, STEPS_RATIO, "refinement steps per generated token "
                              "(steps = ratio x block_length per block)")

    def __post_init__(self):
        for name, (_, declared) in knobs_of(RecommendedDecoding).items():
            value = getattr(self, name)
            if not declared.range.accepts(value):
                raise SettingsError(name, f"{name} must be {declared.range.describe()}, got {value!r}")

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
    def find(cls, model_dir: str | Path) -> RecommendedDecoding | None:
        """The checkpoint's recommendation, or None when it names none."""
        path = Path(model_dir) / GENERATION_CONFIG
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text()).get(KEY)
            return None if data is None else cls.from_dict(data)
        except (ValueError, TypeError, AttributeError, OSError) as error:
            raise ValueError(f"{path}: bad `{KEY}` decoding recommendation: {error}") from None

    @classmethod
    def read(cls, model_dir: str | Path) -> RecommendedDecoding:
        """The checkpoint's recommendation, or the reference defaults when it names none."""
        return cls.find(model_dir) or cls()

    def write(self, model_dir: str | Path) -> None:
        """Store this recommendation in the checkpoint, keeping the file's other keys."""
        path = Path(model_dir) / GENERATION_CONFIG
        data = json.loads(path.read_text()) if path.is_file() else {}
        data[KEY] = asdict(self)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    def settings(self, gen_length: int | None = None, block_length: int | None = None,
                 steps: int | None = None, **others) -> DecodeSettings:
        """Settings with the given values kept and the missing ones filled from this (see
        `DecodeSettings.resolve`). Bad given values raise `SettingsError` as usual."""
        return DecodeSettings.resolve(
            {"gen_length": gen_length, "block_length": block_length, "steps": steps, **others}, self)
