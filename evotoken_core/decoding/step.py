"""One refinement step of the method, as a chain of small pure tensor functions.

    window  = block_window(...)          where each row's current block sits
    x0, c   = propose(...)               steps 2-3: candidates and their confidence
    update  = select(...) | revise(...)  steps 4 and 6: unmask, and revise decoded tokens
    gen, c  = write_block(...)           step 5: the block's results onto the canvas
    soft    = soft_state(...)            step 7: the next step's soft inputs
    blocks  = advance_blocks(...)        finished blocks, early end, what is confirmed

Shapes: B rows; G generated positions; W the widest block; N positions the model computed
this step (the region: every generated position, or only the block); V vocabulary; K soft
candidates. Rows differ only through per-row tensors of their settings, so one call serves
a batch of requests with different settings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .records import TokenState
from .rules import SoftState, build_soft_state, gumbel_argmax, prepare_logits, unmask_selection
from .schedule import transfer_count_at
from .tensors import BatchTensors


@dataclass
class BlockWindow:
    """The current block of every row, W columns wide (rows with shorter blocks are padded)."""

    start: torch.Tensor  # (B,) first generated column of the block
    cols: torch.Tensor   # (B, W) generated columns of the window, clamped to G - 1
    valid: torch.Tensor  # (B, W) inside the row's block


def block_window(t: BatchTensors, W: int, G: int) -> BlockWindow:
    start = t.block * t.block_len                                      # (B,)
    j = torch.arange(W, device=start.device)
    return BlockWindow(start, (start[:, None] + j).clamp(max=G - 1), j < t.block_len[:, None])


def propose(logits_b: torch.Tensor, lse_b: torch.Tensor, samplers) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 2-3: candidates x0 (B, W) and confidence (B, W) from the block's prepared logits
    (B, W, V) and their logsumexp (B, W). `samplers` lists (row, settings, generator) of the
    rows that draw: Gumbel noise at temperature > 0, uniform confidence for random remasking."""
    x0 = logits_b.argmax(-1)
    for i, s, generator in samplers:
        if s.temperature > 0:
            x0[i, : s.block_length] = gumbel_argmax(logits_b[i, : s.block_length], s.temperature, generator)
    conf = (logits_b.gather(-1, x0[..., None])[..., 0] - lse_b).exp()
    for i, s, generator in samplers:
        if s.remasking == "random":
            conf[i, : s.block_length] = torch.rand(s.block_length, dtype=conf.dtype, device=conf.device,
                                                   generator=generator)
    return x0, conf


def select(conf: torch.Tensor, masked_b: torch.Tensor, x0: torch.Tensor, window: BlockWindow, t: BatchTensors,
           any_stable: bool) -> torch.Tensor:
    """Step 4: the masked block positions (B, W) decoded now, by the schedule's count or by
    the confidence threshold. With `threshold_stable`, the threshold only passes a candidate
    the previous step proposed too (a token EvoToken would still revise is not taken early),
    and the single most confident position is always decoded."""
    count = transfer_count_at(t.block_len, t.steps_per_block, t.step_in_block)     # (B,)
    picked = unmask_selection(conf, masked_b, count, t.threshold)
    if not any_stable:
        return picked
    stable = t.proposal.gather(1, window.cols) == x0                                 # (B, W)
    none = torch.full_like(t.threshold, float("nan"))
    top1 = unmask_selection(conf, masked_b, torch.ones_like(count), none)
    by_stable = (masked_b & stable & (conf >= t.threshold[:, None])) | top1
    use = t.threshold_stable & ~torch.isnan(t.threshold)
    return torch.where(use[:, None], by_stable, picked)


def revise(conf: torch.Tensor, masked_b: torch.Tensor, window: BlockWindow, t: BatchTensors) -> torch.Tensor:
    """Step 6 (EvoToken rows): decoded positions of the block whose new candidate is more
    confident than the stored one. (B, W)"""
    stored_b = t.conf.gather(1, window.cols)
    return t.evotoken[:, None] & window.valid & ~masked_b & (conf > stored_b)


