"""CTS diagnostics on tiny real models: self-copy, kept-position CE and its trend, the extra
loss of later unrolled steps; the stop rule; and the trainer measuring, printing, saving and
stopping on them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from evotoken_core.model.config import LLaDAConfig
from evotoken_core.model.modeling import LLaDAModelLM
from evotoken_core.training.config import CTSConfig
from evotoken_core.training.cts import initial_canvas
from evotoken_core.training.cts_train import run_cts
from evotoken_core.training.diagnostics import DiagnosticSet, diagnostic_set, measure, self_copy_rate
from evotoken_core.training.encoding import collate
from evotoken_core.training.stop_rule import StopRule
from tests.synthetic_rows import IDS, answer_pairs

VOCAB = 128  # synthetic rows use ids 2..~70 and the mask id 99


def tiny_model(seed: int = 0) -> LLaDAModelLM:
    torch.manual_seed(seed)
    config = LLaDAConfig(d_model=32, n_heads=2, n_kv_heads=2, n_layers=2, mlp_hidden_size=64, vocab_size=VOCAB,
                         embedding_size=VOCAB, mask_token_id=IDS.mask, eos_token_id=IDS.end_of_text,
                         pad_token_id=IDS.end_of_text, rope_theta=10000.0, max_sequence_length=256, init_std=0.2)
    return LLaDAModelLM(config).eval()


def copying_model(shift: int = 0) -> LLaDAModelLM:
    """A model that gives back its input: every block writes nothing to the residual stream,
    the embeddings have equal norms, and the output head is the embedding (rolled by `shift`
    rows, so with shift 1 it always answers the next id and never the input)."""
    model = tiny_model()
    net = model.model.transformer
    with torch.no_grad():
        for block in net.blocks:
            block.attn_out.weight.zero_()
            block.ff_out.weight.zero_()
        net.wte.weight.copy_(F.normalize(net.wte.weight, dim=-1) * 3.0)
        net.ff_out.weight.copy_(net.wte.weight.roll(shift, dims=0))
    return model


def rows(n: int = 12, seed: int = 0):
    return collate(answer_pairs(n, (3, 7), (8, 20), seed=seed), IDS, answer_length=24, pad_weight=0.1)


def dset(batch=None) -> DiagnosticSet:
    config = CTSConfig(base="unused", answer_length=24, block_lengths="8,16", unmask_counts="1,2")
    return diagnostic_set(batch if batch is not None else rows(), config)


def test_a_model_whose_head_is_its_embedding_copies_every_token():
    d = dset()
    assert self_copy_rate(copying_model(), d.batch) == 1.0
    assert self_copy_rate(copying_model(shift=1), d.batch) == 0.0
    values = measure(copying_model(), d, IDS.mask, unroll_steps=4, k_soft=3)
    assert values["self_copy"] == 1.0
    # the kept positions are given as hard input and the model gives them back: a CE well
    # below that of a uniform guess over the vocabulary
    assert 0 <= values["kept_ce"] < math.log(VOCAB)


def test_diagnostics_are_finite_in_range_and_consistent():
    d = dset()
    values = measure(tiny_model(), d, IDS.mask, unroll_steps=3, k_soft=3)
    assert 0 <= values["self_copy"] <= 1
    assert len(values["kept_ce_steps"]) == 3 and len(values["step_losses"]) == 3
    for v in (*values["kept_ce_steps"], *values["step_losses"], values["masked_ce"], values["suffix_ce"]):
        assert math.isfinite(v) and v >= 0
    assert values["kept_ce"] == values["kept_ce_steps"][0]
    assert values["kept_ce_rise"] == pytest.approx(values["kept_ce_steps"][-1] - values["kept_ce_steps"][0])
    losses = values["step_losses"]
    assert values["later_excess"] == pytest.approx((losses[1] + losses[2]) / 2 - losses[0])
    assert values["kept_positions"] > 20 and values["rows"] == 12
    # the same model, the same set: the same numbers (the set and its plan are fixed)
    assert measure(tiny_model(), d, IDS.mask, unroll_steps=3, k_soft=3) == values


def test_kept_ce_is_the_cross_entropy_at_the_kept_answer_positions_of_step_zero():
    d = dset()
    model = tiny_model(seed=3)
    values = measure(model, d, IDS.mask, unroll_steps=2, k_soft=3)
    canvas = initial_canvas(d.batch, d.plan, IDS.mask)
    with torch.no_grad():
        logits = model(input_ids=canvas).logits
    kept = d.plan.keep & (d.batch.weight >= 1)
    by_hand = F.cross_entropy(logits[kept], d.batch.input_ids[kept]).item()
    assert values["kept_ce"] == pytest.approx(by_hand, rel=1e-5)


def test_the_diagnostic_plan_keeps_the_most_positions_of_the_run_settings():
    d = dset()
    assert (d.plan.block_length, d.plan.unmask_count) == (16, 1)
    assert int(d.plan.keep.sum(1).max()) <= 16 - 4 * 1


def test_measuring_leaves_the_training_mode_as_it_was():
    model = tiny_model().train()
    measure(model, dset(), IDS.mask, unroll_steps=2, k_soft=3)
    assert model.training


# --- the stop rule ---------------------------------------------------------------------

def test_stop_rule_parses_and_needs_every_condition():
    rule = StopRule.parse("self_copy>=0.99, kept_ce<=0.05")
    assert str(rule) == "self_copy>=0.99,kept_ce<=0.05"
    assert rule.met({"self_copy": 0.995, "kept_ce": 0.05})
    assert not rule.met({"self_copy": 0.995, "kept_ce": 0.06})
    assert not rule.met({"self_copy": 0.98, "kept_ce": 0.01})
    assert not rule.met({"self_copy": float("nan"), "kept_ce": 0.01})
    assert StopRule.parse("later_excess<0").met({"later_excess": -0.1})
    assert not StopRule.parse("").met({"self_copy": 1.0}) and not StopRule.parse("")


@pytest.mark.parametrize("text,message", [
    ("self_copy=0.9", "is not NAME>=VALUE"),
    ("copy>=0.9", "unknown diagnostic 'copy'"),
    ("self_copy>=high", "is not NAME>=VALUE"),
    ("self_copy>=1..2", "is not a number"),
])
def test_stop_rule_rejects_bad_text_clearly(text, message):
    with pytest.raises(ValueError, match=message):
        StopRule.parse(text)
    with pytest.raises(ValueError, match="stop_when"):
        CTSConfig(base="x", stop_when=text)


def test_stop_rule_needs_diagnostics():
    with pytest.raises(ValueError, match="diagnostics_every"):
        CTSConfig(base="x", stop_when="self_copy>=0.9", diagnostics_every=0)


# --- the trainer -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_tokenizer):
    from evotoken_core.model.random_init import make_random_checkpoint

    return make_random_checkpoint(tmp_path_factory.mktemp("cts_base"), tiny_tokenizer, seed=0, init_std=0.15)


def cts_config(base, out: Path, **overrides) -> CTSConfig:
    return CTSConfig(**{"base": str(base), "out": str(out), "steps": 4, "batch_size": 4, "answer_length": 24,
                        "block_lengths": "8,16", "unmask_counts": "1,2", "warmup_steps": 1, "lr": 1e-2,
                        "threads": 1, "lora_r": 4, "lora_alpha": 8, "bf16": False, "checkpoint_every": 2,
                        "diagnostics_every": 2, "diagnostics_rows": 6, **overrides})


def tokenizer_set(tokenizer, config: CTSConfig) -> DiagnosticSet:
    """Held-out rows for the tiny tokenizer: the test file's own examples."""
    from evotoken_core.training.source import fixed_source
    from tests.test_training import EXAMPLES

    return diagnostic_set(fixed_source(EXAMPLES, tokenizer, config).batch(10_000), config)


