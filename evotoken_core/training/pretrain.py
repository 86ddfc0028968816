"""`evotoken train pretrain`: masked-diffusion training of an LLaDA-format model.

From scratch (random weights, the demo tokenizer, place-value number embeddings) or from an
existing checkpoint (`init`); `resume` continues a run from one of its own checkpoints with
its optimizer, schedule and step counter.
"""

from __future__ import annotations

from pathlib import Path

from evotoken_core.model.config import LLaDAConfig
from evotoken_core.model.modeling import LLaDAModelLM

from .checkpoint import load_float32, load_trainer_state, resolve_resume, save_llada
from .config import PretrainConfig
from .diffusion import add_mask_noise, diffusion_loss, masked_accuracy
from .encoding import SpecialIds
from .loop import StepOutput, Trainer, setup_runtime, step_generator
from .number_init import init_number_embeddings
from .source import BatchSource, mixture_source


def new_model(config: PretrainConfig, tokenizer) -> LLaDAModelLM:
    """A randomly initialised LLaDA whose vocabulary and special ids come from `tokenizer`."""
    vocab = len(tokenizer)
    model_config = LLaDAConfig(
        d_model=config.d_model, n_heads=config.n_heads, n_kv_heads=config.n_heads,
        n_layers=config.n_layers, mlp_hidden_size=config.mlp_hidden_size,
        vocab_size=vocab, embedding_size=vocab, mask_token_id=tokenizer.mask_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
        rope_theta=10000.0, max_sequence_length=1024, init_std=config.init_std,
    )
    model = LLaDAModelLM(model_config)
    if config.number_init:
        init_number_embeddings(model, tokenizer, seed=config.seed)
    return model


def load_start(config: PretrainConfig, tokenizer=None) -> tuple[LLaDAModelLM, object, dict | None]:
    """The model and tokenizer to start from, and the trainer state when resuming."""
    from transformers import AutoTokenizer

    if config.resume:
        path = resolve_resume(config.resume)
        return (load_float32(path), AutoTokenizer.from_pretrained(path),
                load_trainer_state(path))
    if config.init:
        tok = tokenizer or AutoTokenizer.from_pretrained(config.init)
        return load_float32(config.init), tok, None
    if tokenizer is None:
        from evotoken_core.data import build_demo_tokenizer

        tokenizer = build_demo_tokenizer(config.whole_numbers)
    return new_model(config, tokenizer), tokenizer, None


def pretrain_loss_fn(model: LLaDAModelLM, source: BatchSource, config: PretrainConfig, device):
    """Step -> StepOutput: the masked-diffusion loss of that step's batch."""
    mask_id = model.config.mask_token_id

    def loss_fn(step: int) -> StepOutput:
        batch = source.batch(step).to(device)
        noised = add_mask_noise(batch, mask_id, config.mask_eps, step_generator(config.seed, step, device),
                                config.suffix_mask_share)
        logits = model(input_ids=noised.noisy_ids).logits
        loss = diffusion_loss(logits, batch, noised)
        return StepOutput(loss, int(batch.input_ids.numel()),
                          {"masked_acc": masked_accuracy(logits.detach(), batch, noised)})

    return loss_fn


def run_pretrain(config: PretrainConfig, tokenizer=None, source: BatchSource | None = None,
                 show_progress: bool = True) -> Trainer:
    """Train and write checkpoints and the final model to `config.out`; returns the trainer."""
    device = setup_runtime(config)
    model, tokenizer, state = load_start(config, tokenizer)
    model.to(device)
    source = source or mixture_source(tokenizer, config)
    assert source.ids == SpecialIds.from_tokenizer(tokenizer), "batch source and model disagree on ids"
    trainer = Trainer(model, config, pretrain_loss_fn(model, source, config, device),
                      lambda d: save_llada(model, tokenizer, d, recommend_from=config.init), device, state,
                      show_progress)
    trainer.run()
    save_llada(model, tokenizer, Path(config.out), config.save_dtype, recommend_from=config.init)
    return trainer
