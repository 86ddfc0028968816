"""Settings validation, the unmask schedule, and confirmed text."""

from __future__ import annotations

import pytest
import torch

from evotoken_core.decoding import DecodeRequest, DecodeSettings, SettingsError, transfer_count_at, transfer_counts
from evotoken_core.engine import Engine
from evotoken_core.model import load_model
from evotoken_core.text import TextAssembler


def test_schedule_splits_evenly_with_the_remainder_first():
    assert transfer_counts(32, 16) == [2] * 16
    assert transfer_counts(10, 4) == [3, 3, 2, 2]
    assert transfer_counts(7, 7) == [1] * 7
    assert sum(transfer_counts(31, 5)) == 31


def test_batched_schedule_matches_the_scalar_one():
    rows = [(32, 16), (10, 4), (7, 3), (24, 24), (5, 2)]
    for step in range(24):
        got = transfer_count_at(torch.tensor([r[0] for r in rows]), torch.tensor([r[1] for r in rows]),
                                torch.full((len(rows),), step))
        for (n, s), g in zip(rows, got.tolist()):
            if step < s:
                assert g == transfer_counts(n, s)[step]


@pytest.mark.parametrize("kwargs, param, fragment", [
    (dict(gen_length=30, block_length=32), "block_length", "not divisible"),
    (dict(gen_length=128, block_length=32, steps=66), "steps", "not divisible"),
    (dict(gen_length=64, block_length=32, steps=128), "steps", "more than"),
    (dict(alpha_soft_mask=1.0), "alpha_soft_mask", "[0, 1)"),
    (dict(alpha_soft_mask=-0.1), "alpha_soft_mask", "[0, 1)"),
    (dict(k_soft=0), "k_soft", "at least 1"),
    (dict(temperature=float("nan")), "temperature", "finite"),
    (dict(temperature=-1.0), "temperature", ">= 0"),
    (dict(remasking="top_p"), "remasking", "low_confidence"),
    (dict(decoding="ar"), "decoding", "evotoken"),
    (dict(threshold=0.0), "threshold", "(0, 1]"),
    (dict(seed=-3), "seed", "seed"),
    (dict(gen_length=0), "gen_length", "at least 1"),
])
def test_bad_settings_name_the_parameter(kwargs, param, fragment):
    with pytest.raises(SettingsError) as info:
        DecodeSettings(**kwargs)
    assert info.value.param == param
    assert fragment in str(info.value)


def test_max_tokens_rounds_the_canvas_up_to_whole_blocks():
    s = DecodeSettings.for_max_tokens(50, block_length=32)
    assert (s.gen_length, s.steps) == (64, 32)
    assert DecodeSettings.for_max_tokens(8, block_length=8, steps=8).gen_length == 8


def test_engine_refuses_prompts_longer_than_the_context(tiny_checkpoint):
    loaded = load_model(tiny_checkpoint, device="cpu")
    engine = Engine(loaded)
    too_long = [5] * (loaded.config.max_sequence_length - 10)
    with pytest.raises(SettingsError, match="context") as info:
        engine.submit(DecodeRequest("x", too_long, DecodeSettings(gen_length=32, block_length=32, steps=16)))
    assert info.value.param == "max_tokens"
    with pytest.raises(SettingsError, match="k_soft"):
        engine.validate(DecodeRequest("x", [5], DecodeSettings(k_soft=10_000)))
    with pytest.raises(SettingsError, match="prompt token ids"):
        engine.validate(DecodeRequest("x", [5, 10_000], DecodeSettings()))
    with pytest.raises(SettingsError, match="empty"):
        engine.validate(DecodeRequest("x", [], DecodeSettings()))


class CharTokenizer:
    """One character per id: lets the text tests state exact expectations."""

    def decode(self, ids, **_):
        return "".join(chr(i) for i in ids if i >= 32)


def ids(text):
    return [ord(c) for c in text]


END = 1


def test_confirmed_text_cuts_at_the_first_end_token():
    a = TextAssembler(CharTokenizer(), [END], max_tokens=12)
    gen = ids("hello") + [END] + ids("junk!!")
    assert a.update(gen, confirmed=4) == "hell"
    assert a.update(gen, confirmed=8) == "o"
    assert a.done and a.finish_reason == "stop" and a.completion_ids == ids("hello")


def test_stop_strings_are_applied_before_text_is_confirmed():
    a = TextAssembler(CharTokenizer(), [END], max_tokens=16, stop=["STOP"])
    gen = ids("abc ST") + ids("OP and more")
    # "ST" could still become "STOP": it is held back
    assert a.update(gen, confirmed=6) == "abc "
    assert a.update(gen, confirmed=12) == ""
    assert a.text == "abc " and a.finish_reason == "stop"
    assert a.completion_ids == ids("abc ")


def test_held_back_tail_is_released_when_it_is_not_a_stop():
    a = TextAssembler(CharTokenizer(), [END], max_tokens=8, stop=["STOP"])
    gen = ids("abST") + ids("ne x")
    assert a.update(gen, confirmed=4) == "ab"
    assert a.update(gen, confirmed=8, final=True) == "STne x"
    assert a.finish_reason == "length"


def test_max_tokens_cuts_the_canvas():
    a = TextAssembler(CharTokenizer(), [END], max_tokens=5)
    assert a.update(ids("abcdefgh"), confirmed=8, final=True) == "abcde"
    assert a.finish_reason == "length"
    assert len(a.completion_ids) == 5


def test_concatenated_deltas_equal_the_final_text():
    a = TextAssembler(CharTokenizer(), [END], max_tokens=24, stop=["xyz"])
    gen = ids("one two thr xy ee xyz four")[:24]
    deltas = [a.update(gen, confirmed=c) for c in range(0, 25, 4)]
    assert deltas[3] == "thr "
    c = TextAssembler(CharTokenizer(), [END], max_tokens=24, stop=["xyz"])
    assert c.update(gen, confirmed=14) == "one two thr "  # "xy" waits: it could still become "xyz"
    b = TextAssembler(CharTokenizer(), [END], max_tokens=24, stop=["xyz"])
    b.update(gen, confirmed=24, final=True)
    assert "".join(deltas) == b.text == "one two thr xy ee "
