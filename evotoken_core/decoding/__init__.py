"""EvoToken decoding: settings, schedule, the per-step rules and the batch state."""

from .knobs import Range, SettingsError
from .recommended import RecommendedDecoding
from .records import DecodeRequest, StepRecord, TokenState
from .schedule import transfer_count_at, transfer_counts
from .settings import CACHE_MODES, DECODING_MODES, REMASKING_RULES, DecodeSettings, steps_for, whole_blocks

__all__ = [
    "CACHE_MODES",
    "DECODING_MODES",
    "REMASKING_RULES",
    "DecodeRequest",
    "DecodeSettings",
    "Range",
    "RecommendedDecoding",
    "SettingsError",
    "StepRecord",
    "TokenState",
    "steps_for",
    "transfer_count_at",
    "transfer_counts",
    "whole_blocks",
]
