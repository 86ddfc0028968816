"""`init_adapter`: CTS can continue an existing LoRA adapter of its base (the shipped model's
`adapter/`, say) with a fresh optimizer, instead of starting a new one. The run starts from
exactly the adapted model, keeps the adapter's own shape, and trains it further."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from evotoken_core.model import load_model
from evotoken_core.training.config import CTSConfig
from evotoken_core.training.cts_train import load_cts_start, run_cts
from evotoken_core.training.lora import inner_model
from evotoken_core.training.source import fixed_source
from tests.test_cts_lora import base, trained  # noqa: F401 (fixtures)
from tests.test_training import EXAMPLES


def ids_with_masks(vocab: int, mask_id: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (2, 36), generator=g)
    ids[:, 18:] = mask_id
    return ids


def continued_config(base_dir: Path, adapter: Path, out: Path) -> CTSConfig:
    # lora_* deliberately unlike the adapter's (r 8, alpha 16, q_proj/v_proj): the adapter's own apply
    return CTSConfig(base=str(base_dir), out=str(out), init_adapter=str(adapter), steps=2, batch_size=4,
                     answer_length=32, block_lengths="8,16", unmask_counts="1,2", warmup_steps=1, lr=2e-2,
                     threads=1, bf16=False, lora_r=4, lora_alpha=4, lora_targets="k_proj",
                     diagnostics_every=0)


def test_the_run_starts_from_exactly_the_adapted_model(trained, base, tiny_tokenizer, tmp_path):
    model, _, state = load_cts_start(continued_config(base, trained / "adapter", tmp_path / "run"))
    assert state is None  # a new run: fresh optimizer and schedule
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {m for n in trainable for m in ("q_proj", "k_proj", "v_proj") if f".{m}." in n} == {"q_proj", "v_proj"}
    adapted = load_model(base, dtype="float32", device="cpu", lora=trained / "adapter").model
    ids = ids_with_masks(len(tiny_tokenizer), tiny_tokenizer.mask_token_id)
    net = inner_model(model).eval()
    with torch.no_grad():
        torch.testing.assert_close(net(input_ids=ids).logits, adapted(input_ids=ids).logits)


def test_a_continued_run_trains_the_adapter_further_in_its_own_shape(trained, base, tiny_tokenizer, tmp_path):
    cfg = continued_config(base, trained / "adapter", tmp_path / "run")
    run_cts(cfg, fixed_source(EXAMPLES, tiny_tokenizer, cfg), show_progress=False)
    out = Path(cfg.out)
    written = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert (written["r"], written["lora_alpha"]) == (8, 16)
    assert sorted(written["target_modules"]) == ["q_proj", "v_proj"]
    ids = ids_with_masks(len(tiny_tokenizer), tiny_tokenizer.mask_token_id)
    before = load_model(base, dtype="float32", device="cpu", lora=trained / "adapter").model
    after = load_model(base, dtype="float32", device="cpu", lora=out / "adapter").model
    merged = load_model(out, dtype="float32", device="cpu").model
    with torch.no_grad():
        a, b, m = before(input_ids=ids).logits, after(input_ids=ids).logits, merged(input_ids=ids).logits
    assert (a - b).abs().max() > 1e-3  # trained further
    torch.testing.assert_close(m, b, rtol=1e-5, atol=1e-5)  # and the merged model is that adapter


def test_init_adapter_refuses_a_full_tune_and_a_directory_without_an_adapter(base, tmp_path):
    with pytest.raises(ValueError, match="cannot go with full"):
        CTSConfig(base=str(base), init_adapter=str(tmp_path), full=True)
    with pytest.raises(ValueError, match="no adapter_config.json"):
        CTSConfig(base=str(base), init_adapter=str(tmp_path))