def train(base, out, tokenizer, show_progress=False, **overrides):
    from evotoken_core.training.source import fixed_source
    from tests.test_training import EXAMPLES

    cfg = cts_config(base, out, **overrides)
    trainer = run_cts(cfg, fixed_source(EXAMPLES, tokenizer, cfg), show_progress=show_progress,
                      diagnostics=tokenizer_set(tokenizer, cfg))
    return cfg, trainer


def test_training_logs_prints_and_checkpoints_the_diagnostics(tmp_path, base, tiny_tokenizer, capsys):
    cfg, trainer = train(base, tmp_path / "run", tiny_tokenizer, show_progress=True)
    assert trainer.step == 4
    logged = [json.loads(line) for line in (tmp_path / "run" / "diagnostics.jsonl").read_text().splitlines()]
    assert [d["step"] for d in logged] == [0, 2, 4]
    assert all(0 <= d["self_copy"] <= 1 and math.isfinite(d["kept_ce"]) for d in logged)
    for step in (2, 4):
        saved = json.loads((tmp_path / "run" / f"checkpoint-{step}" / "diagnostics.json").read_text())
        assert saved == logged[step // 2]
    assert json.loads((tmp_path / "run" / "diagnostics.json").read_text()) == logged[-1]
    printed = capsys.readouterr()
    assert "diagnostics @ step 0: self_copy" in printed.out + printed.err
    assert "diagnostics @ step 4" in printed.out + printed.err
    # training changed what is measured
    assert logged[-1]["kept_ce"] != logged[0]["kept_ce"]


def test_a_met_stop_rule_ends_the_run_and_a_resumed_run_checks_it_again(tmp_path, base, tiny_tokenizer):
    out = tmp_path / "run"
    _, first = train(base, out, tiny_tokenizer, steps=6, stop_at_step=2)       # interrupted at 2
    assert first.step == 2
    _, never = train(base, tmp_path / "never", tiny_tokenizer, steps=3, stop_when="self_copy>=1.5")
    assert never.step == 3 and not never.stopped_by_rule
    # kept_ce <= 1e9 holds at once: the resumed run measures, sees it met, and stops at 2
    _, resumed = train(base, out, tiny_tokenizer, steps=6, resume=str(out), stop_when="kept_ce<=1e9")
    assert resumed.step == 2 and resumed.stopped_by_rule
    assert (out / "diagnostics.json").is_file() and (out / "adapter" / "adapter_config.json").is_file()


def test_a_rule_met_mid_run_stops_at_that_measurement(tmp_path, base, tiny_tokenizer):
    """Stops at the first measurement where the rule holds: find a threshold the run crosses."""
    _, ref = train(base, tmp_path / "ref", tiny_tokenizer, steps=4)
    logged = [json.loads(line) for line in (tmp_path / "ref" / "diagnostics.jsonl").read_text().splitlines()]
    at0, at2 = logged[0]["block_loss"], logged[1]["block_loss"]
    assert at0 != at2
    op = "<=" if at2 < at0 else ">="
    _, run = train(base, tmp_path / "stop", tiny_tokenizer, steps=4, stop_when=f"block_loss{op}{at2!r}")
    assert run.stopped_by_rule and run.step == 2
    assert (tmp_path / "stop" / "checkpoint-2" / "diagnostics.json").is_file()
