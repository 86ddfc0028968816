"""Synthetic training and test data for the demo model, and its tokenizer."""

from .example import COPY, LEVELS, ONE_STEP, TWO_STEPS, TrainExample, is_test_key
from .mixture import (DEFAULT_LEVEL_WEIGHTS, DEFAULT_TASK_WEIGHTS, make_test_set,
                      sample_train_example, train_stream)
from .prompts import chat_messages, render_prompt, user_message
from .vocab import build_demo_tokenizer

__all__ = [
    "COPY", "DEFAULT_LEVEL_WEIGHTS", "DEFAULT_TASK_WEIGHTS", "LEVELS", "ONE_STEP", "TWO_STEPS",
    "TrainExample", "build_demo_tokenizer", "chat_messages", "is_test_key", "make_test_set",
    "render_prompt", "sample_train_example", "train_stream", "user_message",
]
