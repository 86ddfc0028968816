"""The LLaDA-format model: loading, architecture facts, soft inputs and LoRA."""

from __future__ import annotations

import json

import pytest
import torch

from evotoken_core.decoding import DecodeRequest, DecodeSettings
from evotoken_core.engine import Engine
from evotoken_core.model import LLaDAConfig, ModelNotFoundError, load_model
from evotoken_core.model.modeling import apply_rotary, rotary_tables
from evotoken_core.model.random_init import random_model


def test_sharded_checkpoint_loads_every_tensor(tiny_gqa_checkpoint):
    index = json.loads((tiny_gqa_checkpoint / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    loaded = load_model(tiny_gqa_checkpoint, dtype="float32", device="cpu")
    expected = random_model(loaded.config, seed=1).state_dict()
    got = loaded.model.state_dict()
    assert set(got) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name


def test_parameter_names_are_the_published_ones(tiny_checkpoint):
    names = set(load_model(tiny_checkpoint, device="cpu").model.state_dict())
    for expected in ["model.transformer.wte.weight", "model.transformer.ln_f.weight", "model.transformer.ff_out.weight",
                     "model.transformer.blocks.0.attn_norm.weight", "model.transformer.blocks.0.q_proj.weight",
                     "model.transformer.blocks.0.k_proj.weight", "model.transformer.blocks.0.v_proj.weight",
                     "model.transformer.blocks.0.attn_out.weight", "model.transformer.blocks.0.ff_norm.weight",
                     "model.transformer.blocks.0.ff_proj.weight", "model.transformer.blocks.0.up_proj.weight",
                     "model.transformer.blocks.0.ff_out.weight"]:
        assert expected in names


@pytest.fixture(scope="module")
def f64(tiny_checkpoint):
    return load_model(tiny_checkpoint, dtype="float64", device="cpu")


def test_attention_is_bidirectional(f64):
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    changed = ids.clone()
    changed[0, -1] = 10
    first = f64.model(input_ids=ids).logits[0, 0]
    assert not torch.allclose(first, f64.model(input_ids=changed).logits[0, 0])


def test_padding_does_not_leak_into_a_row(f64):
    m = f64.model
    short = torch.tensor([[11, 12, 13]])
    alone = m.hidden(m.embed(short))
    padded = torch.tensor([[3, 3, 11, 12, 13], [20, 21, 22, 23, 24]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    positions = torch.tensor([[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]])
    batched = m.hidden(m.embed(padded), mask, positions)
    torch.testing.assert_close(batched[0, 2:], alone[0], rtol=0, atol=1e-12)


def test_rotary_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16, dtype=torch.float64), torch.randn(1, 1, 1, 16, dtype=torch.float64)

    def score(m, n):
        cq, sq = rotary_tables(torch.tensor([[m]]), 16, 10000.0, torch.float64)
        ck, sk = rotary_tables(torch.tensor([[n]]), 16, 10000.0, torch.float64)
        return (apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum()

    assert torch.isclose(score(3, 7), score(10, 14))
    assert not torch.isclose(score(3, 7), score(3, 9))


def test_rotary_uses_halves_not_interleaved_pairs():
    x = torch.zeros(1, 1, 1, 4, dtype=torch.float64)
    x[..., 0] = 1.0  # first element of the first half pairs with the first of the second half
    cos, sin = rotary_tables(torch.tensor([[1]]), 4, 10000.0, torch.float64)
    out = apply_rotary(x, cos, sin)[0, 0, 0]
    assert out[2] == pytest.approx(torch.sin(torch.tensor(1.0, dtype=torch.float64)).item())
    assert out[1] == 0 and out[3] == 0


def test_soft_input_with_one_hot_weights_equals_token_input(f64):
    ids = torch.tensor([[5, 6, 7, 8]])
    cand = torch.stack([ids, torch.full_like(ids, 40), torch.full_like(ids, 41)], -1)
    weights = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).expand(1, 4, 3)
    assert torch.equal(f64.model(input_ids=ids).logits, f64.model(soft_ids=cand, soft_weights=weights).logits)


def test_soft_input_mixes_embeddings(f64):
    E = f64.model.transformer.wte.weight
    cand = torch.tensor([[[5, 9], [6, 10]]])
    weights = torch.tensor([[[0.25, 0.75], [0.5, 0.5]]], dtype=torch.float64)
    mixed = (weights[..., None] * E[cand]).sum(-2)
    torch.testing.assert_close(f64.model(soft_ids=cand, soft_weights=weights).logits,
                               f64.model(inputs_embeds=mixed).logits)


def test_rms_norm_runs_in_float32_for_bfloat16(tiny_checkpoint):
    bf = load_model(tiny_checkpoint, dtype="bfloat16", device="cpu").model
    norm = bf.transformer.blocks[0].attn_norm
    x = torch.randn(2, 3, bf.config.d_model).to(torch.bfloat16) * 100
    ref = (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + norm.eps)).to(torch.bfloat16)
    assert torch.equal(norm(x), norm.weight * ref)


def test_unsupported_architecture_is_refused():
    with pytest.raises(ValueError, match="block_type"):
        LLaDAConfig(block_type="sequential", d_model=8, n_heads=2, n_layers=1, vocab_size=10,
                    embedding_size=10, mask_token_id=3).validate_supported()


def test_unknown_model_path_gives_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does-not-exist"):
        load_model(tmp_path / "does-not-exist")


def test_uncached_hub_id_offline_names_the_id(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="GSAI-ML/LLaDA-8B-Instruct"):
        load_model("GSAI-ML/LLaDA-8B-Instruct")


@pytest.fixture(scope="module")
def lora_dir(tiny_checkpoint, tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    base = load_model(tiny_checkpoint, dtype="float64", device="cpu").model
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"], task_type="CAUSAL_LM")
    peft_model = get_peft_model(base, config)
    torch.manual_seed(0)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)  # a fresh adapter is a no-op; make it change things
    out = tmp_path_factory.mktemp("lora")
    peft_model.save_pretrained(out)
    keys = json.loads((out / "adapter_config.json").read_text())["target_modules"]
    assert set(keys) == {"q_proj", "k_proj", "v_proj"}
    return out


def _decode(loaded):
    settings = DecodeSettings(gen_length=16, block_length=8, steps=8, early_end=False)
    recs = [r for r in Engine(loaded).stream([DecodeRequest("x", [5, 17, 42], settings)]) if r.finished]
    return recs[0].gen_ids.tolist()


def test_lora_changes_the_output_and_merged_equals_unmerged(tiny_checkpoint, lora_dir, f64):
    unmerged = load_model(tiny_checkpoint, dtype="float64", device="cpu", lora=lora_dir)
    merged = load_model(tiny_checkpoint, dtype="float64", device="cpu", lora=lora_dir, merge_lora=True)
    assert any("lora_A" in n for n, _ in unmerged.model.named_parameters())
    assert not any("lora_A" in n for n, _ in merged.model.named_parameters())
    ids = torch.tensor([[5, 17, 42, 3, 3, 3]])
    base_logits = f64.model(input_ids=ids).logits
    lora_logits = unmerged.model(input_ids=ids).logits
    assert not torch.allclose(base_logits, lora_logits)
    torch.testing.assert_close(merged.model(input_ids=ids).logits, lora_logits, rtol=1e-9, atol=1e-9)
    assert _decode(merged) == _decode(unmerged)
    assert _decode(unmerged) != _decode(f64)
