"""Per-request decoding settings: the one owner of their defaults, ranges and derived values.

Every entry point (the HTTP request, the server's defaults, `evotoken generate`, `eval`,
`bench`) builds its settings with `DecodeSettings.resolve`: what the user set, else the
defaults it was given (a checkpoint's recommendation, the server's settings), else the
reference command's. The ranges are declared once, on the fields (`knob`), and checked once,
when the settings are made; `with_` re-checks only the values it changes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from .knobs import Range, SettingsError, knob, knobs_of

DECODING_MODES = ("evotoken", "hard_mask")
REMASKING_RULES = ("low_confidence", "random")
CACHE_MODES = ("none", "prefix", "dual")
COUNT = Range(int, low=1)
# The answer length a request asks for and the share of each block spent on steps: the two
# defaults a canvas is derived from (see `resolve`); a checkpoint may recommend both.
MAX_TOKENS = Range(int, low=1)
STEPS_RATIO = Range(float, low=0, high=1, low_open=True)
REFERENCE_MAX_TOKENS = 128
REFERENCE_STEPS_RATIO = 0.5
CANVAS = frozenset(("gen_length", "block_length", "steps"))
LENGTH = CANVAS | {"min_tokens"}
ENDING = frozenset(("early_end", "ignore_eos"))


def whole_blocks(max_tokens: int, block_length: int) -> int:
    """The canvas for an answer of `max_tokens`: rounded up to whole blocks (the output is cut
    back to `max_tokens` afterwards)."""
    return -(-max_tokens // block_length) * block_length


def steps_for(gen_length: int, block_length: int, steps_ratio: float = REFERENCE_STEPS_RATIO) -> int:
    """Refinement steps for a canvas: `steps_ratio` of every block (rounded down), at least
    one per block. The reference evaluation uses half of each block."""
    return max(1, int(steps_ratio * block_length + 1e-9)) * (gen_length // block_length)


@dataclass(frozen=True)
class DecodeSettings:
    """The knobs of the reference `generate` command, one request's worth.

    Defaults are the reference's: gen 128, block 32, steps 64, temperature 0, k_soft 3,
    alpha_soft_mask 0.7, low-confidence remasking, EvoToken decoding. Each field declares its
    range and help (`knob`); `extra=True` marks the EvoToken extras an API request may send.
    """

    gen_length: int = knob(128, COUNT, "tokens to generate, a whole number of blocks")
    block_length: int = knob(32, COUNT, "block length (semi-autoregressive blocks)", extra=True)
    steps: int = knob(64, COUNT, "refinement steps over the whole canvas, the same number per block",
                      extra=True)
    temperature: float = knob(0.0, Range(float, low=0), "sampling temperature (0: greedy)")
    k_soft: int = knob(3, COUNT, "number of top candidates in a soft token", extra=True)
    alpha_soft_mask: float = knob(0.7, Range(float, low=0, high=1, high_open=True),
                                  "weight of the mask embedding in a soft token", extra=True)
    remasking: str = knob("low_confidence", Range(str, choices=REMASKING_RULES),
                          "rule that picks which masked positions to unmask", extra=True)
    threshold: float | None = knob(
        None, Range(float, low=0, high=1, low_open=True, optional=True),
        "confidence threshold for parallel unmasking (none: a fixed count per step)", extra=True, off=None)
    # Threshold unmasking that allows for revision: a position passes the threshold only if its
    # candidate is also the one the previous step proposed there. See docs/caching.md.
    threshold_stable: bool = knob(False, Range(bool), "with a threshold: unmask a position by it only when "
                                  "its candidate equals the previous step's (the most confident one is "
                                  "always unmasked)", extra=True, off=False)
    decoding: str = knob("evotoken", Range(str, choices=DECODING_MODES),
                         "decoding: EvoToken soft tokens, or the plain hard-mask baseline", extra=True)
    seed: int | None = knob(None, Range(int, low=0, high=2**63, high_open=True, optional=True,
                                        text="an integer in [0, 2**63)"), "random seed (same seed, same text)")
    # Stop a row once a finished block holds an end token; the text is unchanged by it.
    early_end: bool = knob(True, Range(bool), "end a row once a finished block holds an end token "
                           "(the text is the same either way)")
    # Approximate K/V cache (Fast-dLLM): "prefix" reuses the keys/values of everything before
    # the current block, "dual" also those after it; both refresh at every block start.
    # Changes outputs, so it is opt-in; its accuracy cost is measured in the README.
    cache: str = knob("none", Range(str, choices=CACHE_MODES),
                      "approximate K/V cache (Fast-dLLM): faster, changes outputs slightly",
                      extra=True, off="none")
    # With a cache, also recompute the whole canvas (refreshing the cache) at every r-th step
    # of a block; 1 recomputes every step, which is exact decoding. See docs/caching.md.
    cache_refresh: int = knob(0, Range(int, low=0), "with a cache: also recompute the whole canvas "
                              "every this many steps of a block (0: never; 1: every step, exact)",
                              extra=True, off=0)
    # With a cache: recompute a step exactly whenever one of its decisions (which positions to
    # unmask, which token, a revision) was decided by less than this margin in log-odds, so
    # the cache's small error cannot flip it. 0 turns the guard off. See docs/caching.md.
    cache_guard: float = knob(0.0, Range(float, low=0), "with a cache: recompute a step exactly when "
                              "one of its decisions was closer than this margin (log-odds; 0: off)",
                              extra=True, off=0.0)
    # Fixed-length extras that benchmark clients send (vLLM's names). `min_tokens`: no end token
    # is proposed before this many generated tokens. `ignore_eos`: decode the whole canvas
    # (no early end) and keep the text past end tokens, so every answer has max_tokens tokens.
    min_tokens: int = knob(0, Range(int, low=0), "the answer's least number of tokens: no end "
                           "token is proposed before them", extra=True, off=0)
    ignore_eos: bool = knob(False, Range(bool), "decode the whole canvas and keep the text past end "
                            "tokens, up to max_tokens", flag=False, extra=True, off=False)

    def __post_init__(self):
        _check(self.__dict__)

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
        """A copy with `changes`; only the changed values (and the canvas rules, when the
        canvas changes) are checked: the rest was checked when these settings were made, so
        giving every row of a request its own seed costs one range check."""
        unknown = set(changes) - KNOBS.keys()
        if unknown:
            raise TypeError(f"unknown decoding setting(s): {', '.join(sorted(unknown))}")
        values = {**self.__dict__, **changes}
        _check(values, changes.keys())
        return _build(values)

    @classmethod
    def resolve(cls, overrides: Mapping[str, Any] | None = None, defaults: Any = None) -> DecodeSettings:
        """Settings from what the user set, else `defaults`, else the reference, checked once.

        `overrides`: the values the user set. Any field, or `max_tokens` (an answer length)
        instead of `gen_length`. None for a field that cannot be None means unset; for
        `threshold` and `seed` it is the value (off, no fixed seed).
        `defaults`: any object with some of the fields plus the canvas recommendation
        `max_tokens` and `steps_ratio` (a `RecommendedDecoding`, the server's settings).

        Derived: `gen_length` is `max_tokens` rounded up to whole blocks; `steps` is
        `steps_ratio` of every block (rounded down, at least one per block). Raises
        `SettingsError` naming the parameter at fault.
        """
        given = dict(overrides or {})
        unknown = set(given) - KNOBS.keys() - {"max_tokens"}
        if unknown:
            raise TypeError(f"unknown decoding setting(s): {', '.join(sorted(unknown))}")

        def pick(name: str) -> Any:
            if name in given and (given[name] is not None or KNOBS[name][1].range.optional):
                return given[name]
            value = getattr(defaults, name, None)
            return KNOBS[name][0] if value is None else value

        values = {name: pick(name) for name in KNOBS if name not in CANVAS}
        block = pick("block_length")
        max_tokens = given.get("max_tokens")
        if max_tokens is None:
            max_tokens = _default(defaults, "max_tokens", MAX_TOKENS, REFERENCE_MAX_TOKENS)
        else:
            MAX_TOKENS.check("max_tokens", max_tokens)
        ratio = _default(defaults, "steps_ratio", STEPS_RATIO, REFERENCE_STEPS_RATIO)
        sound_block = COUNT.accepts(block)  # a bad block is left for the check to name
        gen = given.get("gen_length")
        if gen is None:
            gen = whole_blocks(max_tokens, block) if sound_block else max_tokens
        steps = given.get("steps")
        if steps is None:
            fits = sound_block and COUNT.accepts(gen) and gen % block == 0
            steps = steps_for(gen, block, ratio) if fits else 1
        values.update(gen_length=gen, block_length=block, steps=steps)
        if values["ignore_eos"] and given.get("early_end") is None:
            values["early_end"] = False  # the whole canvas is decoded
        _check(values, asked=given.get("gen_length") or max_tokens)
        return _build(values)

    @classmethod
    def for_max_tokens(cls, max_tokens: int, block_length: int = 32, steps: int | None = None,
                       **others) -> DecodeSettings:
        """Settings for an API request of `max_tokens` over the reference defaults (see `resolve`)."""
        return cls.resolve({"max_tokens": max_tokens, "block_length": block_length, "steps": steps, **others})

    @classmethod
    def field_names(cls) -> list[str]:
        return list(KNOBS)


KNOBS = knobs_of(DecodeSettings)


def _check(values: Mapping[str, Any], changed: Collection[str] | None = None, asked: int | None = None) -> None:
    """The rules, all of them: the canvas (its numbers, then how they fit together), every
    other field's range, then the rules across fields. `changed`: check only these fields, and
    a rule across fields when one of its fields is among them. `asked`: the answer length the
    user asked for (the canvas may be longer: whole blocks), which `min_tokens` may not pass."""
    names = KNOBS.keys() if changed is None else [n for n in KNOBS if n in changed]
    if changed is None or not CANVAS.isdisjoint(changed):
        gen, block, steps = values["gen_length"], values["block_length"], values["steps"]
        COUNT.check("gen_length", gen)
        COUNT.check("block_length", block)
        if gen % block:
            raise SettingsError("block_length", f"gen_length {gen} is not divisible by block_length {block}")
        COUNT.check("steps", steps)
        blocks = gen // block
        if steps % blocks:
            raise SettingsError("steps", f"steps {steps} is not divisible by the number of blocks {blocks} "
                                         f"(gen_length {gen} / block_length {block})")
        if steps > gen:
            raise SettingsError("steps", f"steps {steps} is more than the {gen} tokens to generate")
    for name in names:
        if name not in CANVAS:
            KNOBS[name][1].range.check(name, values[name])
    if changed is None or not LENGTH.isdisjoint(changed):
        limit = values["gen_length"] if asked is None else asked
        if values["min_tokens"] > limit:
            raise SettingsError("min_tokens", f"min_tokens {values['min_tokens']} is more than the "
                                              f"{limit} tokens asked for")
    if (changed is None or not ENDING.isdisjoint(changed)) and values["ignore_eos"] and values["early_end"]:
        raise SettingsError("early_end", "ignore_eos decodes the whole canvas: early_end must be off")


def _default(defaults: Any, name: str, range: Range, reference: Any) -> Any:
    """A canvas default (`max_tokens`, `steps_ratio`) from `defaults`, checked, else the reference."""
    value = getattr(defaults, name, None)
    if value is None:
        return reference
    range.check(name, value)
    return value


def _build(values: Mapping[str, Any]) -> DecodeSettings:
    """Settings from values already checked: no second validation pass."""
    settings = object.__new__(DecodeSettings)
    settings.__dict__.update({name: values[name] for name in KNOBS})  # in field order
    return settings
