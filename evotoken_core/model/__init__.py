"""LLaDA-format model: config, pure-torch network, loading and LoRA."""

from .config import LLaDAConfig
from .loading import DTYPES, LoadedModel, ModelNotFoundError, default_device, load_model, parse_dtype
from .modeling import LLaDAModelLM, soft_embed

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
