"""`--stop-when`: end a run when its diagnostics say it has learned what it is for.

Syntax: comma-separated conditions `NAME OP VALUE` with OP one of `>=`, `<=`, `>`, `<`, all of
which must hold, e.g. `self_copy>=0.99,kept_ce<=0.05`. NAME is a diagnostic (`diagnostics.py`).
A rule is checked each time the diagnostics are measured; a NaN value never satisfies it.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass

# the diagnostics a rule may name (diagnostics.measure returns them)
STOP_NAMES = ("self_copy", "kept_ce", "kept_ce_rise", "masked_ce", "suffix_ce", "later_excess", "block_loss")
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_CONDITION = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Condition:
    name: str
    op: str
    value: float

    def holds(self, diagnostics: dict) -> bool:
        got = float(diagnostics[self.name])
        return not math.isnan(got) and _OPS[self.op](got, self.value)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value:g}"


@dataclass(frozen=True)
class StopRule:
    conditions: tuple[Condition, ...]

    @classmethod
    def parse(cls, text: str) -> StopRule:
        """`self_copy>=0.99,kept_ce<=0.05` -> a rule; a clear ValueError for anything else."""
        conditions = []
        for part in str(text).split(","):
            if not part.strip():
                continue
            match = _CONDITION.match(part)
            if not match:
                raise ValueError(f"stop_when: {part.strip()!r} is not NAME>=VALUE, NAME<=VALUE, NAME>VALUE "
                                 f"or NAME<VALUE (e.g. self_copy>=0.99,kept_ce<=0.05)")
            name, op, value = match.groups()
            if name not in STOP_NAMES:
                raise ValueError(f"stop_when: unknown diagnostic {name!r}; choose from {', '.join(STOP_NAMES)}")
            try:
                conditions.append(Condition(name, op, float(value)))
            except ValueError:
                raise ValueError(f"stop_when: {value!r} in {part.strip()!r} is not a number") from None
        return cls(tuple(conditions))

    def __bool__(self) -> bool:
        return bool(self.conditions)

    def met(self, diagnostics: dict) -> bool:
        """True when every condition holds (an empty rule never stops a run)."""
        return bool(self.conditions) and all(c.holds(diagnostics) for c in self.conditions)

    def __str__(self) -> str:
        return ",".join(map(str, self.conditions))
