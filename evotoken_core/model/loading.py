"""Resolving a model reference and loading model, tokenizer and LoRA without remote code."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .config import LLaDAConfig
from .modeling import LLaDAModelLM

DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
}


class ModelNotFoundError(FileNotFoundError):
    """The model reference names neither a checkpoint directory nor a cached hub repository."""


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    key = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "fp64": "float64",
           "half": "float16", "float": "float32", "double": "float64"}.get(name, name)
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[key]


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_model_path(
    ref: str | os.PathLike, allow_download: bool | None = None, required_file: str = "config.json"
) -> Path:
    """A local checkpoint directory, or a hub id looked up in (or fetched into) the HF cache.

    Downloading happens only when `HF_HUB_OFFLINE` is unset and `allow_download` is not False;
    every failure names the reference that was asked for.
    """
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / required_file).is_file():
            raise ModelNotFoundError(f"directory {str(path)!r} has no {required_file}")
        return path
    text = str(ref)
    looks_like_hub_id = text.count("/") == 1 and not text.startswith((".", "/", "~"))
    if not looks_like_hub_id:
        raise ModelNotFoundError(f"model path {text!r} does not exist")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(text, local_files_only=True))
    except Exception as cached_error:
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
        if allow_download is False or offline:
            raise ModelNotFoundError(
                f"model {text!r} is neither a local directory nor in the Hugging Face cache "
                f"({cached_error.__class__.__name__}); downloads are off"
            ) from None
        try:
            return Path(snapshot_download(text))
        except Exception as error:
            raise ModelNotFoundError(f"model {text!r} could not be found or downloaded: {error}") from None


def end_token_ids(config: LLaDAConfig, tokenizer: PreTrainedTokenizerBase | None) -> list[int]:
    """Every id that ends a generation: end-of-text and end-of-turn, from config and tokenizer."""
    ids: set[int] = set()
    for value in (config.eos_token_id, getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if tokenizer is not None:
        vocab = tokenizer.get_vocab()
        for name in ("<|endoftext|>", "<|eot_id|>"):
            if name in vocab:
                ids.add(vocab[name])
    ids.discard(config.mask_token_id)
    return sorted(ids)


@dataclass
class LoadedModel:
    """A model ready for decoding, with the facts the engine needs about its vocabulary."""

    model: LLaDAModelLM
    tokenizer: PreTrainedTokenizerBase | None
    path: Path
    mask_id: int
    end_ids: list[int]
    lora: str | None = None

    @property
    def config(self) -> LLaDAConfig:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return self.model.transformer.wte.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.transformer.wte.weight.dtype


def _check_llada(path: Path) -> None:
    config = json.loads((path / "config.json").read_text())
    if config.get("model_type") != "llada":
        raise ValueError(
            f"{path}/config.json has model_type {config.get('model_type')!r}; only LLaDA-format "
            "checkpoints (model_type 'llada') are supported"
        )


def load_model(
    ref: str | os.PathLike,
    *,
    dtype: str | torch.dtype = "float32",
    device: str | None = None,
    lora: str | os.PathLike | None = None,
    merge_lora: bool = False,
    allow_download: bool | None = None,
) -> LoadedModel:
    """Load an LLaDA-format checkpoint (single or sharded safetensors) and its tokenizer.

    `lora` applies a peft adapter (e.g. the published EvoToken LoRA); with `merge_lora` its
    weights are folded into the base so decoding costs nothing extra.
    """
    path = resolve_model_path(ref, allow_download)
    _check_llada(path)
    torch_dtype = parse_dtype(dtype)
    device = device or default_device()
    model = LLaDAModelLM.from_pretrained(path, dtype=torch_dtype)
    tokenizer = None
    if (path / "tokenizer_config.json").is_file() or (path / "tokenizer.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(path)
    lora_name = None
    if lora is not None:
        from peft import PeftModel

        lora_path = resolve_model_path(lora, allow_download, required_file="adapter_config.json")
        wrapped = PeftModel.from_pretrained(model, lora_path)
        model = wrapped.merge_and_unload() if merge_lora else wrapped.base_model.model
        lora_name = str(lora)
    model.to(device).eval().requires_grad_(False)
    if torch.device(device).type == "cpu":
        # Subnormal floats made tiny-model decoding 10-25x slower on the CPUs we measured.
        torch.set_flush_denormal(True)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        path=path,
        mask_id=model.config.mask_token_id,
        end_ids=end_token_ids(model.config, tokenizer),
        lora=lora_name,
    )
