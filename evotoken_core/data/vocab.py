"""The demo model's tokenizer: byte-level BPE, every integer 0-1000 as one token, and the
answer-format tags as single tokens.

Why whole-number tokens: a small model learned copying and times tables with them and failed
with characters (calibration note). Digits are split individually *before* BPE, so BPE never
learns a multi-digit piece of its own; the integers 10-1000 are then added tokens, which the
tokenizer matches leftmost-longest ahead of BPE. Hence "100" and "1000" are one token each,
"123" is never "12" + "3", and a number keeps the same id wherever it appears (after a space,
a brace or a parenthesis), so copying a number from the prompt is copying an id. Larger
numbers fall apart into pieces (1234 -> "123" "4") and still round-trip exactly, as does any
other text, through the byte-level fallback.
"""

from __future__ import annotations

import random

from transformers import PreTrainedTokenizerFast

from evotoken_core.tokenizer import train_bpe_tokenizer

from . import arithmetic, countdown, demo_tasks
from .chat_template import install_chat_template
from .example import LEVELS
from .prompts import INSTRUCTIONS, user_message

MAX_NUMBER_TOKEN = 1000
FORMAT_TOKENS = ["<reasoning>", "</reasoning>", "<answer>", "</answer>", "\\boxed{"]
BPE_VOCAB_SIZE = 640   # bytes (256) + special tokens + merges for the task words
CORPUS_SEED = 0
CORPUS_PER_LEVEL = 400

GENERAL_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "Please answer the question. What is the answer? Yes, no, maybe.",
    "You are a helpful assistant. Explain your answer in one sentence.",
]


def corpus() -> list[str]:
    """A fixed sample of every task's text, as the model sees it (the user turn with its
    instruction line, the chat roles), so the merges go to the words that fill every
    prompt: each token saved there is saved at every training and decoding step."""
    rng = random.Random(CORPUS_SEED)
    texts = list(GENERAL_TEXT) + list(demo_tasks.WORDS) + ["user", "assistant", "system"] * CORPUS_PER_LEVEL
    for level in LEVELS:
        for _ in range(CORPUS_PER_LEVEL):
            ex = arithmetic.sample_example(rng, level, style="direct")  # the shipped tokenizer's corpus
            texts += [user_message(ex.prompt, "arith"), ex.answer]
    for _ in range(CORPUS_PER_LEVEL):
        ex = countdown.sample_example(rng)
        texts += [user_message(ex.prompt, "countdown"), ex.answer]
    for name in demo_tasks.DEMO_TASKS:
        for _ in range(CORPUS_PER_LEVEL // 4):
            q, a = demo_tasks.sample_demo(rng, name, "train")
            texts += [q, a]
    return texts


def number_tokens() -> list[str]:
    # 0-9 are already single bytes of the BPE alphabet.
    return [str(n) for n in range(10, MAX_NUMBER_TOKEN + 1)]


def build_demo_tokenizer(whole_numbers: bool = True) -> PreTrainedTokenizerFast:
    """The same tokenizer on every call: fixed corpus, fixed seed, deterministic BPE.

    `whole_numbers=False` leaves out the added tokens 10-1000, so every number is a run of
    digit tokens: the representation in which a ones digit is a token of its own (the shipped
    model, on whole numbers, learned the tens of its sums but not the ones; see its card)."""
    return install_chat_template(train_bpe_tokenizer(
        corpus(),
        vocab_size=BPE_VOCAB_SIZE,
        extra_tokens=FORMAT_TOKENS + (number_tokens() if whole_numbers else []),
        individual_digits=True,
    ))
