"""LaTeX answer normalisation for MATH-style answers.

MATH reference answers and model answers write the same value many ways (`\\dfrac12`,
`\\frac{1}{2}`, `0.5`, `90^\\circ`, `5\\text{ cm}`, `x = 3`). The usual approach, followed
here from its description, is to strip presentation (sizing, units, dollar signs, spaces),
canonicalise fractions and square roots, and then compare strings; values that are plain
numbers or simple fractions are compared exactly as rationals as well.
"""

from __future__ import annotations

import re
from fractions import Fraction

_UNIT_TEXT = re.compile(r"\\(?:text|mbox|mathrm)\{\s[^{}]*\}\s*$")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}")
_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_FRAC = re.compile(r"^(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}$")
_SLASH = re.compile(r"^(-?\d+)/(\d+)$")


def _brace_fracs(s: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\frac1{b}` -> `\\frac{1}{b}`: one-character arguments braced."""
    out, i = [], 0
    while (at := s.find("\\frac", i)) >= 0:
        out.append(s[i:at + 5])
        i = at + 5
        for _ in range(2):
            if i < len(s) and s[i] != "{":
                out.append("{" + s[i] + "}")
                i += 1
            elif i < len(s):
                depth, j = 0, i
                while j < len(s):
                    depth += {"{": 1, "}": -1}.get(s[j], 0)
                    j += 1
                    if depth == 0:
                        break
                out.append(s[i:j])
                i = j
    out.append(s[i:])
    return "".join(out)


def _brace_sqrt(s: str) -> str:
    return re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)


def normalize_math(answer: str) -> str:
    s = answer.strip().replace("\n", "")
    s = s.replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    for degree in ("^{\\circ}", "^\\circ", "°"):
        s = s.replace(degree, "")
    s = s.replace("\\$", "").replace("$", "")
    s = _UNIT_TEXT.sub("", s).strip()
    s = _TEXT_WRAP.sub(r"\1", s)
    s = s.replace("\\%", "").replace("%", "")
    for spacing in ("\\,", "\\;", "\\:", "\\ ", "~"):
        s = s.replace(spacing, "")
    s = s.rstrip(".").strip()
    # `x = 3` -> `3` when the left side is a short variable name.
    if s.count("=") == 1 and len(s.split("=")[0].strip()) <= 2:
        s = s.split("=")[1].strip()
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if s.startswith("."):
        s = "0" + s
    s = _brace_sqrt(s)
    s = s.replace(" ", "")
    s = _brace_fracs(s)
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    if s == "0.5":
        s = "\\frac{1}{2}"
    if m := _SLASH.match(s):
        s = f"\\frac{{{m.group(1)}}}{{{m.group(2)}}}"
    return s


def as_rational(s: str) -> Fraction | None:
    """The value of a normalised answer that is a plain number or a simple fraction."""
    if _NUMBER.match(s):
        return Fraction(s)
    if m := _FRAC.match(s):
        num, den = int(m.group(2)), int(m.group(3))
        if den == 0:
            return None
        value = Fraction(num, den)
        return -value if m.group(1) else value
    return None


def math_equal(prediction: str | None, reference: str) -> bool:
    if prediction is None:
        return False
    a, b = normalize_math(prediction), normalize_math(reference)
    if a == b:
        return True
    va, vb = as_rational(a), as_rational(b)
    return va is not None and va == vb
