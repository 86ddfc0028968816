"""The trainers on micro configs: they learn, checkpoint in the LLaDA format, resume exactly,
and CTS feeds the model exactly the soft states the decoder's own code builds. Then the shipped
demo model that they produced: it is there, small, loads in float32 and answers an easy item."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from evotoken_core.assets import default_model_path, pretrain_only_model_path
from evotoken_core.data import TrainExample
from evotoken_core.data.prompts import render_prompt
from evotoken_core.decoding import DecodeRequest, DecodeSettings, RecommendedDecoding
from evotoken_core.decoding.rules import build_soft_state, prepare_logits, soft_candidates
from evotoken_core.engine import Engine
from evotoken_core.eval.extract import first_boxed
from evotoken_core.eval.trace_errors import tally_steps
from evotoken_core.model import load_model
from evotoken_core.text import TextAssembler
from evotoken_core.training.config import CTSConfig, PretrainConfig
from evotoken_core.training.cts import cts_unroll, make_plan
from evotoken_core.training.cts_train import cts_loss_fn
from evotoken_core.training.encoding import SpecialIds
from evotoken_core.training.loop import Trainer, step_generator
from evotoken_core.training.pretrain import load_start, new_model, pretrain_loss_fn, run_pretrain
from evotoken_core.training.source import fixed_source, step_rng

EXAMPLES = [
    TrainExample("What is 12 + 30?", "<reasoning>12 + 30 = 42.</reasoning>\n<answer>\\boxed{42}</answer>", "arith", 1),
    TrainExample("Sort the list: 5, 3, 9, 1.", "1, 3, 5, 9", "sort", 1),
    TrainExample("Hello! How are you today?", "I am fine, thank you.", "chat", 0),
    TrainExample("What is 7 * 6?", "<reasoning>7 * 6 = 42.</reasoning>\n<answer>\\boxed{42}</answer>", "arith", 1),
]
MICRO = dict(d_model=32, n_layers=2, n_heads=2, mlp_hidden_size=64, batch_size=4, answer_length=32,
             warmup_steps=1, lr=3e-3, threads=1, number_init=True)


def micro_pretrain(tmp_path: Path, **overrides) -> PretrainConfig:
    return PretrainConfig(**{**MICRO, "out": str(tmp_path / "pre"), "steps": 3, "checkpoint_every": 2,
                             **overrides})


class SameBatch:
    """A source that returns one fixed batch whatever the step: the 'fixed micro batch'."""

    def __init__(self, source):
        self.inner, self.ids, self.fixed = source, source.ids, source.batch(0)

    def batch(self, step):
        return self.fixed


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, tiny_tokenizer):
    """A micro model pretrained a few steps, as the base of the CTS tests."""
    out = tmp_path_factory.mktemp("pretrained")
    cfg = micro_pretrain(out, steps=4)
    run_pretrain(cfg, tiny_tokenizer, fixed_source(EXAMPLES, tiny_tokenizer, cfg), show_progress=False)
    return Path(cfg.out)


def test_continued_pretraining_keeps_the_decoding_its_start_recommends(pretrained, tmp_path, tiny_tokenizer):
    """A phase continued from a checkpoint (`init`) is scored by every consumer as that
    checkpoint recommends: its checkpoints and its final model keep the recommendation."""
    import shutil

    start = tmp_path / "start"
    shutil.copytree(pretrained, start)
    wanted = RecommendedDecoding(max_tokens=16, block_length=4, steps_ratio=0.5)
    wanted.write(start)
    cfg = micro_pretrain(tmp_path, init=str(start), out=str(tmp_path / "continued"), steps=2, checkpoint_every=1)
    run_pretrain(cfg, tiny_tokenizer, fixed_source(EXAMPLES, tiny_tokenizer, cfg), show_progress=False)
    out = Path(cfg.out)
    for saved in (out, out / "checkpoint-1", out / "checkpoint-2"):
        assert RecommendedDecoding.read(saved) == wanted, saved
    # From scratch, or from a checkpoint that recommends nothing, the reference defaults stay.
    assert RecommendedDecoding.read(pretrained) == RecommendedDecoding()


@pytest.mark.parametrize("suffix_mask_share", [0.0, 0.5])
def test_pretrain_steps_reduce_the_loss_on_a_fixed_micro_batch(tmp_path, tiny_tokenizer, suffix_mask_share):
    cfg = micro_pretrain(tmp_path, suffix_mask_share=suffix_mask_share)
    torch.manual_seed(0)
    model = new_model(cfg, tiny_tokenizer)
    source = SameBatch(fixed_source(EXAMPLES, tiny_tokenizer, cfg))
    trainer = Trainer(model, cfg, pretrain_loss_fn(model, source, cfg, torch.device("cpu")), lambda d: None,
                      torch.device("cpu"), show_progress=False)
    losses = [trainer.train_step(0)["loss"] for _ in range(8)]  # step 0 every time: same masks
    assert losses[-1] < losses[0] - 0.1, losses


def test_cts_steps_reduce_the_loss_on_a_fixed_micro_batch(tmp_path, pretrained, tiny_tokenizer):
    cfg = CTSConfig(**{k: v for k, v in MICRO.items() if k not in ("d_model", "n_layers", "n_heads",
                                                                    "mlp_hidden_size", "number_init")},
                    base=str(pretrained), out=str(tmp_path / "cts"), full=True, block_lengths="8,16")
    from evotoken_core.model.modeling import LLaDAModelLM

    model = LLaDAModelLM.from_pretrained(pretrained)
    source = SameBatch(fixed_source(EXAMPLES, tiny_tokenizer, cfg))
    trainer = Trainer(model, cfg, cts_loss_fn(model, source, cfg, torch.device("cpu")), lambda d: None,
                      torch.device("cpu"), show_progress=False)
    losses = [trainer.train_step(0)["loss"] for _ in range(8)]
    assert losses[-1] < losses[0] - 0.1, losses


def test_the_anchor_adds_the_pretraining_loss_of_the_same_batch(tmp_path, pretrained, tiny_tokenizer):
    """anchor_weight w: loss = CTS loss + w × the masked-diffusion loss of that step's batch,
    its noise drawn from the step's generator after the plan (so resuming replays it)."""
    from evotoken_core.model.modeling import LLaDAModelLM
    from evotoken_core.training.diffusion import add_mask_noise, diffusion_loss

    base = {k: v for k, v in MICRO.items() if k not in ("d_model", "n_layers", "n_heads", "mlp_hidden_size",
                                                        "number_init")}
    model = LLaDAModelLM.from_pretrained(pretrained, dtype=torch.float64).eval()
    outputs = {}
    for w in (0.0, 0.5):
        cfg = CTSConfig(**base, base=str(pretrained), out=str(tmp_path / "cts"), full=True, block_lengths="8,16",
                        anchor_weight=w, anchor_suffix_share=0.5)
        source = fixed_source(EXAMPLES, tiny_tokenizer, cfg)
        with torch.no_grad():
            outputs[w] = cts_loss_fn(model, source, cfg, torch.device("cpu"))(3)
    batch = source.batch(3)
    generator = step_generator(cfg.seed, 3, torch.device("cpu"))
    make_plan(batch, step_rng(cfg.seed, 3, "cts"), generator, [8, 16], [1, 2, 4, 8], (0.5, 1.0), unroll_steps=4)
    noised = add_mask_noise(batch, model.config.mask_token_id, cfg.mask_eps, generator, 0.5)
    with torch.no_grad():
        expected = float(diffusion_loss(model(input_ids=noised.noisy_ids).logits, batch, noised))
    assert expected > 0.1 and "anchor" not in outputs[0.0].metrics
    assert outputs[0.5].metrics["anchor"] == pytest.approx(expected, rel=1e-6)
    assert float(outputs[0.5].loss) == pytest.approx(float(outputs[0.0].loss) + 0.5 * expected, rel=1e-6)  # float32 CE
    assert outputs[0.5].tokens == outputs[0.0].tokens * 5 // 4  # K + 1 forwards instead of K


