"""Request bodies of /v1/chat/completions and /v1/completions, field by field as OpenAI documents them.

Standard fields come first, in the reference's order; the diffusion extras sit in one marked
block. Every documented field is declared, so a client sending one this server cannot honour
gets a 400 naming it (`check_supported`) instead of a silent ignore, and an undocumented
field is a 400 too (`extra="forbid"`), as OpenAI answers it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator

from evotoken_core.decoding import CACHE_MODES, DECODING_MODES, REMASKING_RULES, DecodeSettings, SettingsError

from .errors import APIError, bad_request, unsupported
from .settings import OPENAI_MAX_TEMPERATURE, ModelSettings

MAX_STOP_STRINGS = 16
MAX_N = 64
DECODE_FIELDS = frozenset(DecodeSettings.field_names())


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False
    include_obfuscation: bool | None = None  # OpenAI's padding of stream chunks; nothing to pad here


class _GenerationRequest(BaseModel):
    """Fields both endpoints share, and the conversion to engine settings."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None  # OpenAI requires it; absent here means the served model
    frequency_penalty: StrictFloat | None = None
    logit_bias: dict[str, float] | None = None
    max_tokens: StrictInt | None = Field(None, ge=1)
    n: StrictInt = Field(1, ge=1, le=MAX_N)
    presence_penalty: StrictFloat | None = None
    seed: StrictInt | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: StrictFloat | None = Field(None, le=OPENAI_MAX_TEMPERATURE)
    top_p: StrictFloat | None = None
    user: str | None = None

    # --- EvoToken extras (sent by the OpenAI SDK with `extra_body=`) ---------------------------
    # JSON types only: ranges, defaults and the canvas are the core's (`DecodeSettings.resolve`).
    steps: StrictInt | None = None
    block_length: StrictInt | None = None
    k_soft: StrictInt | None = None
    alpha_soft_mask: StrictFloat | None = None
    remasking: Literal[REMASKING_RULES] | None = None
    threshold: StrictFloat | None = None
    threshold_stable: bool | None = None
    decoding: Literal[DECODING_MODES] | None = None
    cache: Literal[CACHE_MODES] | None = None
    cache_refresh: StrictInt | None = None
    cache_guard: StrictFloat | None = None
    stream_steps: bool | Literal["full"] = False
    # Fixed-length extras that benchmark clients send (aiperf, guidellm, vLLM bench; vLLM's names):
    ignore_eos: bool = False  # decode the whole canvas; the answer has exactly max_tokens tokens
    min_tokens: StrictInt | None = None  # no end of the answer before this many tokens
    # ---------------------------------------------------------------------------------------------

    @field_validator("seed")
    @classmethod
    def _minus_one_is_random(cls, seed):
        """Several benchmark clients send `seed: -1` for "no fixed seed"."""
        return None if seed == -1 else seed

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, stop):
        if isinstance(stop, list) and len(stop) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings are supported")
        return stop

    @property
    def stop_strings(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def requested_max_tokens(self, default: int) -> int:
        return self.max_tokens if self.max_tokens is not None else default

    @property
    def max_tokens_param(self) -> str:
        """The field an error about the length names: the one the client sent."""
        return "max_tokens"

    def param_of(self, engine_param: str) -> str:
        return self.max_tokens_param if engine_param == "max_tokens" else engine_param

    def check_supported(self) -> None:
        """Reject what this server cannot honour, naming the parameter."""
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(self, name) not in (None, 0):
                raise unsupported(name, "other than 0 is not supported by diffusion decoding")
        if self.top_p not in (None, 1):
            raise unsupported("top_p", "other than 1 is not supported; use temperature")
        if self.logit_bias:
            raise unsupported("logit_bias")
        if self.stream_options is not None and not self.stream:
            raise bad_request("stream_options is only allowed with stream: true", param="stream_options")
        if self.stream_steps and not self.stream:
            raise bad_request("stream_steps needs stream: true", param="stream_steps")
        if self.seed is not None and not 0 <= self.seed < 2**63 - MAX_N:
            raise bad_request("seed must be an integer in [0, 2**63 - 64)", param="seed")

    def decode_settings(self, defaults: ModelSettings, max_tokens: int) -> DecodeSettings:
        """The engine settings of one row: what the request sets over the server's defaults,
        resolved and checked once by the core (`DecodeSettings.resolve`: the canvas is
        `max_tokens` rounded up to whole blocks, `steps` counts steps over that canvas).
        Raises `APIError` 400 naming the parameter at fault as the client spelled it.
        """
        given = {name: getattr(self, name) for name in self.model_fields_set if name in DECODE_FIELDS}
        try:
            return DecodeSettings.resolve({**given, "max_tokens": max_tokens}, defaults)
        except SettingsError as error:
            raise bad_request(str(error), param=self.param_of(error.param)) from None


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    function_call: dict[str, Any] | None = None

    def text(self, index: int) -> str:
        """The message as plain text; anything but text parts is a 400 naming where it is."""
        if self.role in ("tool", "function") or self.tool_calls or self.function_call:
            raise unsupported(f"messages.{index}", "uses tool calling, which is not supported")
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        pieces = []
        for j, part in enumerate(self.content):
            if part.type != "text" or part.text is None:
                raise unsupported(f"messages.{index}.content.{j}", f"of type {part.type!r} is not supported; "
                                  "only text parts are")
            pieces.append(part.text)
        return "".join(pieces)


class ChatCompletionRequest(_GenerationRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    audio: dict[str, Any] | None = None
    function_call: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    logprobs: bool | None = None
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    metadata: dict[str, str] | None = None
    modalities: list[str] | None = None
    parallel_tool_calls: bool | None = None
    prediction: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    reasoning_effort: str | None = None
    response_format: dict[str, Any] | None = None
    safety_identifier: str | None = None
    service_tier: str | None = None
    store: bool | None = None
    tool_choice: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    top_logprobs: StrictInt | None = None
    verbosity: str | None = None
    web_search_options: dict[str, Any] | None = None

    def requested_max_tokens(self, default: int) -> int:
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return super().requested_max_tokens(default)

    @property
    def max_tokens_param(self) -> str:
        return "max_completion_tokens" if self.max_completion_tokens is not None else "max_tokens"

    def check_supported(self) -> None:
        super().check_supported()
        for name in ("tools", "functions"):
            if getattr(self, name):
                raise unsupported(name)
        for name in ("tool_choice", "function_call"):
            if getattr(self, name) not in (None, "none"):
                raise unsupported(name)
        if self.logprobs:
            raise unsupported("logprobs")
        if self.top_logprobs:
            raise unsupported("top_logprobs")
        if self.response_format not in (None, {"type": "text"}):
            raise unsupported("response_format", "other than {\"type\": \"text\"} is not supported")
        if self.modalities not in (None, ["text"]):
            raise unsupported("modalities", "other than [\"text\"] is not supported")
        for name in ("audio", "prediction", "web_search_options", "reasoning_effort", "verbosity"):
            if getattr(self, name) is not None:
                raise unsupported(name)
        if self.store:
            raise unsupported("store", "is not supported: completions are not stored")
        if self.service_tier not in (None, "auto", "default"):
            raise unsupported("service_tier")
        for i, message in enumerate(self.messages):
            message.text(i)

    def conversation(self) -> list[dict[str, str]]:
        """Messages for the chat template; `developer` is OpenAI's newer name for `system`."""
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text(i)}
                for i, m in enumerate(self.messages)]


Prompt = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(_GenerationRequest):
    prompt: Prompt
    best_of: StrictInt | None = None
    echo: bool | None = None
    logprobs: StrictInt | None = None
    suffix: str | None = None

    def check_supported(self) -> None:
        super().check_supported()
        if self.best_of not in (None, self.n):
            raise unsupported("best_of", "other than n is not supported")
        if self.echo:
            raise unsupported("echo")
        if self.logprobs:
            raise unsupported("logprobs")
        if self.suffix:
            raise unsupported("suffix")

    def prompts(self) -> list[str | list[int]]:
        """The prompt as a list: OpenAI lets one field carry one or many, as text or token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if not p:
            raise APIError(400, "prompt must not be empty", param="prompt")
        if all(isinstance(x, int) for x in p):
            return [list(p)]
        return list(p)
