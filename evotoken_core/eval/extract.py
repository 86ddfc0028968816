"""Pulling the final answer out of a model's text: `\\boxed{...}` and `<answer>` tags.

A hand-written brace matcher instead of a regex, because boxed answers nest braces
(`\\boxed{\\frac{1}{2}}`), and an unclosed box must count as no answer rather than swallow
the rest of the text.
"""

from __future__ import annotations

import re

BOX_COMMANDS = ("\\boxed", "\\fbox")
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)


def _braced(text: str, open_at: int) -> str | None:
    """Content of the brace group opening at `open_at`, or None when it never closes."""
    depth = 0
    for i in range(open_at, len(text)):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1:i]
    return None


def boxed_contents(text: str) -> list[str]:
    """Every closed `\\boxed{...}` (or `\\fbox{...}`, or `\\boxed 5`) in order of appearance."""
    found: list[tuple[int, str]] = []
    for command in BOX_COMMANDS:
        start = 0
        while (at := text.find(command, start)) >= 0:
            after = at + len(command)
            start = after
            rest = text[after:]
            stripped = rest.lstrip(" ")
            if stripped.startswith("{"):
                content = _braced(text, after + (len(rest) - len(stripped)))
                if content is not None:
                    found.append((at, content))
            elif command == "\\boxed" and rest.startswith(" "):
                # `\boxed 5`: LaTeX's one-token argument form.
                token = stripped.split(maxsplit=1)[0] if stripped.strip() else ""
                token = token.split("$", 1)[0]
                if token:
                    found.append((at, token))
    return [content for _, content in sorted(found)]


def first_boxed(text: str) -> str | None:
    """The first box with something in it (the GSM8K/SVAMP rule)."""
    return next((c for c in boxed_contents(text) if c.strip()), None)


def last_boxed(text: str) -> str | None:
    """The last closed box (the MATH500 and Countdown rule)."""
    boxes = boxed_contents(text)
    return boxes[-1] if boxes else None


def answer_tag(text: str) -> str | None:
    """Content of the first `<answer>` tag (an unclosed one runs to the end of the text)."""
    match = _ANSWER_TAG.search(text)
    if match is None:
        return None
    content = match.group(1).strip()
    return content or None
