"""What CTS is meant to teach, measured on a fixed held-out batch.

Masked-diffusion pretraining scores masked positions only, so a pretrained model never learns
to give back a token it is shown; CTS scores every block position and teaches exactly that.
Three numbers say whether it has:

- `self_copy`: the clean row as hard input, nothing masked; the share of answer tokens
  (answer and end-of-turn, not the end-of-text padding) whose argmax is the input token.
- `kept_ce`: cross-entropy at the block positions the plan keeps (ground truth given as
  input), at unrolled step 0; `kept_ce_steps` is its value at each of the K steps, and
  `kept_ce_rise` the last step's minus the first's (how much the soft trajectory blurs what
  the model was shown).
- `later_excess`: the mean block loss of steps 1..K-1 minus step 0's, the extra loss the
  model's own soft states cost it.

One more says what CTS must not cost: `suffix_ce`, the cross-entropy at the masked positions
when each row's answer is given up to a point and masked after it (hard masks, no soft
input), the state in which a decoder that writes in order predicts its next tokens.

The batch and its plan are drawn once from fixed seeds, from the data's held-out split
(arithmetic and Countdown problems whose keys fall in the test split), so every value of a
run and of any model is measured on the same rows and the same plan.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import CTSConfig, parse_ints, parse_task_weights
from .cts import CTSPlan, cts_unroll, make_plan
from .diffusion import add_mask_noise
from .encoding import EncodedBatch, SpecialIds, collate, encode_pair

DIAGNOSTIC_SEED = 20_261_129




@dataclass
class DiagnosticSet:
    """A fixed batch and the fixed plan the unroll diagnostics run it through."""

    batch: EncodedBatch
    plan: CTSPlan


def heldout_examples(rows: int, tasks: str, seed: int = DIAGNOSTIC_SEED) -> list:
    """`rows` examples from the held-out split, in the arithmetic trace style and the
    arithmetic/Countdown proportions of `tasks` (demo tasks have no held-out split)."""
    from evotoken_core.data import TrainExample, arithmetic, countdown
    from evotoken_core.data.example import boxed_answer
    from evotoken_core.data.mixture import ARITH_STYLES

    weights = parse_task_weights(tasks) if tasks else {"arith": 0.6, "countdown": 0.25}
    arith = {k: w for k, w in weights.items() if k in ARITH_STYLES and w > 0}
    share = sum(arith.values()) / max(sum(arith.values()) + weights.get("countdown", 0.0), 1e-9)
    style = ARITH_STYLES[max(arith, key=arith.get)] if arith else "place_value"
    rng = random.Random(seed)
    out = []
    for i in range(rows):
        if i < round(rows * share):
            p = arithmetic.sample_problem(rng, rng.choice((1, 2)), "test", style)
            out.append(TrainExample(p.question, p.answer(), "arith", p.level))
        else:
            shown, target, reasoning, expr, level = countdown.sample_item(rng, "test")
            out.append(TrainExample(countdown.question(shown, target), boxed_answer(reasoning, expr),
                                    "countdown", level))
    return out


def heldout_set(tokenizer, config: CTSConfig) -> DiagnosticSet:
    """The run's diagnostic batch: held-out rows rendered like training rows, and one plan."""
    from evotoken_core.data.prompts import render_prompt

    ids = SpecialIds.from_tokenizer(tokenizer)
    pairs = []
    for ex in heldout_examples(config.diagnostics_rows, config.tasks):
        prompt, answer = encode_pair(tokenizer, render_prompt(tokenizer, ex.prompt, ex.task), ex.answer, ids)
        if len(answer) <= config.answer_length:
            pairs.append((prompt, answer))
    if not pairs:
        raise ValueError(f"no held-out answer fits answer_length {config.answer_length} with this tokenizer")
    batch = collate(pairs, ids, config.answer_length, config.pad_weight)
    return diagnostic_set(batch, config)


def diagnostic_set(batch: EncodedBatch, config: CTSConfig) -> DiagnosticSet:
    """`batch` with one plan of a fixed seed: the run's longest block and smallest fill count,
    the plan that keeps the most positions (n_keep up to L − K·u per row), so `kept_ce`
    averages over many positions; random kept positions, as published."""
    gen = torch.Generator().manual_seed(DIAGNOSTIC_SEED)
    plan = make_plan(batch, random.Random(DIAGNOSTIC_SEED), gen, [max(parse_ints(config.block_lengths))],
                     [min(parse_ints(config.unmask_counts))], (config.alpha_min, config.alpha_max),
                     unroll_steps=config.unroll_steps)
    return DiagnosticSet(batch, plan)