def write_block(gen: torch.Tensor, update_b: torch.Tensor, x0: torch.Tensor, conf: torch.Tensor,
                window: BlockWindow, t: BatchTensors) -> tuple[torch.Tensor, ...]:
    """Step 5: window values (B, W) written onto the generated positions (B, G). Returns the
    new ids, the new stored confidence, which positions are in the block, and the block's
    candidates x0 on the generated positions (B, G)."""
    B, G = gen.shape
    W = update_b.shape[1]
    rel = torch.arange(G, device=gen.device) - window.start[:, None]                 # (B, G)
    in_block = (rel >= 0) & (rel < t.block_len[:, None])
    rel = rel.clamp(0, W - 1)
    update = in_block & update_b.gather(1, rel)
    x0_g = x0.gather(1, rel)
    gen = torch.where(update, x0_g, gen)
    return gen, torch.where(update, conf.gather(1, rel), t.conf), in_block, x0_g


def soft_state(logits_r, lse_r, region, masked_g: torch.Tensor, window: BlockWindow, t: BatchTensors,
               k_max: int) -> tuple[SoftState, torch.Tensor]:
    """Step 7 over the region (B, N): mask-aware soft tokens for masked positions, pure soft
    tokens for the current block's decoded ones, from this step's block boundaries. Returns
    the state and which region positions it feeds softly."""
    masked_r = masked_g.gather(1, region.cols) & region.valid
    soft_r = region.valid & (region.cols >= window.start[:, None]) & t.evotoken[:, None]
    return build_soft_state(logits_r, lse_r, masked_r, soft_r, t.k_soft, t.alpha, k_max), soft_r


@dataclass
class BlockProgress:
    gen: torch.Tensor        # (B, G) ids, filled with end-of-text after an early end
    block: torch.Tensor      # (B,) the block each row works on next
    step_in_block: torch.Tensor
    finished: torch.Tensor   # (B,) bool
    confirmed: torch.Tensor  # (B,) leading positions that can no longer change


def advance_blocks(gen: torch.Tensor, masked_g: torch.Tensor, in_block: torch.Tensor, window: BlockWindow,
                   t: BatchTensors, end_ids: torch.Tensor, fill_id: int) -> BlockProgress:
    """A block with no mask left is done; a row whose done block holds an end token ends
    early (when it asked to), its later positions filled with end-of-text."""
    cols = torch.arange(gen.shape[1], device=gen.device)
    block_done = ~(masked_g & in_block).any(1)                                       # (B,)
    ended = block_done & t.early_end & (torch.isin(gen, end_ids) & in_block).any(1)
    after = ended[:, None] & (cols >= (window.start + t.block_len)[:, None]) & (cols < t.gen_len[:, None])
    gen = torch.where(after, torch.full_like(gen, fill_id), gen)
    block = t.block + block_done.long()
    step_in_block = torch.where(block_done, torch.zeros_like(t.step_in_block), t.step_in_block + 1)
    finished = ended | (block >= t.num_blocks)
    confirmed = torch.where(finished, t.gen_len, block * t.block_len)
    return BlockProgress(gen, block, step_in_block, finished, confirmed)


def token_states(masked_g: torch.Tensor, soft_on: torch.Tensor, confirmed: torch.Tensor,
                 t: BatchTensors) -> torch.Tensor:
    """Each generated position's TokenState code (B, G), int8."""
    cols = torch.arange(masked_g.shape[1], device=masked_g.device)
    soft_g = soft_on & t.evotoken[:, None]
    pending = torch.where(masked_g, torch.where(soft_g, TokenState.SOFT, TokenState.MASKED), TokenState.DECODED)
    return torch.where(cols < confirmed[:, None], TokenState.FINAL, pending).to(torch.int8)


def forbid_early_end(logits_r: torch.Tensor, region_cols: torch.Tensor, min_tokens: torch.Tensor,
                     end_ids: torch.Tensor) -> torch.Tensor:
    """End tokens may not be proposed, nor take probability, before a row's `min_tokens`.
    logits_r: (B, N, V) prepared logits, changed in place; region_cols (B, N)."""
    early = region_cols < min_tokens[:, None]                                        # (B, N)
    ends = logits_r[..., end_ids]                                                    # (B, N, E)
    logits_r[..., end_ids] = torch.where(early[..., None], torch.full_like(ends, float("-inf")), ends)
    return logits_r


