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


PROMPTS = [[5, 17, 42, 8, 99], [7, 3, 120], [64, 250, 31, 9], [11, 12]]


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("decoding", ["evotoken", "hard_mask"])
def test_refreshing_every_step_is_exact_decoding(f64, cache, decoding):
    """`cache_refresh: 1` recomputes the whole canvas at every step: token for token (and
    forward for forward) what uncached decoding gives, in float64."""
    base = DecodeSettings(gen_length=24, block_length=8, steps=12, decoding=decoding, early_end=False)
    for prompt in PROMPTS[:2]:
        plain = _final(Engine(f64), [DecodeRequest("a", prompt, base)])["a"]
        cached = _final(Engine(f64), [DecodeRequest("a", prompt, base.with_(cache=cache, cache_refresh=1))])["a"]
        assert cached.gen_ids.tolist() == plain.gen_ids.tolist() and cached.nfe == plain.nfe


def test_evotoken_cache_with_two_steps_per_block_is_exact(f64):
    """In EvoToken mode a cached row recomputes the canvas at a block's first two steps (the
    previous block turns from soft to hard at the second), so with two steps per block the
    cache is never read and the answer is the exact one."""
    s = DecodeSettings(gen_length=16, block_length=4, steps=8, early_end=False)
    for cache in ("prefix", "dual"):
        plain = _final(Engine(f64), [DecodeRequest("a", PROMPTS[0], s)])["a"]
        cached = _final(Engine(f64), [DecodeRequest("a", PROMPTS[0], s.with_(cache=cache))])["a"]
        assert cached.gen_ids.tolist() == plain.gen_ids.tolist()


def test_prefix_cache_keeps_the_later_blocks_soft_state_moving(f64):
    """With a prefix cache the later blocks are recomputed at every step, so in EvoToken mode
    their soft tokens follow the model's current belief, as in exact decoding."""
    s = DecodeSettings(gen_length=24, block_length=8, steps=12, early_end=False, cache="prefix")
    records = [r for r in Engine(f64).stream([DecodeRequest("a", PROMPTS[0], s, want_steps=True)]) if not r.finished]
    cached_steps = [r for r in records if r.block == 1 and r.step >= 6]  # block 1: steps 4-7; 6 and 7 read the cache
    first, second = cached_steps[0], cached_steps[1]
    later = slice(16, 24)
    assert not torch.equal(first.top_probs[later], second.top_probs[later])


def test_sixteen_mixed_cached_and_uncached_requests_each_decode_as_alone(f64):
    """Under continuous batching, every request (any cache policy, either mode, its own canvas)
    gets the answer it gets decoded alone with the same settings."""
    shapes = [dict(gen_length=24, block_length=8, steps=12), dict(gen_length=16, block_length=4, steps=8),
              dict(gen_length=32, block_length=16, steps=16)]
    caches = [dict(cache="none"), dict(cache="prefix"), dict(cache="dual"), dict(cache="dual", cache_refresh=2),
              dict(cache="prefix", cache_refresh=3), dict(cache="none", threshold=0.5)]
    requests = []
    for i in range(16):
        s = DecodeSettings(decoding=("evotoken", "hard_mask")[i % 2], early_end=bool(i % 3),
                           **shapes[i % 3], **caches[i % 6])
        requests.append(DecodeRequest(f"r{i}", PROMPTS[i % 4], s))
    batched = _final(Engine(f64, max_batch_size=16), requests)
    for r in requests:
        alone = _final(Engine(f64), [r])[r.request_id]
        assert batched[r.request_id].gen_ids.tolist() == alone.gen_ids.tolist(), r.settings
