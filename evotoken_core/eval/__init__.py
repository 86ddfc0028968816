"""Benchmarks: dataset loaders, the reference scorers and the `evotoken eval` harness."""

from .datasets import TASKS, DatasetError, EvalItem, load_items, shipped_test_set
from ..data.expression import countdown_correct, evaluate
from .scoring import parse_number, predicted_answer, score_countdown, score_math, score_numeric

__all__ = [
    "TASKS", "DatasetError", "EvalItem", "countdown_correct", "evaluate", "load_items",
    "parse_number", "predicted_answer", "score_countdown", "score_math", "score_numeric",
    "shipped_test_set",
]