def test_pretrain_checkpoint_is_llada_format_and_loads(tmp_path, tiny_tokenizer):
    cfg = micro_pretrain(tmp_path)
    run_pretrain(cfg, tiny_tokenizer, fixed_source(EXAMPLES, tiny_tokenizer, cfg), show_progress=False)
    for directory in (Path(cfg.out), Path(cfg.out) / "checkpoint-2"):
        config = json.loads((directory / "config.json").read_text())
        assert config["model_type"] == "llada"
        assert (directory / "model.safetensors").is_file()
        loaded = load_model(directory, device="cpu")
        assert loaded.mask_id == tiny_tokenizer.mask_token_id
        assert loaded.tokenizer is not None and len(loaded.tokenizer) == len(tiny_tokenizer)
        ids = torch.tensor([[1, 2, 3, loaded.mask_id]])
        assert loaded.model(input_ids=ids).logits.shape == (1, 4, config["vocab_size"])


def test_resume_continues_the_step_counter_and_matches_an_uninterrupted_run(tmp_path, tiny_tokenizer):
    flat = dict(min_lr_ratio=1.0)  # a constant lr, so stopping at 2 of 4 steps changes no schedule
    whole = micro_pretrain(tmp_path / "a", steps=4, **flat)
    run_pretrain(whole, tiny_tokenizer, fixed_source(EXAMPLES, tiny_tokenizer, whole), show_progress=False)
    first = micro_pretrain(tmp_path / "b", steps=2, **flat)
    run_pretrain(first, tiny_tokenizer, fixed_source(EXAMPLES, tiny_tokenizer, first), show_progress=False)
    resumed_cfg = micro_pretrain(tmp_path / "b", steps=4, resume=first.out, **flat)
    resumed = run_pretrain(resumed_cfg, tiny_tokenizer, fixed_source(EXAMPLES, tiny_tokenizer, resumed_cfg),
                           show_progress=False)
    assert resumed.step == 4 and [m["step"] for m in resumed.history] == [3, 4]
    a = load_model(whole.out, device="cpu").model.state_dict()
    b = load_model(resumed_cfg.out, device="cpu").model.state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)


