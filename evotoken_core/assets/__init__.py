"""Files shipped inside the package: the embedded demo model and the held-out test sets.

The demo model is what `evotoken generate`, `evotoken eval` and the server use when no
`--model` is given, so a fresh offline install answers real questions out of the box.
"""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL_DIR = ASSETS_DIR / "default_model"
PRETRAIN_ONLY_DIR = DEFAULT_MODEL_DIR / "pretrain_only"


def default_model_path() -> Path:
    """The embedded model's directory (LLaDA format: config.json, safetensors, tokenizer).

    Raises FileNotFoundError with the path and the way to rebuild it when the weights are not
    there (e.g. an install that left package data out).
    """
    if not (DEFAULT_MODEL_DIR / "config.json").is_file():
        raise FileNotFoundError(
            f"the embedded demo model is missing at {DEFAULT_MODEL_DIR}; reinstall the package "
            "with its data files, rebuild it with scripts/train_demo_model.sh, or pass --model PATH"
        )
    return DEFAULT_MODEL_DIR


def pretrain_only_model_path() -> Path:
    """The same demo model before CTS, shipped beside it for hard_mask vs EvoToken comparisons."""
    if not (PRETRAIN_ONLY_DIR / "config.json").is_file():
        raise FileNotFoundError(f"the pretrain-only demo model is missing at {PRETRAIN_ONLY_DIR}")
    return PRETRAIN_ONLY_DIR
