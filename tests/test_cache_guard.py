"""`cache_guard`: a cached step is recomputed exactly when one of its decisions was a near-tie."""

from __future__ import annotations

import math

import pytest
import torch

from evotoken_core.decoding import DecodeRequest, DecodeSettings, SettingsError
from evotoken_core.decoding.guard import decision_margin
from evotoken_core.decoding.tensors import BatchTensors
from evotoken_core.engine import Engine
from evotoken_core.model import load_model

PROMPTS = [[5, 17, 42, 8, 99], [7, 3, 120], [64, 250, 31, 9], [11, 12]]
MASK = 0


@pytest.fixture(scope="module")
def f64(tiny_gqa_checkpoint):
    return load_model(tiny_gqa_checkpoint, dtype="float64", device="cpu")


def _final(engine, requests):
    return {r.request_id: r for r in engine.stream(requests) if r.finished}


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("decoding", ["evotoken", "hard_mask"])
def test_a_guard_no_step_passes_is_exact_decoding(f64, cache, decoding):
    """With a margin no decision can clear, every cached step is recomputed: token for token
    what uncached decoding gives, in float64, paying one extra forward per cached step."""
    base = DecodeSettings(gen_length=24, block_length=8, steps=12, decoding=decoding, early_end=False)
    for prompt in PROMPTS[:2]:
        plain = _final(Engine(f64), [DecodeRequest("a", prompt, base)])["a"]
        engine = Engine(f64)
        guarded = _final(engine, [DecodeRequest("a", prompt, base.with_(cache=cache, cache_guard=1e9))])["a"]
        unguarded = _final(Engine(f64), [DecodeRequest("a", prompt, base.with_(cache=cache))])["a"]
        assert guarded.gen_ids.tolist() == plain.gen_ids.tolist()
        recomputed = engine.stats.guard_recomputes
        assert recomputed > 0 and guarded.nfe == plain.nfe + recomputed
        assert unguarded.nfe == plain.nfe  # the unguarded cache spends no extra forward


def _spied(loaded):
    """An engine that records the decision margin of every step its guard looks at."""
    engine, margins = Engine(loaded), []
    real = engine._guard

    def spy(guarded, window, region, logits):
        b = engine.batch
        margins.append(float(decision_margin(b.t, b.gen_ids, region.at_block(logits), window.cols, window.valid,
                                             engine.mask_id)[0]))
        return real(guarded, window, region, logits)

    engine._guard = spy
    return engine, margins


