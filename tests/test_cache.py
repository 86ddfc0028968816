"""The approximate K/V cache: exact right after a refresh, batched like solo, opt-in."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from evotoken_core.decoding import DecodeRequest, DecodeSettings, SettingsError
from evotoken_core.engine import Engine
from evotoken_core.model import load_model


@pytest.fixture(scope="module")
def f64(tiny_gqa_checkpoint):
    return load_model(tiny_gqa_checkpoint, dtype="float64", device="cpu")


def test_cached_forward_equals_full_forward_when_nothing_changed(f64):
    """Recomputing a few positions against freshly cached keys/values gives the full result."""
    m = f64.model
    ids = torch.tensor([[3, 3, 11, 12, 13, 14, 15, 16], [20, 21, 22, 23, 24, 25, 26, 27]])
    key_mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1], [1] * 8]).bool()
    positions = torch.tensor([[0, 0, 0, 1, 2, 3, 4, 5], list(range(8))])
    kv_out = []
    full = m.hidden(m.embed(ids), key_mask, positions, kv_out=kv_out)
    L = ids.shape[1]
    kv = [(F.pad(k, (0, 0, 0, 1)), F.pad(v, (0, 0, 0, 1))) for k, v in kv_out]  # + dummy column
    cols = torch.tensor([[4, 5, 6, L], [2, 3, 4, 5]])  # row 0 has one padded query -> dummy
    active = m.embed(ids.gather(1, cols.clamp(max=L - 1)))
    part = m.hidden(active, F.pad(key_mask, (0, 1), value=False), positions.gather(1, cols.clamp(max=L - 1)),
                    kv=kv, cols=cols)
    torch.testing.assert_close(part[0, :3], full[0, 4:7], rtol=0, atol=1e-10)
    torch.testing.assert_close(part[1], full[1, 2:6], rtol=0, atol=1e-10)


def _final(engine, requests):
    return {r.request_id: r for r in engine.stream(requests) if r.finished}


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("decoding", ["evotoken", "hard_mask"])
def test_cache_decodes_and_batched_equals_solo(f64, cache, decoding):
    settings = [DecodeSettings(gen_length=32, block_length=8, steps=16, cache=cache, decoding=decoding, early_end=False),
                DecodeSettings(gen_length=16, block_length=16, steps=8, cache=cache, decoding=decoding, early_end=False),
                DecodeSettings(gen_length=24, block_length=8, steps=12, decoding=decoding, early_end=False)]
    prompts = [[5, 17, 42, 8, 99], [7, 3, 120], [64, 250, 31]]
    requests = [DecodeRequest(f"r{i}", p, s) for i, (p, s) in enumerate(zip(prompts, settings))]
    batched = _final(Engine(f64), requests)
    for r in requests:
        solo = _final(Engine(f64), [r])[r.request_id]
        assert batched[r.request_id].finish == "completed"
        assert batched[r.request_id].gen_ids.tolist() == solo.gen_ids.tolist()
        assert (batched[r.request_id].gen_ids != f64.mask_id).all()


def test_first_block_of_a_cached_decode_matches_until_the_cache_is_used(f64):
    """A block's first step refreshes the cache: with one step per block nothing is reused."""
    s = DecodeSettings(gen_length=16, block_length=4, steps=4, early_end=False, decoding="hard_mask")
    prompt = [5, 17, 42, 8, 99]
    plain = _final(Engine(f64), [DecodeRequest("a", prompt, s)])["a"].gen_ids
    cached = _final(Engine(f64), [DecodeRequest("a", prompt, s.with_(cache="dual"))])["a"].gen_ids
    assert torch.equal(plain, cached)


def test_unknown_cache_mode_is_refused():
    with pytest.raises(SettingsError) as info:
        DecodeSettings(cache="paged")
    assert info.value.param == "cache"
