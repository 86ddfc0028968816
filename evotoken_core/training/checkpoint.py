"""Checkpoints: the model in the LLaDA format the core loads, plus the state to resume.

`out/checkpoint-{step}/` holds `config.json`, `model.safetensors` and the tokenizer (or, for a
LoRA run, `adapter/`), and `trainer_state.pt` with the optimizer, the step and the training time so far. The run's
final model is written to `out/` itself (or `out/merged` and `out/adapter` for CTS).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import torch
from torch import nn

from evotoken_core.model.loading import parse_dtype

STATE_FILE = "trainer_state.pt"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def save_llada(model: nn.Module, tokenizer, out: str | Path, dtype: str | None = None,
               recommend_from: str | Path | None = None) -> Path:
    """config + safetensors (+ tokenizer) in the published layout; `dtype` casts a copy.
    `recommend_from`: the checkpoint the run started from, whose decoding recommendation (the
    `evotoken` key of its generation_config.json) the saved model keeps."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if dtype is not None and parse_dtype(dtype) != next(model.parameters()).dtype:
        model = copy.deepcopy(model).to(parse_dtype(dtype))
    model.save_pretrained(out, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    if recommend_from is not None:
        carry_recommended_decoding(recommend_from, out)
    return out


def carry_recommended_decoding(source: str | Path, out: str | Path) -> None:
    """Copy `source`'s `evotoken` decoding recommendation to `out`, when it has one: a model
    trained on from a checkpoint decodes best as that checkpoint did, and every consumer reads
    the recommendation (without it, a small model is scored at the 8B reference shape)."""
    from evotoken_core.decoding.recommended import RecommendedDecoding

    found = RecommendedDecoding.find(source)
    if found is not None:
        found.write(out)


def load_float32(path: str | Path):
    """An LLaDA checkpoint with float32 weights whatever it stores: the shipped models are
    float16 on disk, and float16 master weights would both lose AdamW's small updates and run
    the CPU's slow half-precision matmuls (measured 15-25x slower per CTS step)."""
    from evotoken_core.model.modeling import LLaDAModelLM

    return LLaDAModelLM.from_pretrained(path, dtype=torch.float32)


def checkpoint_dir(out: str | Path, step: int) -> Path:
    return Path(out) / f"checkpoint-{step}"


def list_checkpoints(out: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint under `out`, oldest first."""
    found = []
    root = Path(out)
    if root.is_dir():
        for child in root.iterdir():
            match = _CHECKPOINT_RE.match(child.name)
            if match and (child / STATE_FILE).is_file():
                found.append((int(match.group(1)), child))
    return sorted(found)


def resolve_resume(path: str | Path) -> Path:
    """A checkpoint directory as given, or the latest checkpoint of a run directory."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    found = list_checkpoints(path)
    if not found:
        raise FileNotFoundError(f"{path} is neither a checkpoint (no {STATE_FILE}) nor a run with checkpoints")
    return found[-1][1]


def save_trainer_state(directory: Path, step: int, elapsed_s: float, optimizer, config: dict,
                       metrics: dict) -> None:
    state = {"step": step, "elapsed_s": elapsed_s, "optimizer": optimizer.state_dict(),
             "config": config, "metrics": metrics}
    tmp = directory / (STATE_FILE + ".tmp")
    torch.save(state, tmp)
    tmp.replace(directory / STATE_FILE)  # the state file last: its presence marks a complete checkpoint
    (directory / "trainer_state.json").write_text(
        json.dumps({"step": step, "elapsed_s": elapsed_s, "metrics": metrics, "config": config}, indent=2))


def load_trainer_state(directory: str | Path) -> dict:
    return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=False)


def prune_checkpoints(out: str | Path, keep: int) -> None:
    for _, path in list_checkpoints(out)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
