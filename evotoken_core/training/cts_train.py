"""`evotoken train cts`: continuous trajectory supervision of a pretrained checkpoint.

Writes `out/` as a plain LLaDA checkpoint (LoRA merged in, or the fully tuned weights) so
every command loads it with `--model out`, and with LoRA also `out/adapter/`, which applies
to the base model like the published EvoToken adapter (`--model BASE --lora out/adapter`).
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoTokenizer

from .checkpoint import load_float32, load_trainer_state, resolve_resume, save_llada
from .config import CTSConfig, parse_ints
from .cts import cts_unroll, make_plan
from .diffusion import add_mask_noise, clean_copy_loss, diffusion_loss
from .diagnostics import DiagnosticSet, format_line, heldout_set, measure
from .encoding import SpecialIds
from .lora import ADAPTER_DIR, add_lora, inner_model, load_lora, merged_copy, save_adapter
from .loop import DIAGNOSTICS_FILE, Monitor, StepOutput, Trainer, setup_runtime, step_generator
from .source import BatchSource, mixture_source, step_rng


def load_cts_start(config: CTSConfig):
    """(trainable model, tokenizer, resume state): fresh LoRA/full on the base, an existing
    adapter of the base to train further (`init_adapter`), or a checkpoint to resume."""
    tokenizer = AutoTokenizer.from_pretrained(config.base)
    state = None
    if config.resume:
        path = resolve_resume(config.resume)
        state = load_trainer_state(path)
        if config.full:
            return load_float32(path), tokenizer, state
        return load_lora(load_float32(config.base), path / ADAPTER_DIR), tokenizer, state
    model = load_float32(config.base)
    if config.full:
        return model, tokenizer, None
    if config.init_adapter:
        return load_lora(model, config.init_adapter), tokenizer, None
    targets = [t.strip() for t in config.lora_targets.split(",") if t.strip()]
    return add_lora(model, config.lora_r, config.lora_alpha, config.lora_dropout, targets), tokenizer, None


def cts_loss_fn(model, source: BatchSource, config: CTSConfig, device):
    """Step -> StepOutput: the K-step trajectory loss of that step's batch, plus, with
    `anchor_weight` > 0, that weight times the pretraining objective on the same batch.

    The anchor is a departure from the published trainer. At 8B parameters a short CTS run
    barely moves what the model does on hard masks; on the 5.7M demo model it did: 800 steps of
    plain CTS took held-out arithmetic from 91.7 to 62.3 % in hard-mask decoding while the
    masked-position loss rose from the first 100 steps on (docs/training.md). Scoring the masked
    positions of a plainly noised copy of each row keeps that skill trained while CTS teaches
    the rest; one more forward per step (K + 1 in all).

    With `copy_weight` > 0, also that weight times the loss of giving back the clean answer
    shown whole (one more forward). EvoToken feeds each decoded token back as a soft copy of its
    own prediction, so a model that does not return a given token blurs its context; the
    trajectory loss teaches this only through kept positions among masks, and on the demo model
    self-copy levelled off at 98.3 % (docs/training.md). Also a departure from the published
    trainer."""
    net = inner_model(model)
    mask_id = net.config.mask_token_id
    block_lengths, unmask_counts = parse_ints(config.block_lengths), parse_ints(config.unmask_counts)

    def loss_fn(step: int) -> StepOutput:
        batch = source.batch(step).to(device)
        generator = step_generator(config.seed, step, device)
        plan = make_plan(batch, step_rng(config.seed, step, "cts"), generator,
                         block_lengths, unmask_counts, (config.alpha_min, config.alpha_max),
                         unroll_steps=config.unroll_steps, prefix_share=config.block_prefix_share)
        result = cts_unroll(net, batch, plan, mask_id, config.unroll_steps, config.k_soft)
        metrics = {"block_acc": result.block_accuracy, "block_length": plan.block_length,
                   "unmask_count": plan.unmask_count, "alpha": plan.alpha,
                   **{f"loss_k{k}": v for k, v in enumerate(result.step_losses)}}
        loss, forwards = result.loss, config.unroll_steps
        if config.anchor_weight > 0:
            noised = add_mask_noise(batch, mask_id, config.mask_eps, generator, config.anchor_suffix_share)
            anchor = diffusion_loss(net(input_ids=noised.noisy_ids).logits, batch, noised)
            loss, forwards = loss + config.anchor_weight * anchor, forwards + 1
            metrics["anchor"] = float(anchor.detach())
        if config.copy_weight > 0:
            copy = clean_copy_loss(net(input_ids=batch.input_ids).logits, batch)
            loss, forwards = loss + config.copy_weight * copy, forwards + 1
            metrics["copy"] = float(copy.detach())
        return StepOutput(loss, int(batch.input_ids.numel()) * forwards, metrics)

    return loss_fn


def save_final(model, tokenizer, config: CTSConfig) -> Path:
    """The tuned model (merged, plus `adapter/` with LoRA), recommending the base's decoding:
    CTS does not change the canvas a model was trained for."""
    out = Path(config.out)
    if config.full:
        save_llada(model, tokenizer, out, config.save_dtype, recommend_from=config.base)
    else:
        if config.save_adapter:
            save_adapter(model, out / ADAPTER_DIR)
        save_llada(merged_copy(model), tokenizer, out, config.save_dtype, recommend_from=config.base)
    return out


def cts_monitor(model, dset: DiagnosticSet, config: CTSConfig, device) -> Monitor:
    """The diagnostics of the model being trained, on `dset`, every `diagnostics_every` steps."""
    net = inner_model(model)
    placed = DiagnosticSet(dset.batch.to(device), dset.plan.to(device))

    def measure_now() -> dict:
        return measure(net, placed, net.config.mask_token_id, config.unroll_steps, config.k_soft)

    return Monitor(measure_now, config.diagnostics_every, config.stop_rule, format_line)


def run_cts(config: CTSConfig, source: BatchSource | None = None, show_progress: bool = True,
            diagnostics: DiagnosticSet | None = None) -> Trainer:
    """Train, then write the final model; `diagnostics` replaces the held-out diagnostic set
    drawn from the data module (tests pass one built from their own rows)."""
    device = setup_runtime(config)
    model, tokenizer, state = load_cts_start(config)
    model.to(device)
    source = source or mixture_source(tokenizer, config)
    assert source.ids == SpecialIds.from_tokenizer(tokenizer), "batch source and model disagree on ids"
    monitor = None
    if config.diagnostics_every > 0:
        monitor = cts_monitor(model, diagnostics or heldout_set(tokenizer, config), config, device)

    def save_checkpoint(directory: Path) -> None:
        if config.full:
            save_llada(model, tokenizer, directory)
        else:
            save_adapter(model, directory / ADAPTER_DIR)

    trainer = Trainer(model, config, cts_loss_fn(model, source, config, device), save_checkpoint,
                      device, state, show_progress, monitor)
    trainer.run()
    out = save_final(model, tokenizer, config)
    if monitor is not None:
        (out / DIAGNOSTICS_FILE).write_text(json.dumps(trainer.diagnose(), indent=2))
    return trainer
