"""The model and decoding flags are declared once: `evotoken generate`, `eval` and `bench`
accept the same ones, and a flag means the same settings in each."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.bench import add_bench_parser
from evotoken_core.commands.generate import add_generate_parser
from evotoken_core.decoding import DecodeSettings, RecommendedDecoding, SettingsError
from evotoken_core.decoding.settings import KNOBS
from evotoken_core.eval.cli import add_eval_parser, base_settings
from evotoken_core.flags import MODEL_KNOBS, decoding_settings, model_or_embedded, request_extras

SMALL = RecommendedDecoding(max_tokens=16, block_length=4, steps_ratio=0.25)


def parsers() -> dict[str, argparse.ArgumentParser]:
    sub = argparse.ArgumentParser().add_subparsers()
    return {"generate": add_generate_parser(sub), "eval": add_eval_parser(sub), "bench": add_bench_parser(sub)}


def shared_flags(parser: argparse.ArgumentParser) -> dict[str, tuple]:
    """Every model and decoding flag: its spelling, choices and action kind."""
    names = set(KNOBS) | set(MODEL_KNOBS)
    return {flag: (a.dest, tuple(a.choices or ()), type(a).__name__)
            for a in parser._actions if a.dest in names for flag in a.option_strings}


def settings_of(command: str, argv: list[str]) -> DecodeSettings:
    args = parsers()[command].parse_args(argv)
    return base_settings(args, SMALL) if command == "eval" else decoding_settings(args, SMALL)


def test_the_three_commands_accept_the_same_model_and_decoding_flags():
    flags = {name: shared_flags(p) for name, p in parsers().items()}
    assert flags["generate"] == flags["bench"]
    # eval sweeps --alpha-soft-mask and --decoding over comma lists: same flags, its own parser
    assert set(flags["eval"]) == set(flags["generate"])
    for flag in ("--cache", "--no-early-end", "--dtype", "--threads", "--seed", "--threshold", "--model", "--lora",
                 "--merge-lora", "--device", "--gen-length", "--block-length", "--steps", "--k-soft"):
        assert flag in flags["generate"], flag
    assert flags["eval"]["--dtype"] == flags["generate"]["--dtype"]
    assert flags["eval"]["--dtype"][1] == ("float32", "bfloat16", "float16", "float64")
    assert flags["eval"]["--cache"] == flags["generate"]["--cache"]


def test_every_knob_that_declares_a_flag_has_one():
    flags = shared_flags(parsers()["generate"])
    for name, (default, declared) in KNOBS.items():
        spelled = "--" + name.replace("_", "-")
        if declared.flag:
            assert spelled in flags or "--no-" + spelled[2:] in flags, name


@pytest.mark.parametrize("argv", [
    [],
    ["--k-soft", "5"],
    ["--alpha-soft-mask", "0.5"],
    ["--decoding", "hard_mask"],
    ["--cache", "dual"],
    ["--no-early-end"],
    ["--min-tokens", "3"],
    ["--threshold", "0.9", "--remasking", "random", "--temperature", "0.5"],
    ["--block-length", "8"],
    ["--gen-length", "24", "--block-length", "8", "--steps", "6"],
])
def test_a_flag_parses_to_the_same_settings_in_every_command(argv):
    argv = [*argv, "--seed", "7"]  # eval seeds a sweep with 0 by default, the others leave it random
    got = {command: settings_of(command, argv) for command in ("generate", "eval", "bench")}
    assert got["generate"] == got["eval"] == got["bench"]
    assert got["generate"].seed == 7


def test_unset_flags_take_the_recommendation_and_set_ones_win():
    s = settings_of("generate", [])
    assert (s.gen_length, s.block_length, s.steps, s.early_end, s.cache) == (16, 4, 4, True, "none")
    s = settings_of("bench", ["--no-early-end", "--cache", "prefix", "--block-length", "8"])
    assert (s.gen_length, s.block_length, s.steps, s.early_end, s.cache) == (16, 8, 4, False, "prefix")


def test_eval_sweeps_take_lists_and_the_base_settings_use_the_first_value():
    args = parsers()["eval"].parse_args(["--alpha-soft-mask", "0.5,0.9", "--decoding", "hard_mask,evotoken"])
    assert (args.alpha_soft_mask, args.decoding, args.seed) == ([0.5, 0.9], ["hard_mask", "evotoken"], 0)
    s = base_settings(args, SMALL)
    assert (s.alpha_soft_mask, s.decoding, s.seed) == (0.5, "hard_mask", 0)


@pytest.mark.parametrize("command", ["generate", "eval", "bench"])
@pytest.mark.parametrize("argv", [["--dtype", "int8"], ["--cache", "paged"], ["--decoding", "ar"],
                                  ["--k-soft", "three"]])
def test_a_malformed_flag_is_refused_by_every_command(command, argv, capsys):
    with pytest.raises(SystemExit):
        parsers()[command].parse_args(argv)


@pytest.mark.parametrize("command", ["generate", "eval", "bench"])
def test_an_out_of_range_flag_names_its_parameter_in_every_command(command):
    with pytest.raises(SettingsError) as error:
        settings_of(command, ["--alpha-soft-mask", "1"])
    assert error.value.param == "alpha_soft_mask"


def test_the_embedded_model_is_used_when_none_is_named():
    from evotoken_core.assets import default_model_path

    assert model_or_embedded(None) == str(default_model_path())
    assert model_or_embedded("org/model") == "org/model"


def test_request_extras_leave_features_that_are_off_out():
    extras = request_extras(DecodeSettings(gen_length=16, block_length=8, steps=8))
    assert extras == {"block_length": 8, "steps": 8, "k_soft": 3, "alpha_soft_mask": 0.7,
                      "remasking": "low_confidence", "decoding": "evotoken"}
    extras = request_extras(DecodeSettings(threshold=0.9, cache="dual"))
    assert (extras["threshold"], extras["cache"]) == (0.9, "dual")
