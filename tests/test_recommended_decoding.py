"""A checkpoint's recommended decoding (generation_config.json, key `evotoken`): read, written,
and applied by the server, `evotoken generate` and `evotoken eval` wherever the user set none."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from evotoken_core.cli import main
from evotoken_core.decoding import RecommendedDecoding, SettingsError
from evotoken_core.assets import default_model_path, pretrain_only_model_path

# Distinct from the reference (128 / 32 / 64) in every field: 16 tokens, block 4, 1 step a block.
SMALL = RecommendedDecoding(max_tokens=16, block_length=4, steps_ratio=0.25)


@pytest.fixture
def recommending_checkpoint(tiny_checkpoint, tmp_path):
    path = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, path)
    SMALL.write(path)
    return path


def test_the_defaults_are_the_reference_command():
    s = RecommendedDecoding().settings()
    assert (s.gen_length, s.block_length, s.steps) == (128, 32, 64)


def test_given_values_win_and_missing_ones_are_filled():
    s = SMALL.settings(temperature=0.5)
    assert (s.gen_length, s.block_length, s.steps, s.temperature) == (16, 4, 4, 0.5)
    s = SMALL.settings(block_length=8)  # canvas from max_tokens, steps from the ratio of block 8
    assert (s.gen_length, s.block_length, s.steps) == (16, 8, 4)
    s = RecommendedDecoding(max_tokens=50, block_length=8).settings()  # rounded up to whole blocks
    assert (s.gen_length, s.steps) == (56, 28)
    assert SMALL.settings(gen_length=8, block_length=8, steps=2).steps == 2
    with pytest.raises(SettingsError) as bad:
        SMALL.settings(block_length=0)
    assert bad.value.param == "block_length"


def test_write_keeps_the_other_keys_and_read_round_trips(tmp_path):
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": 1}))
    SMALL.write(tmp_path)
    data = json.loads((tmp_path / "generation_config.json").read_text())
    assert data["eos_token_id"] == 1
    assert data["evotoken"] == {"max_tokens": 16, "block_length": 4, "steps_ratio": 0.25}
    assert RecommendedDecoding.read(tmp_path) == SMALL


def test_a_checkpoint_without_one_gets_the_reference(tmp_path, tiny_checkpoint):
    assert RecommendedDecoding.read(tmp_path) == RecommendedDecoding()  # no file
    assert RecommendedDecoding.read(tiny_checkpoint) == RecommendedDecoding()  # file without the key


@pytest.mark.parametrize("entry,named", [
    ({"block_len": 4}, "block_len"),
    ({"block_length": 0}, "block_length"),
    ({"steps_ratio": 1.5}, "steps_ratio"),
    ({"max_tokens": "48"}, "max_tokens"),
    ([4], "evotoken"),
])
def test_a_bad_recommendation_is_a_clear_error(tmp_path, entry, named):
    (tmp_path / "generation_config.json").write_text(json.dumps({"evotoken": entry}))
    with pytest.raises(ValueError) as error:
        RecommendedDecoding.read(tmp_path)
    assert named in str(error.value) and "generation_config.json" in str(error.value)


def test_both_shipped_models_recommend_what_they_were_measured_with():
    from evotoken_core.training.ship import DEMO_DECODING

    assert DEMO_DECODING == RecommendedDecoding(max_tokens=48, block_length=4, steps_ratio=0.5)
    for path in (default_model_path(), pretrain_only_model_path()):
        assert RecommendedDecoding.read(path) == DEMO_DECODING


def test_generate_uses_the_recommendation_unless_flags_say_otherwise(recommending_checkpoint, capsys):
    common = ["generate", "--model", str(recommending_checkpoint), "--prompt", "hi", "--json", "--no-early-end"]
    assert main(common) == 0
    out = json.loads(capsys.readouterr().out)
    assert (len(out["generated_ids"]), out["steps"]) == (16, 4)
    assert main([*common, "--block-length", "8"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (len(out["generated_ids"]), out["steps"]) == (16, 4)  # 1/4 of two blocks of 8
    assert main([*common, "--gen-length", "8", "--block-length", "8", "--steps", "8"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (len(out["generated_ids"]), out["steps"]) == (8, 8)


def test_eval_uses_the_recommendation_unless_flags_say_otherwise(recommending_checkpoint, capsys):
    common = ["eval", "--model", str(recommending_checkpoint), "--task", "arith", "--limit", "2",
              "--json", "--no-progress", "--threads", "1"]
    assert main(common) == 0
    settings = json.loads(capsys.readouterr().out)["settings"]
    assert (settings["gen_length"], settings["block_length"], settings["steps"]) == (16, 4, 4)
    assert main([*common, "--gen-length", "8", "--block-length", "8"]) == 0
    settings = json.loads(capsys.readouterr().out)["settings"]
    assert (settings["gen_length"], settings["block_length"], settings["steps"]) == (8, 8, 2)


def test_eval_names_a_bad_recommendation(recommending_checkpoint, capsys):
    (recommending_checkpoint / "generation_config.json").write_text(json.dumps({"evotoken": {"block_length": -1}}))
    assert main(["eval", "--model", str(recommending_checkpoint), "--limit", "1", "--no-progress"]) == 2
    assert "block_length" in capsys.readouterr().err


# --- the server -----------------------------------------------------------------------------

def test_server_settings_take_the_recommendation_only_where_unset(monkeypatch):
    from server.settings import Settings

    for name in ("MAX_TOKENS", "BLOCK_LENGTH", "STEPS_RATIO"):
        monkeypatch.delenv(f"EVOTOKEN_{name}", raising=False)
    filled = Settings().with_recommended(SMALL)
    assert (filled.max_tokens, filled.block_length, filled.steps_ratio) == (16, 4, 0.25)
    kept = Settings(block_length=8).with_recommended(SMALL)
    assert (kept.max_tokens, kept.block_length, kept.steps_ratio) == (16, 8, 0.25)
    monkeypatch.setenv("EVOTOKEN_STEPS_RATIO", "1")
    assert Settings().with_recommended(SMALL).steps_ratio == 1.0


def test_server_advertises_and_serves_with_the_recommendation(recommending_checkpoint):
    from fastapi.testclient import TestClient

    from server import create_app
    from server.schemas import CompletionRequest
    from server.settings import Settings

    app = create_app(Settings(model=str(recommending_checkpoint), served_model_name="tiny"))
    assert app.state.model_cards[0].evotoken_defaults["block_length"] == 4  # before it loads
    with TestClient(app) as client:
        wait_ready(client, app)
        assert advertised(client) == [(16, 4, 4, 0.25)]
        served = app.state.serving.settings
        s = CompletionRequest(prompt="x").decode_settings(served, served.max_tokens)
        assert (s.gen_length, s.block_length, s.steps) == (16, 4, 4)
        response = client.post("/v1/completions", json={"model": "tiny", "prompt": "hi", "stream": True,
                                                         "stream_steps": True})
        assert response.status_code == 200, response.text
        steps = [line for line in response.text.splitlines() if '"step"' in line]
        assert 1 <= len(steps) <= 4  # one frame per refinement step: 4 steps over 4 blocks at most


def advertised(client) -> list[tuple]:
    keys = ("max_tokens", "block_length", "steps", "steps_ratio")
    return [tuple(card["evotoken_defaults"][k] for k in keys) for card in client.get("/v1/models").json()["data"]]


def wait_ready(client, app) -> None:
    deadline = time.monotonic() + 60
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline and app.state.startup_error is None, app.state.startup_error
        time.sleep(0.05)


def test_a_model_found_only_by_loading_is_advertised_once_loaded(recommending_checkpoint, monkeypatch):
    """A hub model that is not in the local cache is known only once startup has fetched it:
    until then the reference defaults are listed, then its recommendation, filled in from what
    the operator set (block 8 here)."""
    from fastapi.testclient import TestClient

    import server.app
    from server import create_app
    from server.settings import Settings

    monkeypatch.setattr(server.app, "local_model_dir", lambda settings: None)
    app = create_app(Settings(model=str(recommending_checkpoint), served_model_name="tiny", block_length=8))
    with TestClient(app) as client:
        wait_ready(client, app)
        assert advertised(client) == [(16, 8, 4, 0.25)]
        served = app.state.serving.settings
        assert (served.max_tokens, served.block_length, served.steps_ratio) == (16, 8, 0.25)


def test_the_adapter_entry_lists_the_same_defaults(recommending_checkpoint):
    from server import create_app
    from server.settings import Settings

    app = create_app(Settings(model=str(recommending_checkpoint), served_model_name="tiny", lora="org/adapter"))
    assert [card.evotoken_defaults["block_length"] for card in app.state.model_cards] == [4, 4]


def test_server_with_a_bad_recommendation_fails_startup_naming_it(recommending_checkpoint):
    from fastapi.testclient import TestClient

    from server import create_app
    from server.settings import Settings

    (recommending_checkpoint / "generation_config.json").write_text(json.dumps({"evotoken": {"steps_ratio": 0}}))
    app = create_app(Settings(model=str(recommending_checkpoint)))
    with TestClient(app) as client:
        deadline = time.monotonic() + 60
        while app.state.startup_error is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert "steps_ratio" in app.state.startup_error
        assert client.get("/ready").status_code == 503