def _mean_ce(logits: torch.Tensor, targets: torch.Tensor, where: torch.Tensor) -> float:
    if not where.any():
        return float("nan")
    return float(F.cross_entropy(logits[where].float(), targets[where]))


@torch.no_grad()
def self_copy_rate(model, batch: EncodedBatch) -> float:
    """Share of answer tokens the model gives back when shown the whole clean row."""
    logits = model(input_ids=batch.input_ids).logits
    real = batch.answer & (batch.weight >= 1)
    hit = (logits.argmax(-1) == batch.input_ids) & real
    return float(hit.sum() / real.sum().clamp_min(1))


@torch.no_grad()
def suffix_ce(model, batch: EncodedBatch, mask_id: int) -> float:
    """Cross-entropy at the masked positions of each row with its answer's last t-fraction
    masked (t of a fixed seed), hard input."""
    gen = torch.Generator(device=batch.input_ids.device).manual_seed(DIAGNOSTIC_SEED)
    noised = add_mask_noise(batch, mask_id, 1e-3, gen, suffix_share=1.0)
    logits = model(input_ids=noised.noisy_ids).logits
    return _mean_ce(logits, batch.input_ids, noised.masked & (batch.weight >= 1))


@torch.no_grad()
def measure(model, dset: DiagnosticSet, mask_id: int, unroll_steps: int, k_soft: int) -> dict:
    """All diagnostics of `model` on `dset`, in eval mode (dropout off), float32."""
    was_training = model.training
    model.eval()
    try:
        batch, plan = dset.batch, dset.plan
        with torch.autocast(batch.input_ids.device.type, enabled=False):
            copy = self_copy_rate(model, batch)
            suffix = suffix_ce(model, batch, mask_id)
            result = cts_unroll(model, batch, plan, mask_id, unroll_steps, k_soft, record=True)
    finally:
        model.train(was_training)
    truth = batch.input_ids
    real = batch.weight >= 1
    kept = plan.keep & real
    masked0 = (result.trace[0].input_ids == mask_id) & (plan.fill_rank >= 0) & real
    kept_steps = [_mean_ce(step.logits, truth, kept) for step in result.trace]
    losses = result.step_losses
    return {
        "self_copy": copy,
        "kept_ce": kept_steps[0],
        "kept_ce_steps": kept_steps,
        "kept_ce_rise": kept_steps[-1] - kept_steps[0],
        "masked_ce": _mean_ce(result.trace[0].logits, truth, masked0),
        "suffix_ce": suffix,
        "block_loss": losses[0],
        "step_losses": losses,
        "later_excess": (sum(losses[1:]) / len(losses[1:]) - losses[0]) if len(losses) > 1 else 0.0,
        "kept_positions": int(kept.sum()),
        "rows": int(batch.input_ids.shape[0]),
    }


def format_line(step: int, d: dict) -> str:
    steps = " ".join(f"{v:.3f}" for v in d["kept_ce_steps"])
    return (f"diagnostics @ step {step}: self_copy {d['self_copy']:.4f}  kept_ce {d['kept_ce']:.4f} "
            f"(steps {steps})  masked_ce {d['masked_ce']:.4f}  suffix_ce {d['suffix_ce']:.4f}  later_excess {d['later_excess']:+.4f}")


def main(argv: list[str] | None = None) -> int:
    """`python -m evotoken_core.training.diagnostics --model DIR [--lora DIR]`: the
    diagnostics of any checkpoint, on the batch and plan a CTS run with these settings uses."""
    import argparse
    import json

    from evotoken_core.model import load_model

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--lora", default=None, help="a peft adapter to apply to --model")
    parser.add_argument("--tasks", default="arith_split:0.7,countdown:0.15,demo:0.15")
    parser.add_argument("--answer-length", type=int, default=48)
    parser.add_argument("--block-lengths", default=CTSConfig.block_lengths)
    parser.add_argument("--unmask-counts", default=CTSConfig.unmask_counts)
    parser.add_argument("--unroll-steps", type=int, default=CTSConfig.unroll_steps)
    parser.add_argument("--rows", type=int, default=CTSConfig.diagnostics_rows)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = CTSConfig(base=args.model, tasks=args.tasks, answer_length=args.answer_length,
                       block_lengths=args.block_lengths, unmask_counts=args.unmask_counts,
                       unroll_steps=args.unroll_steps, diagnostics_rows=args.rows)
    loaded = load_model(args.model, device="cpu", lora=args.lora)
    dset = heldout_set(loaded.tokenizer, config)
    values = measure(loaded.model, dset, loaded.mask_id, config.unroll_steps, config.k_soft)
    print(json.dumps({"model": args.model, "lora": args.lora, **values}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
