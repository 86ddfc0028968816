"""`evotoken serve` settings: flags and EVOTOKEN_* variables come from the same fields."""

from __future__ import annotations

import argparse

import pytest
from pydantic import ValidationError

from server import ModelSettings, ServerSettings, Settings, add_serve_parser, run_serve
from server.auth import key_matches
from server.schemas import CompletionRequest


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="evotoken")
    add_serve_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["serve", *argv])


def settings_of(*argv: str) -> Settings:
    from server.cli import settings_from_args

    return settings_from_args(parse(*argv))


def test_every_setting_is_described_and_has_a_flag():
    serve = argparse.ArgumentParser()
    sub = serve.add_subparsers()
    parser = add_serve_parser(sub)
    flags = {a.dest: a.option_strings for a in parser._actions if a.dest != "help"}
    assert set(Settings.model_fields) == set(ServerSettings.model_fields) | set(ModelSettings.model_fields)
    for name, field in Settings.model_fields.items():
        assert field.description, name
        assert "--" + name.replace("_", "-") in flags[name]
    for required in ("host", "port", "model", "lora", "merge_lora", "device", "dtype", "served_model_name",
                     "api_key", "api_key_file", "max_batch_size", "max_queue", "request_timeout", "max_tokens",
                     "steps_ratio", "block_length", "k_soft", "alpha_soft_mask", "temperature", "decoding",
                     "remasking", "threshold", "cors_origin", "log_level", "open_probes", "max_body_bytes",
                     "trust_remote_code"):
        assert required in flags, required


def test_flags_parse_to_settings():
    s = settings_of("--port", "9001", "--api-key", "a", "--api-key", "b", "--no-open-probes",
                    "--decoding", "hard_mask", "--threshold", "0.9", "--cors-origin", "https://x.example",
                    "--max-batch-size", "4", "--model", "/models/m")
    assert (s.port, s.api_key, s.open_probes, s.decoding, s.threshold) == (9001, ["a", "b"], False, "hard_mask", 0.9)
    assert (s.cors_origin, s.max_batch_size, s.model, s.host) == (["https://x.example"], 4, "/models/m", "127.0.0.1")


def test_environment_fills_in_and_flags_win(monkeypatch):
    monkeypatch.setenv("EVOTOKEN_PORT", "9100")
    monkeypatch.setenv("EVOTOKEN_API_KEY", "k1,k2")
    monkeypatch.setenv("EVOTOKEN_OPEN_PROBES", "false")
    monkeypatch.setenv("EVOTOKEN_ALPHA_SOFT_MASK", "0.5")
    s = settings_of("--port", "9200")
    assert (s.port, s.api_key, s.open_probes, s.alpha_soft_mask) == (9200, ["k1", "k2"], False, 0.5)


def test_bad_values_are_rejected_at_startup():
    with pytest.raises(ValidationError):
        Settings(alpha_soft_mask=1.0)
    with pytest.raises(ValidationError):
        Settings(port=70000)
    with pytest.raises(SystemExit):
        parse("--dtype", "int8")


def test_key_file_adds_keys(tmp_path):
    f = tmp_path / "keys"
    f.write_text("# comment\nsk-1\n\n  sk-2  \n")
    assert Settings(api_key=["sk-0"], api_key_file=f).api_keys() == ["sk-0", "sk-1", "sk-2"]


def test_keys_match_only_exactly():
    keys = [b"sk-alpha", b"sk-beta"]
    assert key_matches("sk-beta", keys) and not key_matches("sk-bet", keys) and not key_matches("", keys)


def test_missing_model_path_is_a_clear_startup_error(capsys):
    assert run_serve(parse("--model", "/definitely/not/here")) == 2
    assert "/definitely/not/here" in capsys.readouterr().err


def test_request_settings_round_the_canvas_to_whole_blocks():
    defaults = Settings(block_length=8, steps_ratio=0.5, temperature=0.3)
    s = CompletionRequest(prompt="x").decode_settings(defaults, max_tokens=13)
    assert (s.gen_length, s.block_length, s.steps, s.temperature) == (16, 8, 8, 0.3)
    s = CompletionRequest(prompt="x", steps=4, block_length=4, temperature=0, threshold=None).decode_settings(
        Settings(threshold=0.8), max_tokens=16)
    assert (s.gen_length, s.steps, s.temperature, s.threshold) == (16, 4, 0, None)
    assert CompletionRequest(prompt="x").decode_settings(Settings(threshold=0.8), 8).threshold == 0.8


def test_the_cache_policies_are_server_defaults_a_request_overrides():
    server = Settings(cache="dual", cache_refresh=4, cache_guard=0.5, threshold=0.9, threshold_stable=True)
    s = CompletionRequest(prompt="x").decode_settings(server, 8)
    assert (s.cache, s.cache_refresh, s.cache_guard, s.threshold_stable) == ("dual", 4, 0.5, True)
    own = CompletionRequest(prompt="x", cache="none", cache_guard=0, threshold_stable=False).decode_settings(server, 8)
    assert (own.cache, own.cache_guard, own.threshold_stable) == ("none", 0, False)


def test_models_list_names_the_lora_adapter_with_its_base(tiny_checkpoint):
    from server import create_app

    app = create_app(Settings(model=str(tiny_checkpoint), served_model_name="tiny", lora="org/adapter"))
    cards = [c.model_dump() for c in app.state.model_cards]
    assert [(c["id"], c["parent"]) for c in cards] == [("tiny", None), ("org/adapter", "tiny")]
    assert app.state.model_ids == ["tiny", "org/adapter"]


def test_serving_docs_list_every_setting():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "serving.md").read_text()
    for name in Settings.model_fields:
        flag, env = "--" + name.replace("_", "-"), "EVOTOKEN_" + name.upper()
        assert f"`{flag}`" in doc or f"`{flag} /" in doc, flag
        assert env in doc, env


def test_an_app_that_has_not_loaded_answers_503_not_500(tiny_checkpoint):
    import asyncio

    import httpx

    from server import create_app

    app = create_app(Settings(model=str(tiny_checkpoint), served_model_name="tiny"))  # lifespan not run

    async def ask():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return (await c.post("/v1/completions", json={"prompt": "x"}), await c.get("/ready"),
                    await c.get("/v1/models"))

    completion, ready, models = asyncio.run(ask())
    assert completion.status_code == 503 and completion.json()["error"]["code"] == "service_unavailable"
    assert ready.status_code == 503 and models.status_code == 200
