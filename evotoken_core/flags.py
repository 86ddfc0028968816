"""The model and decoding flags of every command, generated from one declaration each.

`evotoken generate`, `evotoken eval`, `evotoken bench` and the benchmark scripts call
`add_model_flags` and `add_decoding_flags`, so they accept the same flags with the same
types, choices and help: a decoding flag is a `DecodeSettings` field (`knob`), a model flag a
`ModelOptions` field. Decoding flags default to unset; `decoding_settings` hands what was set
to `DecodeSettings.resolve`, which fills the rest from the model's recommendation.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .decoding.knobs import Knob, Range, knob, knobs_of
from .decoding.recommended import RecommendedDecoding
from .decoding.settings import CANVAS, KNOBS, DecodeSettings

DTYPE_NAMES = ("float32", "bfloat16", "float16", "float64")
ANY_TEXT = Range(str, optional=True)


@dataclass(frozen=True)
class ModelOptions:
    """Which model to load, and where: the model flags every command shares."""

    model: str | None = knob(None, ANY_TEXT, "LLaDA-format checkpoint dir or hub id (default: the embedded demo model)")
    lora: str | None = knob(None, ANY_TEXT, "peft adapter dir or hub id, e.g. zhongzero/EvoToken_LLaDA_Instruct_8B_Lora")
    merge_lora: bool = knob(False, Range(bool), "fold the adapter into the base weights")
    device: str | None = knob(None, ANY_TEXT, "cpu, cuda, cuda:1 (default: cuda when available)")
    dtype: str = knob("float32", Range(str, choices=DTYPE_NAMES), "weight and activation dtype")
    threads: int | None = knob(None, Range(int, low=1, optional=True),
                               "torch CPU threads (default: torch's choice; on a shared or busy machine 1 "
                               "can be many times faster)")


MODEL_KNOBS = knobs_of(ModelOptions)


def comma_list(kind: type, choices: tuple[str, ...] | None = None) -> Callable[[str], list]:
    """An argparse type for `a,b,c`: a non-empty list of `kind`, each among `choices` if given."""
    def parse(text: str) -> list:
        try:
            values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError("the list is empty")
        bad = [v for v in values if choices is not None and v not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"{', '.join(map(str, bad))} not in {', '.join(choices)}")
        return values
    return parse


def _add_flag(group, name: str, declared: Knob, default: Any, shown: Any, sweep_note: str | None = None) -> None:
    """`default`: what argparse stores when the flag is absent; `shown`: the default in the help."""
    r = declared.range
    flag = "--" + name.replace("_", "-")
    if isinstance(shown, list):
        shown = ",".join(map(str, shown))
    help_text = declared.help if "(default:" in declared.help else f"{declared.help} (default: {shown})"
    kwargs: dict = {"dest": name, "default": default, "help": help_text}
    if r.kind is bool:  # a switch that turns its default around
        on = shown is True
        flag = "--no-" + flag[2:] if on else flag
        kwargs.update(action="store_false" if on else "store_true",
                      help=f"do not {declared.help}" if on else declared.help)
    elif sweep_note is not None:
        kwargs.update(type=comma_list(r.kind if r.choices is None else str, r.choices),
                      help=f"{declared.help}; a comma list: {sweep_note} (default: {shown})")
    else:
        kwargs["type"] = str if r.choices is not None else r.kind
        if r.choices is not None:
            kwargs["choices"] = r.choices
    group.add_argument(flag, **kwargs)


def add_model_flags(parser: argparse.ArgumentParser, title: str = "model") -> None:
    group = parser.add_argument_group(title)
    for name, (default, declared) in MODEL_KNOBS.items():
        _add_flag(group, name, declared, default, "none" if default is None else default)


def add_decoding_flags(parser: argparse.ArgumentParser, sweep: Mapping[str, str] | None = None,
                       defaults: Mapping[str, Any] | None = None) -> None:
    """One flag per decoding knob, unset unless given: `DecodeSettings.resolve` fills it.

    `sweep`: knobs this command compares over a comma list (name -> what the list means), e.g.
    `evotoken eval --alpha-soft-mask 0.5,0.7,0.9`. `defaults`: values this command sets when a
    flag is absent (a swept knob's is a list), e.g. eval's fixed seed.
    """
    sweep, defaults = sweep or {}, defaults or {}
    group = parser.add_argument_group("decoding (unset canvas settings come from the model's recommendation, "
                                      "else the reference command's 128 / 32 / 64)")
    for name, (reference, declared) in KNOBS.items():
        if not declared.flag:
            continue
        if name in defaults:
            shown = defaults[name]
        elif name in CANVAS:
            shown = f"the model's recommendation, else {reference}"
        else:
            shown = "none" if reference is None else reference
        _add_flag(group, name, declared, defaults.get(name), shown, sweep.get(name))


def decoding_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The decoding values set on the command line; a swept list gives its first value."""
    given = {}
    for name, (_, declared) in KNOBS.items():
        value = getattr(args, name, None) if declared.flag else None
        if value is not None:
            given[name] = value[0] if isinstance(value, list) else value
    return given


def decoding_settings(args: argparse.Namespace, recommended: RecommendedDecoding | None = None) -> DecodeSettings:
    """The flags' settings; what they leave unset comes from `recommended` (the loaded
    checkpoint's), else the reference defaults."""
    return DecodeSettings.resolve(decoding_overrides(args), recommended or RecommendedDecoding())


def model_or_embedded(model: str | None) -> str:
    """The model to load: the one named, else the model embedded in the package.

    The one place that decides it, for the server and every command; raises
    FileNotFoundError saying what to pass when there is no embedded model.
    """
    if model:
        return model
    try:
        from .assets import default_model_path
    except ImportError:
        raise FileNotFoundError("no --model given and this build has no embedded model "
                                "(evotoken_core.assets is missing); pass --model PATH_OR_HUB_ID") from None
    try:
        return str(default_model_path())
    except FileNotFoundError as error:
        raise FileNotFoundError(f"no --model given and {error}") from None


def request_extras(settings: DecodeSettings) -> dict[str, Any]:
    """The EvoToken extra body fields of an API request for `settings` (what the OpenAI SDK
    sends as `extra_body`). A feature left off is left out, so older servers accept it."""
    extras = {}
    for name, (_, declared) in KNOBS.items():
        value = getattr(settings, name)
        if declared.extra and not (declared.off is not ... and value == declared.off):
            extras[name] = value
    return extras
