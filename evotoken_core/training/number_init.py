"""Place-value initialisation of number tokens.

With every integer a single token, a freshly initialised model sees 1,001 unrelated vectors
and has to discover that 47 and 48 are neighbours. Starting each number's input embedding
and output row as a sum of per-place digit vectors (ones, tens, hundreds...) plus a little
noise gives it that structure for free; training is still free to move away from it. This
was part of the one measured recipe on this hardware that learned two-step arithmetic.
"""

from __future__ import annotations

import torch

from evotoken_core.model.modeling import LLaDAModelLM


def number_tokens(tokenizer, max_digits: int = 4) -> dict[int, str]:
    """id -> digit string for every token that decodes to a bare non-negative integer
    (an optional leading space allowed)."""
    found = {}
    # sorted: the vocab dict's order differs between calls, and the noise is drawn in this order
    for token, idx in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]):
        if idx in tokenizer.all_special_ids:
            continue
        text = tokenizer.convert_tokens_to_string([token]).strip()
        if text.isascii() and text.isdigit() and len(text) <= max_digits:
            found[idx] = text
    return found


@torch.no_grad()
def init_number_embeddings(model: LLaDAModelLM, tokenizer, seed: int = 0, noise: float = 0.5) -> int:
    """Overwrite number rows of `wte` and `ff_out` with place-value sums; returns how many."""
    numbers = number_tokens(tokenizer)
    if not numbers:
        return 0
    gen = torch.Generator().manual_seed(seed)
    std = float(getattr(model.config, "init_std", 0.02))
    places = max(len(s) for s in numbers.values())
    for table in (model.transformer.wte.weight, model.transformer.ff_out.weight):
        d = table.shape[1]
        digit = torch.randn(places, 10, d, generator=gen) * std / places**0.5
        for idx, text in numbers.items():
            vec = sum(digit[place, int(ch)] for place, ch in enumerate(reversed(text)))
            vec = vec + torch.randn(d, generator=gen) * std * noise
            table[idx] = vec.to(table.dtype)
    return len(numbers)
