"""Safe evaluation of Countdown answers: arithmetic on integers with + - * / only.

Model output is untrusted text, so it is parsed with `ast` and only integer literals, the four
operators and unary signs are accepted; everything else (names, calls, `**`, `//`, floats) is
rejected rather than evaluated. Values are exact fractions, so no rounding can turn a wrong
expression into a right one, and division by zero is an ordinary wrong answer.
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

ALLOWED_CHARS = re.compile(r"^[0-9+\-*/() ]+$")
MAX_LENGTH = 200          # a three-number expression is a few dozen characters
MAX_MAGNITUDE = 10**12    # far beyond any Countdown value; stops runaway products early

_BINARY = {
    ast.Add: lambda x, y: x + y,
    ast.Sub: lambda x, y: x - y,
    ast.Mult: lambda x, y: x * y,
    ast.Div: lambda x, y: x / y,
}


class _Rejected(Exception):
    pass


def _value(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _value(node.operand)
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Div) and right == 0:
            raise _Rejected("division by zero")
        result = _BINARY[type(node.op)](left, right)
        if abs(result) > MAX_MAGNITUDE:
            raise _Rejected("value too large")
        return result
    raise _Rejected(f"{type(node).__name__} is not allowed")


def evaluate(expr: str) -> Fraction | None:
    """The exact value of `expr`, or None when it is not a plain + - * / expression."""
    if not isinstance(expr, str) or len(expr) > MAX_LENGTH or not ALLOWED_CHARS.match(expr):
        return None
    try:
        tree = ast.parse(expr.strip(), mode="eval")
        return _value(tree.body)
    except (SyntaxError, ValueError, _Rejected, RecursionError):
        return None


def numbers_in(expr: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", expr)]


def countdown_correct(expr: str | None, numbers: list[int], target: float) -> bool:
    """The reference rule: exactly the given numbers, each once, and the value within 1e-5."""
    if expr is None or sorted(numbers_in(expr)) != sorted(numbers):
        return False
    value = evaluate(expr)
    return value is not None and abs(float(value) - float(target)) < 1e-5
