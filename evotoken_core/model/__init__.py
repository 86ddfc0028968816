"""LLaDA-format model: config, pure-torch network, loading and LoRA."""

from .config import LLaDAConfig
from .loading import DTYPES, LoadedModel, ModelNotFoundError, default_device, load_model, parse_dtype
from .modeling import LLaDAModelLM, soft_embed


def _register_with_auto_classes() -> None:
    """Let AutoConfig/AutoTokenizer read `model_type: llada` without remote code."""
    from transformers import AutoConfig

    try:
        AutoConfig.register("llada", LLaDAConfig)
    except ValueError:  # already registered (e.g. module reloaded)
        pass


_register_with_auto_classes()

__all__ = [
    "DTYPES",
    "LLaDAConfig",
    "LLaDAModelLM",
    "LoadedModel",
    "ModelNotFoundError",
    "default_device",
    "load_model",
    "parse_dtype",
    "soft_embed",
]
