"""`DecodeSettings.resolve`: the one owner of decoding defaults, ranges and derived values."""

from __future__ import annotations

import pytest

from evotoken_core.decoding import DecodeSettings, RecommendedDecoding, SettingsError
from evotoken_core.decoding import settings as settings_module


class ServerDefaults:
    """Any object with some of the fields works as defaults (the server passes its settings)."""

    max_tokens = 13
    block_length = 8
    steps_ratio = 0.25
    temperature = 0.3
    threshold = 0.8


@pytest.fixture
def checks(monkeypatch) -> list:
    """Every call of the rules, as (fields checked or None for all of them)."""
    calls = []
    real = settings_module._check

    def counting(values, changed=None, **asked):
        calls.append(None if changed is None else sorted(changed))
        return real(values, changed, **asked)

    monkeypatch.setattr(settings_module, "_check", counting)
    return calls


def test_set_values_win_then_the_defaults_then_the_reference():
    s = DecodeSettings.resolve({"k_soft": 5}, ServerDefaults())
    assert (s.gen_length, s.block_length, s.steps) == (16, 8, 4)  # 13 rounded up to 2 blocks, 2 steps each
    assert (s.k_soft, s.temperature, s.threshold, s.alpha_soft_mask) == (5, 0.3, 0.8, 0.7)
    s = DecodeSettings.resolve()
    assert (s.gen_length, s.block_length, s.steps, s.k_soft) == (128, 32, 64, 3)


def test_none_means_unset_except_where_none_is_a_value():
    s = DecodeSettings.resolve({"temperature": None, "threshold": None, "seed": None}, ServerDefaults())
    assert (s.temperature, s.threshold, s.seed) == (0.3, None, None)


def test_steps_are_the_ratio_of_each_block_rounded_down_and_at_least_one():
    assert DecodeSettings.resolve({"max_tokens": 12, "block_length": 6}, RecommendedDecoding(steps_ratio=0.34)).steps == 4
    assert DecodeSettings.resolve({"max_tokens": 8, "block_length": 2}, RecommendedDecoding(steps_ratio=0.1)).steps == 4
    assert DecodeSettings.resolve({"gen_length": 8, "block_length": 8, "steps": 2}).steps == 2


@pytest.mark.parametrize("overrides, param", [
    ({"max_tokens": 0}, "max_tokens"),
    ({"block_length": 0}, "block_length"),
    ({"gen_length": 30, "block_length": 32}, "block_length"),
    ({"max_tokens": 16, "block_length": 8, "steps": 3}, "steps"),
    ({"alpha_soft_mask": 1}, "alpha_soft_mask"),
    ({"alpha_soft_mask": True}, "alpha_soft_mask"),
    ({"temperature": float("inf")}, "temperature"),
    ({"cache": "paged"}, "cache"),
])
def test_a_bad_value_is_named(overrides, param):
    with pytest.raises(SettingsError) as error:
        DecodeSettings.resolve(overrides)
    assert error.value.param == param


def test_bad_defaults_are_named_too():
    class Bad(ServerDefaults):
        steps_ratio = 0

    with pytest.raises(SettingsError) as error:
        DecodeSettings.resolve(defaults=Bad())
    assert error.value.param == "steps_ratio"


def test_min_tokens_may_not_pass_the_asked_length_and_ignore_eos_decodes_everything():
    s = DecodeSettings.resolve({"max_tokens": 10, "block_length": 4, "min_tokens": 10, "ignore_eos": True})
    assert (s.gen_length, s.min_tokens, s.ignore_eos, s.early_end) == (12, 10, True, False)
    with pytest.raises(SettingsError) as error:  # the canvas has 12, but 10 were asked for
        DecodeSettings.resolve({"max_tokens": 10, "block_length": 4, "min_tokens": 11})
    assert error.value.param == "min_tokens"
    with pytest.raises(SettingsError) as error:
        DecodeSettings(gen_length=32, steps=16, min_tokens=33)
    assert error.value.param == "min_tokens"
    with pytest.raises(SettingsError) as error:
        DecodeSettings.resolve({"ignore_eos": True, "early_end": True})
    assert error.value.param == "early_end"


def test_an_unknown_setting_is_a_type_error():
    with pytest.raises(TypeError):
        DecodeSettings.resolve({"k_sfot": 3})
    with pytest.raises(TypeError):
        DecodeSettings().with_(k_sfot=3)


def test_resolving_checks_the_rules_once(checks):
    DecodeSettings.resolve({"max_tokens": 50, "k_soft": 4}, ServerDefaults())
    assert checks == [None]


def test_a_changed_copy_checks_only_what_changed(checks):
    s = DecodeSettings(gen_length=16, block_length=8, steps=8)
    checks.clear()
    assert s.with_(seed=5).seed == 5 and s.with_(seed=5).steps == 8
    assert checks == [["seed"], ["seed"]]
    with pytest.raises(SettingsError) as error:
        s.with_(seed=-1)
    assert error.value.param == "seed"
    with pytest.raises(SettingsError) as error:
        s.with_(block_length=3)  # a canvas change re-checks how the canvas fits together
    assert error.value.param == "block_length"


def test_a_request_is_checked_once_on_its_way_in(checks):
    from server.schemas import ChatCompletionRequest
    from server.settings import Settings

    defaults = Settings(block_length=8, max_tokens=16)
    checks.clear()
    body = ChatCompletionRequest(messages=[{"role": "user", "content": "hi"}], max_completion_tokens=12,
                                 alpha_soft_mask=0.5, seed=3)
    s = body.decode_settings(defaults, body.requested_max_tokens(defaults.max_tokens))
    assert (s.gen_length, s.alpha_soft_mask, s.seed) == (16, 0.5, 3)
    assert checks == [None]


def test_a_request_error_names_the_field_the_client_sent():
    from server.errors import APIError
    from server.schemas import ChatCompletionRequest
    from server.settings import Settings

    body = ChatCompletionRequest(messages=[{"role": "user", "content": "hi"}], max_completion_tokens=10,
                                 block_length=4, steps=5)
    with pytest.raises(APIError) as error:
        body.decode_settings(Settings(), 10)
    assert error.value.body.error.param == "steps"
