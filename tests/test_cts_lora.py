"""CTS trains a LoRA by default (the published r 128 / alpha 256 / dropout 0.05 on q_proj,
k_proj, v_proj) and writes both a merged model and the adapter; loaded through the project's
loader, with and without `lora=`, they are the same model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from evotoken_core.decoding import DecodeRequest, DecodeSettings, RecommendedDecoding
from evotoken_core.engine import Engine
from evotoken_core.model import load_model
from evotoken_core.training.config import CTSConfig
from evotoken_core.training.cts_train import run_cts
from evotoken_core.training.source import fixed_source
from tests.test_training import EXAMPLES


def test_lora_is_the_default_with_the_published_settings():
    cfg = CTSConfig(base="m")
    assert not cfg.full
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets) == (128, 256, 0.05, "q_proj,k_proj,v_proj")
    assert cfg.block_prefix_share == 0.0


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_checkpoint):
    """The tiny checkpoint with a decoding recommendation, as the shipped models have."""
    import shutil

    path = tmp_path_factory.mktemp("cts_lora_base") / "base"
    shutil.copytree(tiny_checkpoint, path)
    RecommendedDecoding(max_tokens=16, block_length=8, steps_ratio=0.5).write(path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, base, tiny_tokenizer):
    out = tmp_path_factory.mktemp("cts_lora") / "run"
    cfg = CTSConfig(base=str(base), out=str(out), steps=3, batch_size=4, answer_length=32,
                    block_lengths="8,16", unmask_counts="1,2", warmup_steps=1, lr=2e-2, threads=1, bf16=False,
                    lora_r=8, lora_alpha=16, lora_dropout=0.1, lora_targets="q_proj,v_proj", diagnostics_every=0)
    run_cts(cfg, fixed_source(EXAMPLES, tiny_tokenizer, cfg), show_progress=False)
    return Path(cfg.out)


def test_the_adapter_records_the_flags(trained):
    config = json.loads((trained / "adapter" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["lora_dropout"]) == (8, 16, 0.1)
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    assert config["task_type"] == "CAUSAL_LM"


def test_merged_model_and_adapter_give_the_same_logits_in_float64(trained, base, tiny_tokenizer):
    merged = load_model(trained, dtype="float64", device="cpu").model
    adapted = load_model(base, dtype="float64", device="cpu", lora=trained / "adapter").model
    plain = load_model(base, dtype="float64", device="cpu").model
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, len(tiny_tokenizer), (3, 40), generator=g)
    ids[:, 20:] = tiny_tokenizer.mask_token_id
    with torch.no_grad():
        a, b, c = merged(input_ids=ids).logits, adapted(input_ids=ids).logits, plain(input_ids=ids).logits
    # the merged weights are stored in float32: agreement to float32 rounding
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert (a - c).abs().max() > 1e-2  # and the adapter did change the model


@pytest.mark.parametrize("decoding", ["hard_mask", "evotoken"])
def test_merged_model_and_adapter_decode_the_same_tokens(trained, base, tiny_tokenizer, decoding):
    settings = DecodeSettings(gen_length=16, block_length=8, steps=8, temperature=0.0, decoding=decoding,
                              early_end=False)
    prompt = tiny_tokenizer("What is 12 + 30?", add_special_tokens=False)["input_ids"]

    def decode(loaded):
        engine = Engine(loaded, max_batch_size=1)
        final = [r for r in engine.stream([DecodeRequest("x", prompt, settings)]) if r.finished][-1]
        return final.gen_ids.tolist()

    merged = decode(load_model(trained, dtype="float64", device="cpu"))
    adapted = decode(load_model(base, dtype="float64", device="cpu", lora=trained / "adapter"))
    assert merged == adapted and len(merged) == 16


def test_the_tuned_model_recommends_the_decoding_of_its_base(trained, base):
    assert RecommendedDecoding.read(trained) == RecommendedDecoding.read(base)
    assert RecommendedDecoding.read(trained).block_length == 8


def test_shipping_packs_the_adapter_for_the_pretrain_only_model_beside_it(trained, base, tmp_path, tiny_tokenizer):
    from safetensors.torch import load_file

    from evotoken_core.training.ship import ship

    dest = tmp_path / "default_model"
    report = ship(base, trained, dest)
    stored = load_file(str(dest / "adapter" / "adapter_model.safetensors"))
    assert stored and all(t.dtype == torch.float16 for t in stored.values())
    config = json.loads((dest / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(dest / "pretrain_only") and config["r"] == 8
    adapted = load_model(dest / "pretrain_only", device="cpu", lora=dest / "adapter").model
    default = load_model(dest, device="cpu").model
    plain = load_model(dest / "pretrain_only", device="cpu").model
    ids = torch.randint(0, len(tiny_tokenizer), (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b, c = adapted(input_ids=ids).logits, default(input_ids=ids).logits, plain(input_ids=ids).logits
    # both stored in float16, rounded apart: close to each other, far from the base
    assert (a - b).abs().max() < 0.05 and report["adapter"]["max_logit_diff"] < 0.05
    assert (b - c).abs().max() > 20 * (a - b).abs().max()


def test_shipping_the_pretrain_only_model_as_default_ships_cts_as_its_adapter(trained, base, tmp_path, tiny_tokenizer):
    from evotoken_core.training.ship import ship

    dest = tmp_path / "default_model"
    (dest / "pretrain_only").mkdir(parents=True)  # left over from a CTS-default pack: removed
    report = ship(base, trained, dest, default="pretrain")
    assert not (dest / "pretrain_only").exists() and report["adapter"]["base"] == str(dest)
    plain = load_model(dest, device="cpu").model
    adapted = load_model(dest, device="cpu", lora=dest / "adapter").model
    merged = load_model(trained, device="cpu").model
    ids = torch.randint(0, len(tiny_tokenizer), (2, 40), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, m, p = adapted(input_ids=ids).logits, merged(input_ids=ids).logits, plain(input_ids=ids).logits
    assert (a - m).abs().max() < 0.05 and (p - m).abs().max() > 20 * (a - m).abs().max()
    with pytest.raises(ValueError, match="default must be"):
        ship(base, trained, dest, default="lora")