def test_a_guard_recomputes_exactly_the_steps_below_its_margin(f64):
    """A moderate margin lets clear steps through on the cache and recomputes the near-ties;
    each recompute is one more forward."""
    s = DecodeSettings(gen_length=32, block_length=16, steps=16, decoding="hard_mask", early_end=False,
                       cache="dual")
    strict, strict_margins = _spied(f64)
    _final(strict, [DecodeRequest("a", PROMPTS[0], s.with_(cache_guard=1e9))])
    assert strict.stats.guard_recomputes == len(strict_margins) > 2
    delta = sorted(strict_margins)[len(strict_margins) // 2]
    engine, margins = _spied(f64)
    out = _final(engine, [DecodeRequest("a", PROMPTS[0], s.with_(cache_guard=delta))])["a"]
    below = sum(m < delta for m in margins)
    assert 0 < below < len(margins) and engine.stats.guard_recomputes == below
    assert out.nfe == 16 + below


def test_sixteen_mixed_guarded_and_unguarded_requests_each_decode_as_alone(f64):
    """A recompute replaces only its own rows' results: batch-mates keep their cached step."""
    shapes = [dict(gen_length=24, block_length=8, steps=12), dict(gen_length=32, block_length=16, steps=16)]
    policies = [dict(cache="dual", cache_guard=0.5), dict(cache="prefix", cache_guard=2.0), dict(cache="dual"),
                dict(cache="none"), dict(cache="dual", cache_guard=1e9), dict(cache="prefix", cache_refresh=2,
                                                                             cache_guard=0.25)]
    requests = []
    for i in range(16):
        s = DecodeSettings(decoding=("evotoken", "hard_mask")[i % 2], early_end=bool(i % 3),
                           **shapes[i % 2], **policies[i % 6])
        requests.append(DecodeRequest(f"r{i}", PROMPTS[i % 4], s))
    engine = Engine(f64, max_batch_size=16)
    batched = _final(engine, requests)
    assert engine.stats.guard_recomputes > 0
    for r in requests:
        alone = _final(Engine(f64), [r])[r.request_id]
        got = batched[r.request_id]
        assert got.gen_ids.tolist() == alone.gen_ids.tolist() and got.nfe == alone.nfe, r.settings


def test_the_guard_measures_margins_without_the_end_tokens_min_tokens_bans(tiny_gqa_checkpoint):
    """Under `min_tokens` the step rule never sees an early end token, so neither does the
    guard: an end token tied with the model's favourite token is no near-tie for it."""
    loaded = load_model(tiny_gqa_checkpoint, dtype="float64", device="cpu")
    s = DecodeSettings(gen_length=24, block_length=8, steps=12, decoding="hard_mask", early_end=False,
                       cache="dual")
    exact = _final(Engine(loaded), [DecodeRequest("a", PROMPTS[0], s)])["a"]
    favourite = max(set(exact.gen_ids.tolist()), key=exact.gen_ids.tolist().count)
    head = loaded.model.get_output_embeddings().weight
    with torch.no_grad():
        for end in loaded.end_ids:  # every end token now ties with the favourite everywhere
            head[end] = head[favourite]
    tied = s.with_(cache_guard=1e-9)
    raw = Engine(loaded)
    _final(raw, [DecodeRequest("a", PROMPTS[0], tied)])
    assert raw.stats.guard_recomputes > 0, "the tie is a zero margin while end tokens may be written"
    banned = Engine(loaded)
    out = _final(banned, [DecodeRequest("a", PROMPTS[0], tied.with_(min_tokens=24))])["a"]
    assert banned.stats.guard_recomputes == 0
    plain = _final(Engine(loaded), [DecodeRequest("a", PROMPTS[0], s.with_(min_tokens=24))])["a"]
    assert out.gen_ids.tolist() == plain.gen_ids.tolist() and out.nfe == plain.nfe


def test_a_negative_guard_is_refused():
    with pytest.raises(SettingsError) as info:
        DecodeSettings(cache="dual", cache_guard=-0.1)
    assert info.value.param == "cache_guard"


# --- the margin itself, on hand-made logits ------------------------------------------------------

def _tensors(B: int, W: int, G: int, count: int, threshold=float("nan"), evotoken=False, conf=None) -> BatchTensors:
    long = lambda v: torch.full((B,), v, dtype=torch.long)  # noqa: E731
    return BatchTensors(
        prompt_len=long(1), gen_len=long(G), block_len=long(W), steps_per_block=long(W // count),
        num_blocks=long(G // W), k_soft=long(2), alpha=torch.full((B,), 0.7, dtype=torch.float64),
        threshold=torch.full((B,), threshold, dtype=torch.float64), threshold_stable=torch.zeros(B, dtype=torch.bool),
        evotoken=torch.full((B,), evotoken), early_end=torch.zeros(B, dtype=torch.bool), min_tokens=long(0),
        block=long(0), step_in_block=long(0), nfe=long(0), ids=torch.zeros((B, 1 + G), dtype=torch.long),
        conf=conf if conf is not None else torch.full((B, G), float("nan"), dtype=torch.float64),
        top_ids=torch.zeros((B, G, 2), dtype=torch.long), top_w=torch.zeros((B, G, 2), dtype=torch.float64),
        cur_w=torch.ones((B, G), dtype=torch.float64), soft_on=torch.zeros((B, G), dtype=torch.bool),
        proposal=torch.full((B, G), -1, dtype=torch.long), kv=None)


def _logits(tops: list[tuple[int, float, float]], V: int = 6) -> torch.Tensor:
    """Per position: (token, its logit, the runner-up's logit); the rest at -20."""
    out = torch.full((1, len(tops), V), -20.0, dtype=torch.float64)
    for w, (tok, top, second) in enumerate(tops):
        out[0, w, MASK] = 50.0  # the mask id never counts
        out[0, w, tok] = top
        out[0, w, 1 + (tok % (V - 1))] = second
    return out


def _log_odds(top: float, second: float) -> float:
    rest = math.log(math.exp(second) + 3 * math.exp(-20.0))  # 6 ids: mask, top, second, 3 more
    return top - rest


def _margin(t, gen, logits):
    W = logits.shape[1]
    cols = torch.arange(W)[None]
    return float(decision_margin(t, gen, logits, cols, torch.ones_like(cols, dtype=torch.bool), MASK)[0])


def test_margin_of_the_schedule_is_the_gap_between_the_last_taken_and_the_first_left():
    # one position unmasked per step; positions 0 and 2 nearly tie for it
    logits = _logits([(2, 5.0, 1.0), (3, 2.0, 0.0), (4, 4.9, 0.9)])
    gen = torch.zeros((1, 3), dtype=torch.long)
    t = _tensors(1, 3, 3, count=1)
    expected = _log_odds(5.0, 1.0) - _log_odds(4.9, 0.9)
    assert _margin(t, gen, logits) == pytest.approx(expected, abs=1e-9)


def test_margin_of_the_token_is_the_top_two_gap_of_a_position_the_step_writes():
    # the step unmasks both positions (no choice of positions); position 1's top two nearly tie
    logits = _logits([(2, 5.0, 1.0), (3, 5.0, 4.8)])
    t = _tensors(1, 2, 2, count=2)
    assert _margin(t, torch.zeros((1, 2), dtype=torch.long), logits) == pytest.approx(0.2, abs=1e-9)


def test_margin_of_a_threshold_is_the_distance_to_it():
    logits = _logits([(2, 5.0, 0.0), (3, 1.0, -6.0)])
    lo = _log_odds(1.0, -6.0)
    threshold = 1 / (1 + math.exp(-(lo + 0.3)))  # log-odds 0.3 above position 1's
    t = _tensors(1, 2, 2, count=1, threshold=threshold)
    assert _margin(t, torch.zeros((1, 2), dtype=torch.long), logits) == pytest.approx(0.3, abs=1e-6)


def test_margin_of_a_threshold_no_position_passes_is_the_lead_of_the_one_taken():
    logits = _logits([(2, 1.0, 0.0), (3, 1.0, 0.1), (4, 1.0, 0.5)])
    t = _tensors(1, 3, 3, count=1, threshold=0.99)  # log-odds 4.6, far above all three
    expected = _log_odds(1.0, 0.0) - _log_odds(1.0, 0.1)
    assert _margin(t, torch.zeros((1, 3), dtype=torch.long), logits) == pytest.approx(expected, abs=1e-9)


def test_margin_of_a_revision_counts_only_a_change_of_token():
    """EvoToken revises a decoded position when its new candidate is more confident than the
    stored one: a near-tie matters when the candidate is another token, not the same one."""
    logits = _logits([(2, 6.0, 0.0), (3, 6.0, 0.0)])
    lo = _log_odds(6.0, 0.0)
    stored = torch.tensor([[1 / (1 + math.exp(-(lo - 0.05))), 1 / (1 + math.exp(-(lo + 0.07)))]], dtype=torch.float64)
    gen = torch.tensor([[2, 5]])  # position 0 holds its candidate already; position 1 holds another token
    t = _tensors(1, 2, 2, count=1, evotoken=True, conf=stored)
    assert _margin(t, gen, logits) == pytest.approx(0.07, abs=1e-6)
    t_hard = _tensors(1, 2, 2, count=1, evotoken=False, conf=stored)
    assert _margin(t_hard, gen, logits) == math.inf  # hard-mask rows never revise, nothing is masked
