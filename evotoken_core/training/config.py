"""Trainer settings: one dataclass per command, checked once in `__post_init__`.

The dataclasses are the single source of the defaults; the CLI builds its flags from them
and the checkpoint stores them (`asdict`) so a resumed or reported run says exactly how it
was trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .stop_rule import StopRule


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass
class TrainConfig:
    """What both trainers share: optimisation, batching, checkpoints, device."""

    out: str = "runs/train"
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1.5e-3
    min_lr_ratio: float = 0.1      # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 100
    time_budget_min: float | None = None  # also stop (lr fully decayed) after this much training
    stop_at_step: int = 0          # end this run at this step, schedule unchanged (0: never)
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    beta2: float = 0.98
    seed: int = 0
    answer_length: int = 48        # answer region (answer + eot + end-of-text padding), tokens
    max_prompt_length: int = 96    # longer prompts are dropped from a batch, never cut
    pad_weight: float = 0.1        # loss weight of the end-of-text padding positions
    bf16: bool = True              # autocast to bfloat16 (CPU and CUDA)
    device: str | None = None      # None: cuda when available, else cpu
    threads: int | None = None     # torch.set_num_threads; None: torch's default; 0: adapt (CPU)
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    save_dtype: str = "float32"    # dtype of the final weights on disk
    resume: str | None = None      # a checkpoint directory (or a run directory: its latest)
    tasks: str = ""                # data tasks with weights, e.g. arith:3,countdown:1 ("" = data default)
    level_start: str = "0.4,0.4,0.2"  # curriculum weights of levels 0,1,2 at the first step
    level_end: str = "0.15,0.3,0.55"  # ... and from `curriculum_steps` on
    curriculum_steps: int = 0      # linear move from start to end; 0: always `level_end`
    mask_eps: float = 1e-3         # masked diffusion's t is drawn from (mask_eps, 1] (pretraining, CTS's anchor)

    def __post_init__(self):
        _need(self.steps >= 1, "steps must be at least 1")
        _need(self.batch_size >= 1, "batch_size must be at least 1")
        _need(self.lr > 0, "lr must be positive")
        _need(0 <= self.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]")
        _need(self.warmup_steps >= 0, "warmup_steps must be >= 0")
        _need(self.stop_at_step >= 0, "stop_at_step must be >= 0 (0: never)")
        _need(self.answer_length >= 2, "answer_length must be at least 2")
        _need(0 <= self.pad_weight <= 1, "pad_weight must be in [0, 1]")
        _need(0 < self.mask_eps < 1, "mask_eps must be in (0, 1)")
        _need(self.checkpoint_every >= 1, "checkpoint_every must be at least 1")
        _need(self.keep_checkpoints >= 1, "keep_checkpoints must be at least 1")
        for name in ("level_start", "level_end"):
            weights = parse_floats(getattr(self, name))
            _need(len(weights) >= 1 and all(w >= 0 for w in weights) and sum(weights) > 0,
                  f"{name} must be non-negative level weights with a positive sum")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass
class PretrainConfig(TrainConfig):
    """Masked-diffusion pretraining of a model from scratch (or continued from `init`)."""

    out: str = "runs/pretrain"
    init: str | None = None        # start from this checkpoint instead of random weights
    d_model: int = 256
    n_layers: int = 6
    n_heads: int = 4
    mlp_hidden_size: int = 704
    init_std: float = 0.02
    number_init: bool = True       # structured embeddings for number tokens (place-value vectors)
    whole_numbers: bool = True     # demo tokenizer: every integer 0-1000 one token (False: digits)
    suffix_mask_share: float = 0.0  # rows that mask their answer's last t-fraction (0: LLaDA exactly)

    def __post_init__(self):
        super().__post_init__()
        _need(self.d_model % self.n_heads == 0, "d_model must be divisible by n_heads")
        _need(0 <= self.suffix_mask_share <= 1, "suffix_mask_share must be in [0, 1]")


@dataclass
class CTSConfig(TrainConfig):
    """Continuous trajectory supervision of a pretrained model (the spec's section of that name).

    The defaults are the published trainer's: LoRA r 128 / alpha 256 / dropout 0.05 on
    q_proj, k_proj, v_proj, K = 4, 1/2/4/8 tokens filled per step (only counts with K·u < L
    are drawn for a block of length L), k_soft 3, alpha ~ U[0.5, 1.0], kept positions random.
    Block lengths are this project's: its answers are 48 tokens, so 48 is the whole answer."""

    out: str = "runs/cts"
    base: str = ""                 # the pretrained LLaDA-format checkpoint to tune
    lr: float = 2e-4
    warmup_steps: int = 20
    unroll_steps: int = 4          # K
    unmask_counts: str = "1,2,4,8"  # tokens filled per unrolled step u, one drawn per batch among K·u < L
    k_soft: int = 3
    alpha_min: float = 0.5
    alpha_max: float = 1.0
    block_lengths: str = "8,16,32,48"  # block length L, one value drawn per batch
    block_prefix_share: float = 0.0  # rows whose kept block positions are its first ones (0: published)
    anchor_weight: float = 0.0     # + this × the masked-diffusion loss of the same batch (0: published)
    anchor_suffix_share: float = 0.5  # that loss's suffix-masked rows (the base's last phases: 0.5)
    copy_weight: float = 0.0       # + this × the CE of giving back the clean answer, shown whole (0: published)
    full: bool = False             # full fine-tune instead of LoRA
    lora_r: int = 128
    lora_alpha: int = 256
    lora_dropout: float = 0.05
    lora_targets: str = "q_proj,k_proj,v_proj"
    save_adapter: bool = True      # with LoRA: also write the adapter beside the merged model
    init_adapter: str | None = None  # continue this LoRA adapter of `base` (fresh optimizer) instead of a new one
    level_start: str = "0.1,0.3,0.6"
    diagnostics_every: int = 50    # measure the diagnostics every this many steps (0: never)
    diagnostics_rows: int = 64     # held-out rows of the diagnostic batch
    stop_when: str = ""            # e.g. self_copy>=0.99,kept_ce<=0.05: stop once all hold

    def __post_init__(self):
        super().__post_init__()
        _need(bool(self.base), "base: the pretrained checkpoint to tune is required")
        _need(self.unroll_steps >= 1, "unroll_steps must be at least 1")
        counts, lengths = parse_ints(self.unmask_counts), parse_ints(self.block_lengths)
        _need(bool(counts) and all(c >= 1 for c in counts), "unmask_counts must be positive")
        _need(bool(lengths) and all(b >= 1 for b in lengths), "block_lengths must be positive")
        _need(max(lengths) <= self.answer_length, "block_lengths must fit in answer_length")
        for length in lengths:
            _need(self.unroll_steps * min(counts) < length,
                  f"block length {length} leaves no unmask count u with unroll_steps·u < {length} "
                  f"(unroll_steps {self.unroll_steps}, unmask_counts {self.unmask_counts})")
        _need(self.k_soft >= 1, "k_soft must be at least 1")
        _need(0 <= self.block_prefix_share <= 1, "block_prefix_share must be in [0, 1]")
        _need(self.anchor_weight >= 0, "anchor_weight must be >= 0 (0: no masked-diffusion term)")
        _need(self.copy_weight >= 0, "copy_weight must be >= 0 (0: no clean-copy term)")
        _need(0 <= self.anchor_suffix_share <= 1, "anchor_suffix_share must be in [0, 1]")
        _need(0 <= self.alpha_min <= self.alpha_max <= 1, "need 0 <= alpha_min <= alpha_max <= 1")
        _need(self.lora_r >= 1, "lora_r must be at least 1")
        _need(0 <= self.lora_dropout < 1, "lora_dropout must be in [0, 1)")
        _need(bool([t for t in self.lora_targets.split(",") if t.strip()]) or self.full,
              "lora_targets must name at least one module")
        _need(not (self.init_adapter and self.full), "init_adapter continues a LoRA adapter; it cannot go with full")
        _need(not self.init_adapter or (Path(self.init_adapter) / "adapter_config.json").is_file(),
              f"init_adapter: no adapter_config.json in {self.init_adapter} (give a peft adapter directory)")
        _need(self.diagnostics_every >= 0, "diagnostics_every must be >= 0 (0: never)")
        _need(self.diagnostics_rows >= 1, "diagnostics_rows must be at least 1")
        rule = StopRule.parse(self.stop_when)
        _need(not rule or self.diagnostics_every >= 1, "stop_when needs diagnostics_every >= 1")

    @property
    def stop_rule(self) -> StopRule:
        return StopRule.parse(self.stop_when)


def parse_floats(text: str) -> list[float]:
    return [float(x) for x in str(text).split(",") if x.strip()]


def parse_ints(text: str) -> list[int]:
    return [int(x) for x in str(text).split(",") if x.strip()]


def parse_task_weights(text: str) -> dict[str, float]:
    """`arith:3,countdown:1` -> {"arith": 3.0, "countdown": 1.0}; a bare name weighs 1."""
    out: dict[str, float] = {}
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        name, _, weight = part.partition(":")
        out[name.strip()] = float(weight) if weight else 1.0
    _need(bool(out) and all(w >= 0 for w in out.values()) and sum(out.values()) > 0,
          f"tasks {text!r} must name at least one task with a positive weight")
    return out