@dataclass(frozen=True)
class SpecialIds:
    mask: int
    ends: torch.Tensor  # (E,) end-of-text / end-of-turn ids
    fill: int           # what positions after an early end hold


@dataclass
class StepOutcome:
    t: BatchTensors          # the batch's tensors after the step (canvas ids: see `gen`)
    gen: torch.Tensor        # (B, G) the generated region after the step
    states: torch.Tensor     # (B, G) TokenState codes
    progress: BlockProgress
    block_before: torch.Tensor
    detail: tuple | None     # per-position display values, for rows that stream every step


def refine(t: BatchTensors, gen: torch.Tensor, region, logits: torch.Tensor, window: BlockWindow, samplers,
           ids: SpecialIds, k_max: int, any_evotoken: bool, any_min_tokens: bool, any_stable: bool,
           want_detail: bool) -> StepOutcome:
    """Steps 2-7 for every row, from the model's logits over the region (B, N, V). Changes
    nothing it was given: the caller commits the outcome once it exists whole."""
    logits_r = prepare_logits(logits, ids.mask)                                      # (B, N, V)
    if any_min_tokens:
        forbid_early_end(logits_r, region.cols, t.min_tokens, ids.ends)
    lse_r = logits_r.logsumexp(-1)                                                   # (B, N)
    logits_b, lse_b = region.at_block(logits_r), region.at_block(lse_r)              # (B, W, V), (B, W)
    x0, conf = propose(logits_b, lse_b, samplers)
    masked_b = (gen.gather(1, window.cols) == ids.mask) & window.valid
    update_b = select(conf, masked_b, x0, window, t, any_stable) | revise(conf, masked_b, window, t)
    gen, conf_g, in_block, x0_g = write_block(gen, update_b, x0, conf, window, t)
    masked_g = (gen == ids.mask) & (torch.arange(gen.shape[1], device=gen.device) < t.gen_len[:, None])
    changes, state, lift = {"conf": conf_g}, None, region.lifter(gen.shape[1])
    if any_evotoken:
        state, soft_r = soft_state(logits_r, lse_r, region, masked_g, window, t, k_max)
        changes.update(top_ids=lift(state.top_ids, t.top_ids), top_w=lift(state.top_w, t.top_w),
                       cur_w=lift(state.cur_w, t.cur_w), soft_on=lift(soft_r, t.soft_on))
    if any_stable:  # the block's candidates, and the greedy ones wherever else the model ran
        changes["proposal"] = torch.where(in_block, x0_g, lift(logits_r.argmax(-1), t.proposal))
    progress = advance_blocks(gen, masked_g, in_block, window, t, ids.ends, ids.fill)
    changes.update(block=progress.block, step_in_block=progress.step_in_block, nfe=t.nfe + 1)
    new = replace(t, **changes)
    states = token_states(masked_g, new.soft_on, progress.confirmed, t)
    detail = None
    if want_detail:
        detail = step_detail(logits_r, lse_r, state, lift, masked_g, new, k_max)
    return StepOutcome(new, progress.gen, states, progress, t.block, detail)


def step_detail(logits_r, lse_r, state: SoftState | None, lift, masked_g, new: BatchTensors, k_max: int) -> tuple:
    """What a step stream shows per position, on the CPU: stored confidence, the model's top
    candidates and their probabilities, and the mask's share of each soft input."""
    if state is None:
        v, top_ids = logits_r.topk(k_max, dim=-1)
        top_probs = (v - lse_r[..., None]).exp()
    else:
        top_ids, top_probs = state.top_ids, state.top_probs
    soft_g = new.soft_on & new.evotoken[:, None]
    share = torch.where(masked_g & soft_g, new.cur_w, torch.full_like(new.cur_w, float("nan")))
    return (new.conf.float().cpu(), lift(top_ids, torch.zeros_like(new.top_ids)).cpu(),
            lift(top_probs, torch.zeros_like(new.top_w)).float().cpu(), share.float().cpu())
