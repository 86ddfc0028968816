"""What values a decoding knob takes, declared once beside its field.

A knob is a dataclass field whose metadata holds a `Range` and a help line (`knob(...)`).
The same declaration gives the check and its error message (`Range.check`), the command-line
flag (`evotoken_core.flags`), the server's advertised defaults and the request extras a
client sends, so a range or a help text cannot drift between them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any


class SettingsError(ValueError):
    """A setting is out of range; `param` names it the way the API spells it."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Range:
    """The values one knob accepts. Bounds are inclusive unless `low_open`/`high_open`;
    `optional` admits None (the knob's "off"); `text` replaces the generated description."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    optional: bool = False
    text: str | None = None

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if self.choices is not None:
            return isinstance(value, str) and value in self.choices
        if self.kind is bool or isinstance(value, bool):  # JSON true is not a number
            return self.kind is bool and isinstance(value, bool)
        if not isinstance(value, int if self.kind is int else (int, float)):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        """The accepted values in words, e.g. "a number in [0, 1)"; every error quotes it."""
        if self.text is not None:
            return self.text
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        noun = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            return (f"{noun} in {'(' if self.low_open else '['}{self.low:g}, "
                    f"{self.high:g}{')' if self.high_open else ']'}")
        if self.low is not None and self.kind is int:
            return f"{noun} of at least {self.low + int(self.low_open):g}"
        if self.low is not None:
            return f"a finite number {'>' if self.low_open else '>='} {self.low:g}"
        return noun

    def check(self, name: str, value: Any) -> None:
        if not self.accepts(value):
            raise SettingsError(name, f"{name} must be {self.describe()}")


@dataclass(frozen=True)
class Knob:
    """One field's declaration: its range and help, and where it appears besides the engine.

    `flag`: it has a command-line flag in every decoding command. `extra`: a request sends it
    as an EvoToken extra body field. `off`: the value that means the feature is not used; a
    client leaves an extra at its `off` value out of the request (older servers lack it);
    `...` means the knob has no such value and is always sent.
    """

    range: Range
    help: str
    flag: bool = True
    extra: bool = False
    off: Any = ...


def knob(default: Any, range: Range, help: str, *, flag: bool = True, extra: bool = False,
         off: Any = ...) -> Any:
    """A dataclass field carrying its `Knob` declaration in the field metadata."""
    return field(default=default, metadata={"knob": Knob(range, help, flag, extra, off)})


def knobs_of(cls) -> dict[str, tuple[Any, Knob]]:
    """name -> (default, Knob) for every declared knob of a dataclass, in field order."""
    return {f.name: (f.default, f.metadata["knob"]) for f in fields(cls) if "knob" in f.metadata}
