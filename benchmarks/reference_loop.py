"""The published decoding loop, written plainly from the spec: the baseline to beat and to match.

Batch 1, no cache, the model run on the whole sequence at every step, a float64 softmax over
the full vocabulary at every position, and no early exit. It is deliberately the obvious
implementation: tests check the engine against it token for token, and `evotoken bench`
times the engine against it on the same model and settings.
"""

from __future__ import annotations

import torch

from evotoken_core.decoding.schedule import transfer_counts


@torch.no_grad()
def reference_generate(model, prompt_ids: list[int], *, mask_id: int, gen_length: int = 128,
                       block_length: int = 32, steps: int = 64, temperature: float = 0.0,
                       k_soft: int = 3, alpha_soft_mask: float = 0.7, remasking: str = "low_confidence",
                       threshold: float | None = None, decoding: str = "evotoken",
                       generator: torch.Generator | None = None) -> tuple[list[int], int]:
    """Returns (the gen_length canvas ids, forward passes)."""
    device = model.transformer.wte.weight.device
    E = model.transformer.wte.weight
    P = len(prompt_ids)
    x = torch.full((P + gen_length,), mask_id, dtype=torch.long, device=device)
    x[:P] = torch.tensor(prompt_ids, device=device)
    conf = torch.zeros(P + gen_length, dtype=torch.float64, device=device)
    soft_ids = soft_w = None  # (L, k+1) candidates and weights of the soft state
    num_blocks = gen_length // block_length
    nfe = 0
    for b in range(num_blocks):
        start, end = P + b * block_length, P + (b + 1) * block_length
        counts = transfer_counts(block_length, steps // num_blocks)
        i = 0
        while (x[start:end] == mask_id).any():
            if soft_ids is None:
                emb = E[x]
            else:
                emb = (soft_w[..., None].to(E.dtype) * E[soft_ids]).sum(-2)
            logits = model(inputs_embeds=emb[None]).logits[0].to(torch.float64)
            nfe += 1
            logits[:, mask_id] = float("-inf")
            if temperature > 0:
                u = torch.rand(logits.shape, dtype=torch.float64, device=device, generator=generator)
                x0 = (logits.exp() / (-torch.log(u)) ** temperature).argmax(-1)
            else:
                x0 = logits.argmax(-1)
            p = torch.softmax(logits, dim=-1)
            if remasking == "low_confidence":
                c = p.gather(-1, x0[:, None])[:, 0]
            else:
                c = torch.rand(x0.shape, dtype=torch.float64, device=device, generator=generator)
            was_masked = x == mask_id
            in_block = torch.zeros_like(was_masked)
            in_block[start:end] = True
            candidates = was_masked & in_block
            score = torch.where(candidates, c, torch.full_like(c, float("-inf")))
            chosen = torch.zeros_like(candidates)
            if threshold is not None:
                chosen = candidates & (c >= threshold)
                chosen[score.argmax()] = True
            else:
                chosen[torch.topk(score, counts[i]).indices] = True
            x = torch.where(chosen, x0, x)
            conf = torch.where(chosen, c, conf)
            if decoding == "evotoken":
                revise = in_block & ~was_masked & (c > conf)
                x = torch.where(revise, x0, x)
                conf = torch.where(revise, c, conf)
                soft_ids, soft_w = _soft_state(p, x, start, mask_id, k_soft, alpha_soft_mask)
            i += 1
    return x[P:].tolist(), nfe


def _soft_state(p, x, block_start, mask_id, k, alpha):
    """Step 7, position by position: mask-aware soft, pure soft, or hard."""
    q, top = p.topk(k, dim=-1)
    ids = torch.cat([top, x[:, None]], dim=-1)
    weights = torch.zeros(ids.shape, dtype=torch.float64, device=p.device)
    for pos in range(x.shape[0]):
        if pos < block_start:
            weights[pos, k] = 1.0
        elif x[pos] == mask_id:
            weights[pos, :k] = (1 - alpha) * q[pos] / q[pos].sum()
            weights[pos, k] = alpha
        else:
            weights[pos, :k] = q[pos] / q[pos].sum()
    weights = weights.clamp_min(0)
    return ids, weights / weights.sum(-1, keepdim=True)
