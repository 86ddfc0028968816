"""The examples must be true: every prompt in README.md, docs/*.md and the playground's example
menu is sent to the embedded demo model through the real server at its defaults (the request
names only the model and the message), and the reply must be the answer the docs show or imply.

A prompt found in the docs must have an entry here: its answer (`EXPECTED`), or why it is not run
(`NOT_RUN`).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from evotoken_core.data.prompts import user_message
from evotoken_core.eval.datasets import score_newcomer
from evotoken_core.eval.scoring import score_countdown
from server import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLAYGROUND = ROOT / "server" / "static" / "index.html"
TRAINED_FORMAT = re.compile(r"<reasoning>.*</reasoning>\n<answer>\\boxed\{.+\}</answer>", re.DOTALL)
MATH = "\nThink step by step and put the final answer in \\boxed{}."

# prompt (the user message as sent) -> (kind, the answer)
EXPECTED = {
    "Tom has 3 boxes with 4 pens in each. How many pens does he have?" + MATH: ("arithmetic", "12"),
    "Tom has 3 boxes with 4 pens in each. How many pens does he have?": ("arithmetic", "12"),
    "Tom has 45 books. He buys 14 more. How many books does Tom have now?": ("arithmetic", "59"),
    "Tom has 12 apples. He buys 8 more. How many apples does Tom have now?": ("arithmetic", "20"),
    "Ben has 4 boxes with 6 pens in each. He also has 9 more pens. How many pens does Ben have in all?":
        ("arithmetic", "33"),
    "Sort these numbers: 41, 7, 23.": ("sort", "7, 23, 41"),
    "Reverse the letters: l-a-m-p.": ("reverse", "pmal"),
    "Numbers: 1, 48, 17. Target: 65.": ("countdown", "65"),
}
# prompt -> why the test does not run it
NOT_RUN = {
    "Lily runs 12 km an hour for 4 hours. How far does she run?":
        "docs/deployment.md serves LLaDA-8B-Instruct with the EvoToken adapter, not the demo model",
    "The quick brown fox": "a raw completion: the docs show no answer",
    "Tom has 3 bags with 4 apples in each. How many apples does Tom have?" + MATH:
        "docs/training.md runs it on runs/cts, a model the reader trains",
}

_LITERALS = r'((?:"(?:[^"\\\n]|\\.)*"\s*)+)'  # one string literal, or several side by side


def _join_literals(text: str) -> str:
    return "".join(json.loads(lit) for lit in re.findall(r'"(?:[^"\\\n]|\\.)*"', text))


def doc_prompts(text: str) -> list[str]:
    """The user messages and raw prompts of a Markdown file's examples: a user turn's
    `"content": ...` and `"prompt": ...` in curl JSON and Python (adjacent literals joined), and
    `evotoken generate --prompt "..."` with its `--task` line added as the command adds it."""
    found = [_join_literals(m) for m in re.findall(
        r'(?:"role":\s*"user",\s*"content"|"prompt"):\s*' + _LITERALS, text)]
    for command in re.findall(r"evotoken generate(?:[^\n]*\\\n)*[^\n]*", text):
        prompt = re.search(r'--prompt "([^"]*)"', command)
        if prompt:
            task = re.search(r"--task (\w+)", command)
            found.append(user_message(prompt.group(1), task.group(1)) if task else prompt.group(1))
    return found


def playground_prompts() -> list[str]:
    page = PLAYGROUND.read_text()
    prefilled = re.search(r'<textarea id="prompt"[^>]*>([^<]*)</textarea>', page).group(1)
    return [html.unescape(prefilled)] + [html.unescape(p) for p in re.findall(r'data-prompt="([^"]*)"', page)]


def all_prompts() -> dict[str, list[str]]:
    """prompt -> the files that show it."""
    where: dict[str, list[str]] = {}
    for path in DOCS:
        for prompt in doc_prompts(path.read_text()):
            where.setdefault(prompt, []).append(str(path.relative_to(ROOT)))
    for prompt in playground_prompts():
        where.setdefault(prompt, []).append(str(PLAYGROUND.relative_to(ROOT)))
    return where


def test_the_collector_reads_every_form_of_example():
    text = ('-d \'{"messages": [{"role": "user", "content": "a\\nb \\\\boxed{}."}]}\'\n'
            'messages=[{"role": "user", "content": "one\\n"\n        "two"}],\n'
            'data: {"choices": [{"delta": {"content": "a reply, not a prompt"}}]}\n'
            '"prompt": "raw"\n'
            'evotoken generate --prompt "Tom has 3 pens." \\\n    --task arith --show-steps\n'
            'evotoken generate --prompt-ids 5,17,42 --json\n')
    assert doc_prompts(text) == ["a\nb \\boxed{}.", "one\ntwo", "raw", user_message("Tom has 3 pens.", "arith")]
    assert playground_prompts()[0] == playground_prompts()[1], "the first example is the prefilled one"


def test_every_prompt_in_the_docs_and_the_playground_is_checked_here():
    where = all_prompts()
    assert len(where) >= 8
    known = EXPECTED.keys() | NOT_RUN.keys()
    unknown = {p: files for p, files in where.items() if p not in known}
    assert not unknown, f"give these prompts their expected answer in this file: {unknown}"
    assert all(p in EXPECTED for p in playground_prompts()), "the playground's examples must be right today"


def test_the_playground_doc_lists_the_examples_the_page_offers():
    doc = (ROOT / "docs" / "playground.md").read_text()
    for prompt in playground_prompts():
        assert f"| {prompt} |" in doc


@pytest.fixture(scope="module")
def answers():
    """Every prompt's reply from the server at its defaults, asked all at once (batched)."""
    from tests.server_harness import Harness

    harness = Harness(Settings(served_model_name="evotoken", threads=1))
    prompts = list(EXPECTED)
    try:
        replies = harness.post_all("/v1/chat/completions", [
            {"model": "evotoken", "messages": [{"role": "user", "content": p}]} for p in prompts])
    finally:
        harness.close()
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies if r.status_code != 200]
    return {p: r.json()["choices"][0]["message"]["content"] for p, r in zip(prompts, replies)}


def is_right(kind: str, gold: str, text: str, prompt: str) -> bool:
    if kind == "countdown":
        numbers = [int(n) for n in re.search(r"Numbers: ([\d, ]+)\.", prompt).group(1).split(", ")]
        return bool(TRAINED_FORMAT.fullmatch(text)) and score_countdown(text, numbers, float(gold))
    if kind == "arithmetic":  # the README shows the trained format: a worked trace, then the box
        return bool(TRAINED_FORMAT.fullmatch(text)) and score_newcomer(kind, text, gold)
    return text.strip() == text and score_newcomer(kind, text, gold)


@pytest.mark.parametrize("prompt", list(EXPECTED))
def test_the_demo_model_answers_the_example_right(answers, prompt):
    kind, gold = EXPECTED[prompt]
    assert is_right(kind, gold, answers[prompt], prompt), answers[prompt]