def test_stop_at_step_ends_a_run_early_without_touching_its_schedule(tmp_path, tiny_tokenizer):
    """A cosine run stopped at step 2 of 4 and resumed ends where the uninterrupted run ends."""
    whole = micro_pretrain(tmp_path / "a", steps=4, warmup_steps=0)
    full = run_pretrain(whole, tiny_tokenizer, fixed_source(EXAMPLES, tiny_tokenizer, whole), show_progress=False)
    first = micro_pretrain(tmp_path / "b", steps=4, warmup_steps=0, stop_at_step=2)
    stopped = run_pretrain(first, tiny_tokenizer, fixed_source(EXAMPLES, tiny_tokenizer, first), show_progress=False)
    assert stopped.step == 2 and (Path(first.out) / "model.safetensors").exists()
    assert [m["lr"] for m in stopped.history] == [m["lr"] for m in full.history[:2]]
    resumed_cfg = micro_pretrain(tmp_path / "b", steps=4, warmup_steps=0, resume=first.out)
    run_pretrain(resumed_cfg, tiny_tokenizer, fixed_source(EXAMPLES, tiny_tokenizer, resumed_cfg), show_progress=False)
    a = load_model(whole.out, device="cpu").model.state_dict()
    b = load_model(resumed_cfg.out, device="cpu").model.state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="stop_at_step"):
        micro_pretrain(tmp_path / "c", stop_at_step=-1)


def test_cts_soft_inputs_are_what_build_soft_state_gives(pretrained, tiny_tokenizer):
    loaded = load_model(pretrained, device="cpu")
    cfg = PretrainConfig(**MICRO, out="unused")
    batch = fixed_source(EXAMPLES, tiny_tokenizer, cfg).batch(0)
    mask_id = SpecialIds.from_tokenizer(tiny_tokenizer).mask
    plan = make_plan(batch, step_rng(0, 0, "cts"), step_generator(0, 0, torch.device("cpu")),
                     [8], [2], (0.6, 0.6), unroll_steps=3)
    result = cts_unroll(loaded.model, batch, plan, mask_id, unroll_steps=3, k_soft=3, record=True)
    assert result.trace[0].soft_ids is None  # the first step is fed plain embeddings
    B = batch.input_ids.shape[0]
    for prev, step in zip(result.trace, result.trace[1:]):
        prepared = prepare_logits(prev.logits, mask_id)
        state = build_soft_state(prepared, prepared.logsumexp(-1), step.input_ids == mask_id, prev.soft,
                                 torch.full((B,), 3), torch.full((B,), 0.6), 3)
        ids, weights = soft_candidates(state, step.input_ids)
        assert torch.equal(step.soft_ids, ids)
        torch.testing.assert_close(step.soft_weights, weights, rtol=0, atol=0)
        # the model really was run on that input
        again = loaded.model(soft_ids=ids, soft_weights=weights).logits
        torch.testing.assert_close(again, step.logits)
        # prompt stays hard; masked positions after the block carry alpha on the mask token
        row = 0
        start = int(plan.block_start[row])
        assert torch.all(weights[row, :start, -1] == 1) and torch.all(ids[row, :start, -1] == batch.input_ids[row, :start])
        after = start + plan.block_length
        torch.testing.assert_close(weights[row, after:, -1], torch.full_like(weights[row, after:, -1], 0.6))
        assert torch.all(ids[row, after:, -1] == mask_id)
    # each step fills the pre-chosen positions: masks in the block shrink by the unmask count
    in_block = plan.fill_rank >= 0
    counts = [int((s.masked & in_block).sum()) for s in result.trace]
    assert all(a >= b for a, b in zip(counts, counts[1:])) and counts[0] < int(in_block.sum())


def test_pretraining_from_scratch_can_spell_numbers_in_digits(tmp_path):
    """--no-whole-numbers: the from-scratch model gets the digit tokenizer (no 10-1000 tokens)."""
    model, tok, _ = load_start(micro_pretrain(tmp_path, whole_numbers=False))
    assert tok.tokenize("86")[:2] == ["8", "6"] and "86" not in tok.get_vocab()
    assert model.config.vocab_size == len(tok)
    whole_model, whole_tok, _ = load_start(micro_pretrain(tmp_path))
    assert whole_tok.tokenize("86") == ["86"] and whole_model.config.vocab_size == len(tok) + 991


