"""LoRA for CTS through peft, in the layout of the published EvoToken adapter.

The adapter is a `CAUSAL_LM` peft LoRA on `q_proj`/`k_proj`/`v_proj`, like
`zhongzero/EvoToken_LLaDA_Instruct_8B_Lora`, so `load_model(..., lora=DIR)` and
`evotoken eval --lora DIR` apply ours exactly as they apply the published one.
"""

from __future__ import annotations

from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_model

from evotoken_core.model.modeling import LLaDAModelLM

ADAPTER_DIR = "adapter"


def add_lora(model: LLaDAModelLM, r: int, alpha: int, dropout: float, targets: list[str]) -> PeftModel:
    """Wrap `model` with fresh LoRA layers; only they are trainable afterwards."""
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                        bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def load_lora(model: LLaDAModelLM, adapter_dir: str | Path, trainable: bool = True) -> PeftModel:
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)


def inner_model(model) -> LLaDAModelLM:
    """The LLaDA module itself (with LoRA layers injected in place when wrapped): calling it
    directly takes the soft-input keywords that peft's causal-LM wrapper does not know."""
    return model.base_model.model if isinstance(model, PeftModel) else model


def save_adapter(model: PeftModel, out: str | Path) -> Path:
    out = Path(out)
    model.save_pretrained(str(out))
    return out


def merged_copy(model: PeftModel) -> LLaDAModelLM:
    """A plain LLaDA with the adapter folded in (the wrapped model is left untouched)."""
    import copy

    return copy.deepcopy(model).merge_and_unload()
