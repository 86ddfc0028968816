"""Server and model settings: one source for `evotoken serve` flags and `EVOTOKEN_*` variables.

Split the way llama-cpp-python splits them: `ServerSettings` is about the HTTP process (bind
address, keys, limits), `ModelSettings` about what is loaded and how it decodes by default.
`Settings` is both; the CLI generates one flag per field from these classes, so a setting can
never exist as a flag without an environment variable or the other way round.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from evotoken_core.decoding import (CACHE_MODES, DECODING_MODES, REMASKING_RULES, DecodeSettings,
                                    RecommendedDecoding, SettingsError)
from evotoken_core.decoding.knobs import knobs_of
from evotoken_core.flags import DTYPE_NAMES

ENV_PREFIX = "EVOTOKEN_"
_CONFIG = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)
# The model settings a checkpoint may recommend (generation_config.json, key `evotoken`).
RECOMMENDED_FIELDS = tuple(knobs_of(RecommendedDecoding))
OPENAI_MAX_TEMPERATURE = 2  # OpenAI's documented range of `temperature` is [0, 2]
_DECLARED = {**knobs_of(DecodeSettings), **knobs_of(RecommendedDecoding)}


def decoding_default(name: str, note: str = "", **constraints: Any) -> Any:
    """The server-wide default of a decoding knob: the reference value and the help the core
    declares; its range is checked by the core's resolver (`ModelSettings._defaults_decode`)."""
    default, declared = _DECLARED[name]
    return Field(default, description=f"Default {declared.help}.{note}", **constraints)


def _split_commas(value):
    """`EVOTOKEN_API_KEY=a,b` and `--api-key a --api-key b` both give a list."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class ServerSettings(BaseSettings):
    model_config = _CONFIG

    host: str = Field("127.0.0.1", description="Address to bind; use 0.0.0.0 to listen on every interface.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on.")
    api_key: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="API key clients must send as `Authorization: Bearer KEY` (repeatable; "
        "comma-separated in the environment). No key: the API is open.")
    api_key_file: Path | None = Field(
        None, description="File with one API key per line (blank lines and # comments ignored).")
    max_queue: int = Field(
        64, ge=0, description="Rows that may wait for a batch slot beyond the max batch size; "
        "more gives 429.")
    request_timeout: float = Field(
        60.0, gt=0, description="Seconds a request may wait in the queue before it gets 504.")
    cors_origin: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origin allowed by CORS (repeatable; `*` for any). "
        "None: CORS stays closed.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Log level of the server and its access log.")
    open_probes: bool = Field(
        True, description="Serve /health, /ready and /metrics without an API key.")
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest accepted request body in bytes (413 beyond).")
    shutdown_grace: float = Field(
        30.0, ge=0, description="Seconds in-flight requests get to finish after SIGTERM while new "
        "ones get 503; those still running then end with a 503.")
    sse_ping_seconds: float = Field(
        15.0, gt=0, description="Seconds between SSE keep-alive comments on open streams.")

    _split_lists = field_validator("api_key", "cors_origin", mode="before")(_split_commas)

    def api_keys(self) -> list[str]:
        """Every configured key: the flags plus the key file, read once at startup."""
        keys = list(self.api_key)
        if self.api_key_file is not None:
            for line in self.api_key_file.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    keys.append(line)
        return keys


class ModelSettings(BaseSettings):
    model_config = _CONFIG

    model: str | None = Field(
        None, description="Checkpoint directory or Hugging Face id of an LLaDA-format model "
        "(default: the model embedded in the package).")
    lora: str | None = Field(None, description="PEFT LoRA adapter (directory or hub id) applied at load.")
    merge_lora: bool = Field(False, description="Fold the LoRA weights into the base model at load.")
    device: str | None = Field(None, description="Torch device (default: cuda when available, else cpu).")
    threads: int | None = Field(
        None, ge=1, description="Torch CPU threads for decoding (default: torch's choice). On a "
        "shared or busy machine 1 can be many times faster than oversubscribed cores.")
    dtype: Literal[DTYPE_NAMES] = Field(
        "float32", description="Weight and activation dtype.")
    served_model_name: str | None = Field(
        None, description="Model id clients use and /v1/models lists (default: the --model value, "
        "or `evotoken` for the embedded model).")
    trust_remote_code: bool = Field(
        False, description="Accepted for familiarity and kept off: the model code is part of this "
        "package, and a request can never choose a model path.")
    max_batch_size: int = Field(32, ge=1, description="Rows decoded together in one refinement step.")
    max_tokens: int = Field(
        _DECLARED["max_tokens"][0], description="max_tokens of a request that gives none. Unset, the "
        "model's recommendation applies (see below).")
    steps_ratio: float = decoding_default(
        "steps_ratio", " Used when a request gives no `steps`. Unset, the model's recommendation applies.")
    block_length: int = decoding_default(
        "block_length", " Unset, the model's recommendation applies: the `evotoken` key of its "
        "generation_config.json names max_tokens, block_length and steps_ratio.")
    k_soft: int = decoding_default("k_soft")
    alpha_soft_mask: float = decoding_default("alpha_soft_mask")
    temperature: float = decoding_default("temperature", le=OPENAI_MAX_TEMPERATURE)
    decoding: Literal[DECODING_MODES] = decoding_default("decoding")
    remasking: Literal[REMASKING_RULES] = decoding_default("remasking")
    threshold: float | None = decoding_default("threshold")
    threshold_stable: bool = decoding_default("threshold_stable")
    cache: Literal[CACHE_MODES] = decoding_default("cache")
    cache_refresh: int = decoding_default("cache_refresh")
    cache_guard: float = decoding_default("cache_guard")

    @model_validator(mode="after")
    def _defaults_decode(self):
        """A default that no request could use is a startup error, not a 400 on every call."""
        try:
            DecodeSettings.resolve(defaults=self)
        except SettingsError as error:
            raise ValueError(f"default {error.param}: {error}") from None
        return self

    def with_recommended(self, recommended: RecommendedDecoding):
        """These settings with the checkpoint's recommended canvas, block length and steps
        ratio filled in wherever the operator set none (by flag or environment)."""
        update = {name: getattr(recommended, name) for name in RECOMMENDED_FIELDS
                  if name not in self.model_fields_set}
        return self.model_copy(update=update)._defaults_decode()


class Settings(ServerSettings, ModelSettings):
    """Everything `evotoken serve` reads; flags override `EVOTOKEN_*` variables over defaults."""

    model_config = _CONFIG