def test_train_cli_flags_mirror_the_config(tmp_path):
    import argparse

    from evotoken_core.training.cli import _config_from_args, add_train_parser

    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "cts", "--base", "m", "--unroll-steps", "2", "--no-bf16", "--full",
                              "--alpha-min", "0.6", "--time-budget-min", "1.5"])
    cfg = _config_from_args(CTSConfig, args)
    assert (cfg.unroll_steps, cfg.bf16, cfg.full, cfg.alpha_min, cfg.time_budget_min) == (2, False, True, 0.6, 1.5)
    args = parser.parse_args(["train", "pretrain", "--d-model", "64"])
    assert _config_from_args(PretrainConfig, args).d_model == 64


# --- the shipped demo model -----------------------------------------------------------
# Items of the shipped held-out set (arith_test.jsonl, indices 3, 17 and 5) that the shipped
# model answers right, every step of the trace included, in both modes at temperature 0 with the
# settings the model recommends (and evaluation uses): a product then a sum, two sums with a
# carry, and two sums that carry into the hundreds. The model gets about nine in ten of that set
# right (see its MODEL_CARD.md), so these pin the shipped weights and the decode path end to end;
# they are not a measure of its skill.
EASY_ITEMS = [
    ("Emma has 4 packs with 12 cards in each. She also has 20 more cards. How many cards does Emma have in all?", "68"),
    ("Sam has 34 stickers. He buys 5 more and gets 18 from Lily. How many stickers does Sam have now?", "57"),
    ("Leo has 76 pens. He buys 5 more and gets 20 from Sam. How many pens does Leo have now?", "101"),
]


def answer(loaded, question: str, task: str, settings: DecodeSettings) -> str:
    text = render_prompt(loaded.tokenizer, question, task)
    ids = loaded.tokenizer(text, add_special_tokens=False)["input_ids"]
    engine = Engine(loaded, max_batch_size=1)
    final = [r for r in engine.stream([DecodeRequest("easy", ids, settings)]) if r.finished][-1]
    assembler = TextAssembler(loaded.tokenizer, loaded.end_ids, max_tokens=settings.gen_length)
    assembler.update(final.gen_ids.tolist(), settings.gen_length, final=True)
    return assembler.text


def test_shipped_model_is_small_llada_format_with_a_model_card():
    path = default_model_path()
    assert json.loads((path / "config.json").read_text())["model_type"] == "llada"
    assert (path / "MODEL_CARD.md").is_file()
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    from evotoken_core.training.ship import MAX_BYTES

    assert total <= MAX_BYTES


@pytest.mark.parametrize("decoding", ["evotoken", "hard_mask"])
@pytest.mark.parametrize("question,expected", EASY_ITEMS)
def test_shipped_model_answers_an_easy_item(decoding, question, expected):
    torch.set_flush_denormal(True)
    loaded = load_model(default_model_path(), dtype="float32", device="cpu")
    settings = RecommendedDecoding.read(default_model_path()).settings(temperature=0.0, decoding=decoding)
    text = answer(loaded, question, "arith", settings)
    assert first_boxed(text) == expected, text
    steps = tally_steps([text])
    assert steps and all(right == total for right, total in steps.values()), text


def test_pretrain_only_variant_ships_beside_it():
    loaded = load_model(pretrain_only_model_path(), dtype="float32", device="cpu")
    assert loaded.config.vocab_size == load_model(default_model_path(), device="cpu").config.vocab_size


def test_the_shipped_cts_adapter_on_the_pretrain_only_model_is_the_default_model():
    """The CTS run ships its LoRA adapter: `--model …/pretrain_only --lora …/adapter` is the
    default model (both float16 on disk, so equal to float16 rounding) and answers the same."""
    adapter = default_model_path() / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    torch.set_flush_denormal(True)
    tuned = load_model(pretrain_only_model_path(), dtype="float32", device="cpu", lora=adapter)
    merged = load_model(default_model_path(), dtype="float32", device="cpu")
    base = load_model(pretrain_only_model_path(), dtype="float32", device="cpu")
    probe = torch.randint(0, merged.config.vocab_size, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b, c = (m.model(input_ids=probe).logits for m in (tuned, merged, base))
    assert (a - b).abs().max() < 0.05 < (a - c).abs().max()
    settings = RecommendedDecoding.read(default_model_path()).settings(temperature=0.0, decoding="evotoken")
    question = EASY_ITEMS[0][0]
    assert answer(tuned, question, "arith", settings) == answer(merged, question, "arith", settings)
