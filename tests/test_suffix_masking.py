"""The opt-in suffix masking of pretraining: which tokens it masks and how it weights them."""

from __future__ import annotations

import pytest
import torch

from evotoken_core.training.config import PretrainConfig
from evotoken_core.training.diffusion import add_mask_noise
from evotoken_core.training.encoding import collate
from tests.synthetic_rows import IDS, answer_pairs


def batch(rows: int = 64):
    """Prompts of 3 to 6 tokens, answers of 2 to 9 tokens plus eot, a region of at least 12."""
    pairs = answer_pairs(rows, (3, 7), (2, 10))
    return collate(pairs, IDS, answer_length=12, pad_weight=0.1), pairs


def test_suffix_rows_mask_the_last_t_fraction_of_the_answer_and_all_padding():
    b, pairs = batch()
    noised = add_mask_noise(b, IDS.mask, 1e-3, torch.Generator().manual_seed(1), suffix_share=1.0)
    for row, (prompt, answer) in enumerate(pairs):
        m = noised.masked[row].tolist()
        start = len(prompt)
        assert not any(m[:start])                            # the prompt is never masked
        first = m.index(True)
        assert all(m[first:]) and first >= start              # one contiguous suffix to the row end
        count = start + len(answer) - first                   # masked answer + eot tokens
        assert count >= 1                                      # at least one real token to learn
        assert noised.t[row].item() == pytest.approx(count / len(answer))
    # the cut falls all over the answer, not only at its end or its start
    cuts = {noised.masked[r].tolist().index(True) - len(p) for r, (p, _) in enumerate(pairs)}
    assert len(cuts) >= 6 and 0 in cuts


def test_share_zero_is_llada_masking_draw_for_draw_and_a_share_mixes_both():
    b, pairs = batch()
    plain = add_mask_noise(b, IDS.mask, 1e-3, torch.Generator().manual_seed(1))
    zero = add_mask_noise(b, IDS.mask, 1e-3, torch.Generator().manual_seed(1), suffix_share=0.0)
    assert torch.equal(plain.masked, zero.masked) and torch.equal(plain.t, zero.t)
    half = add_mask_noise(b, IDS.mask, 1e-3, torch.Generator().manual_seed(1), suffix_share=0.5)
    same = [torch.equal(half.masked[r], plain.masked[r]) for r in range(len(pairs))]
    assert 10 < sum(same) < len(pairs) - 10                  # roughly half the rows keep LLaDA's mask
    assert torch.equal(half.noisy_ids[half.masked], torch.full((int(half.masked.sum()),), IDS.mask))


def test_config_checks_the_share():
    with pytest.raises(ValueError, match="suffix_mask_share"):
        PretrainConfig(suffix_mask_share=1.5)
