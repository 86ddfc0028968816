"""What the decode generator yields: one record per request per refinement step."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import torch

from .settings import DecodeSettings


class TokenState(IntEnum):
    """A generated position's state, in the paper's order [MASK] -> Soft -> [Decode] -> final."""

    MASKED = 0   # a hard mask (hard_mask mode, or before the first step)
    SOFT = 1     # still masked, fed to the model as a mask-aware soft token
    DECODED = 2  # holds a token that may still be revised while its block is open
    FINAL = 3    # its block is finished: it can no longer change

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass
class DecodeRequest:
    """One generation: prompt token ids and settings. `want_steps` asks for per-step detail."""

    request_id: str
    prompt_ids: list[int]
    settings: DecodeSettings = field(default_factory=DecodeSettings)
    want_steps: bool = False


@dataclass
class StepRecord:
    """The state of one request after one refinement step (or its terminal record).

    Tensors are on the CPU and cover the request's whole generated region (gen_length).
    `finish` is None while the request runs; its last record carries "completed",
    "cancelled" or "error" (with `error`, and `error_kind`: "out_of_memory" when the request
    does not fit on the device even alone, "step_failed" for any other failure).
    """

    request_id: str
    step: int                    # refinement steps done so far, minus one (0-based index)
    block: int                   # block the step worked on
    nfe: int                     # forward passes spent on this request so far
    gen_ids: torch.Tensor        # (G,) canvas ids of the generated region
    states: torch.Tensor         # (G,) TokenState codes, int8
    confirmed: int               # leading positions that can no longer change
    block_start: int
    block_end: int
    conf: torch.Tensor | None = None       # (G,) stored confidence of decoded positions, NaN elsewhere
    top_ids: torch.Tensor | None = None    # (G, k) the model's top candidates
    top_probs: torch.Tensor | None = None  # (G, k) their probabilities
    mask_share: torch.Tensor | None = None  # (G,) weight of the mask embedding in the soft input
    finish: str | None = None
    error: str | None = None
    error_kind: str | None = None

    @property
    def finished(self) -> bool:
        return self.finish is not None
