"""The engine reproduces the published loop token for token, alone and inside a batch."""

from __future__ import annotations

import pytest
import torch

from benchmarks.reference_loop import reference_generate
from evotoken_core.decoding import DecodeRequest, DecodeSettings
from evotoken_core.engine import Engine
from evotoken_core.model import load_model

PROMPTS = [[5, 17, 42, 8, 99], [7, 3], [120, 11, 64, 250, 31, 77, 12, 9]]


@pytest.fixture(scope="module")
def f64(tiny_checkpoint):
    return load_model(tiny_checkpoint, dtype="float64", device="cpu")


@pytest.fixture(scope="module")
def gqa64(tiny_gqa_checkpoint):
    return load_model(tiny_gqa_checkpoint, dtype="float64", device="cpu")


def run(loaded, requests, max_batch_size=32):
    engine = Engine(loaded, max_batch_size=max_batch_size)
    out = {}
    for rec in engine.stream(requests):
        if rec.finished:
            assert rec.finish == "completed", rec.error
            out[rec.request_id] = (rec.gen_ids.tolist(), rec.nfe)
    return out


def solo(loaded, prompt, settings):
    return run(loaded, [DecodeRequest("solo", prompt, settings)])["solo"]


SHAPES = [
    dict(gen_length=32, block_length=8, steps=16),
    dict(gen_length=24, block_length=24, steps=12),
    dict(gen_length=32, block_length=16, steps=32),
    dict(gen_length=20, block_length=4, steps=10),
]


@pytest.mark.parametrize("decoding", ["evotoken", "hard_mask"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "g{gen_length}b{block_length}s{steps}".format(**s))
def test_engine_matches_reference_loop_in_float64(f64, decoding, shape):
    for prompt in PROMPTS[:2]:
        settings = DecodeSettings(decoding=decoding, early_end=False, **shape)
        expected, nfe = reference_generate(f64.model, prompt, mask_id=f64.mask_id, decoding=decoding, **shape)
        got, got_nfe = solo(f64, prompt, settings)
        assert got == expected
        assert got_nfe == nfe == shape["steps"]


@pytest.mark.parametrize("extra", [
    dict(k_soft=1, alpha_soft_mask=0.0),
    dict(k_soft=5, alpha_soft_mask=0.9),
    dict(threshold=0.05),
    dict(threshold=0.3, decoding="hard_mask"),
], ids=str)
def test_engine_matches_reference_loop_with_other_settings(f64, extra):
    shape = dict(gen_length=32, block_length=8, steps=16)
    settings = DecodeSettings(early_end=False, **shape, **extra)
    expected, nfe = reference_generate(f64.model, PROMPTS[2], mask_id=f64.mask_id, **shape, **extra)
    got, got_nfe = solo(f64, PROMPTS[2], settings)
    assert got == expected and got_nfe == nfe


def test_engine_matches_reference_loop_with_grouped_kv_heads(gqa64):
    assert gqa64.config.n_kv_heads < gqa64.config.n_heads
    shape = dict(gen_length=32, block_length=8, steps=16)
    for decoding in ("evotoken", "hard_mask"):
        expected, _ = reference_generate(gqa64.model, PROMPTS[0], mask_id=gqa64.mask_id, decoding=decoding, **shape)
        got, _ = solo(gqa64, PROMPTS[0], DecodeSettings(decoding=decoding, early_end=False, **shape))
        assert got == expected


def test_evotoken_revises_decoded_tokens_and_differs_from_hard_mask(f64):
    """Revision must actually happen on this model, or the equivalence tests prove little."""
    settings = DecodeSettings(gen_length=32, block_length=16, steps=16, early_end=False)
    engine = Engine(f64)
    revised = 0
    previous = None
    for rec in engine.stream([DecodeRequest("r", PROMPTS[0], settings)]):
        if previous is not None and rec.step >= 0:
            before, after = previous.gen_ids, rec.gen_ids
            changed = (before != after) & (before != f64.mask_id) & (after != f64.mask_id)
            revised += int(changed.sum())
        previous = rec
    assert revised > 0
    hard = solo(f64, PROMPTS[0], settings.with_(decoding="hard_mask"))[0]
    assert hard != previous.gen_ids.tolist()


MIXED = [
    DecodeSettings(gen_length=32, block_length=8, steps=16, early_end=False),
    DecodeSettings(gen_length=16, block_length=16, steps=8, k_soft=5, alpha_soft_mask=0.5, early_end=False),
    DecodeSettings(gen_length=24, block_length=8, steps=24, decoding="hard_mask", early_end=False),
    DecodeSettings(gen_length=32, block_length=4, steps=16, temperature=0.8, seed=11, early_end=False),
    DecodeSettings(gen_length=16, block_length=8, steps=8, threshold=0.1, k_soft=2, early_end=False),
    DecodeSettings(gen_length=16, block_length=8, steps=8, remasking="random", seed=5, early_end=False),
]


def test_batched_decode_matches_solo_decode_in_float64(f64):
    requests = [DecodeRequest(f"r{i}", PROMPTS[i % 3], s) for i, s in enumerate(MIXED)]
    batched = run(f64, requests)
    for r in requests:
        assert batched[r.request_id] == solo(f64, r.prompt_ids, r.settings), r.request_id


def test_batched_hard_mask_matches_solo_in_float32(tiny_checkpoint):
    f32 = load_model(tiny_checkpoint, dtype="float32", device="cpu")
    settings = [DecodeSettings(gen_length=g, block_length=8, steps=g // 2, decoding="hard_mask") for g in (16, 24, 32)]
    requests = [DecodeRequest(f"r{i}", PROMPTS[i], s) for i, s in enumerate(settings)]
    batched = run(f32, requests)
    for r in requests:
        assert batched[r.request_id] == solo(f32, r.prompt_ids, r.settings)


def test_requests_join_and_leave_between_steps(f64):
    a = DecodeRequest("a", PROMPTS[0], MIXED[0])
    b = DecodeRequest("b", PROMPTS[2], MIXED[1])
    c = DecodeRequest("c", PROMPTS[1], MIXED[3])
    engine = Engine(f64)
    engine.submit(a)
    finals = {}
    for step in range(200):
        if step == 3:
            engine.submit(b)
        if step == 5:
            engine.submit(c)
        for rec in engine.step():
            if rec.finished:
                finals[rec.request_id] = (rec.gen_ids.tolist(), rec.nfe)
        if len(finals) == 3:
            break
    for r in (a, b, c):
        assert finals[r.request_id] == solo(f64, r.prompt_ids, r.settings)
    assert engine.active_count == 0


def test_max_batch_size_queues_the_rest(f64):
    requests = [DecodeRequest(f"r{i}", PROMPTS[i % 3], MIXED[0]) for i in range(5)]
    engine = Engine(f64, max_batch_size=2)
    for r in requests:
        engine.submit(r)
    engine.step()
    assert engine.active_count == 2 and engine.pending_count == 3
    finals = {rec.request_id: rec.gen_ids.tolist() for rec in engine.stream() if rec.finished}
    assert set(finals) == {r.request_id for r in requests}
    assert finals["r0"] == finals["r3"]  # same prompt and settings


def test_same_seed_same_output_and_other_seed_differs(f64):
    s = DecodeSettings(gen_length=16, block_length=8, steps=8, temperature=1.0, seed=7)
    first, second = solo(f64, PROMPTS[0], s), solo(f64, PROMPTS[0], s)
    other = solo(f64, PROMPTS[0], s.with_(seed=8))
    assert first == second
    assert other != first


def test_cancel_removes_only_that_request(f64):
    engine = Engine(f64)
    keep = DecodeRequest("keep", PROMPTS[0], MIXED[0])
    drop = DecodeRequest("drop", PROMPTS[1], MIXED[0])
    engine.submit(keep)
    engine.submit(drop)
    engine.step()
    engine.cancel("drop")
    records = engine.step()
    by_id = {r.request_id: r for r in records}
    assert by_id["drop"].finish == "cancelled"
    assert engine.active_count == 1
    rest = [rec for rec in engine.stream() if rec.finished]
    assert rest[0].request_id == "keep"
    assert rest[0].gen_ids.tolist() == solo(f64, keep.prompt_ids, keep.settings)[0]


def fail_when(predicate, error: Exception):
    """A fault hook that raises `error` whenever `predicate(row ids of the step)` holds."""
    def hook(ids):
        if predicate(ids):
            raise error
    return hook


def assert_batch_mates_unchanged(f64, finals, requests, failed=()):
    """Every request not in `failed` completed with exactly its solo answer."""
    for r in requests:
        if r.request_id not in failed:
            assert finals[r.request_id].finish == "completed"
            assert finals[r.request_id].gen_ids.tolist() == solo(f64, r.prompt_ids, r.settings)[0]


def test_a_request_whose_step_always_fails_fails_alone(f64):
    engine = Engine(f64)
    engine.fault_hook = fail_when(lambda ids: "bad" in ids, RuntimeError("injected fault"))
    requests = [DecodeRequest(f"r{i}", PROMPTS[i % 3], MIXED[i]) for i in range(4)]
    requests.insert(1, DecodeRequest("bad", PROMPTS[0], MIXED[0]))
    finals = {r.request_id: r for r in engine.stream(requests) if r.finished}
    assert finals["bad"].finish == "error" and "injected fault" in finals["bad"].error
    assert finals["bad"].error_kind == "step_failed"
    assert_batch_mates_unchanged(f64, finals, requests, failed={"bad"})


def test_a_failing_step_of_a_lone_request_fails_it_and_the_engine_goes_on(f64):
    engine = Engine(f64)
    engine.fault_hook = fail_when(lambda ids: "bad" in ids, RuntimeError("injected fault"))
    engine.submit(DecodeRequest("bad", PROMPTS[0], MIXED[0]))
    records = engine.step()
    assert [r.finish for r in records] == ["error"] and "injected fault" in records[0].error
    assert engine.active_count == 0
    good = [r for r in engine.stream([DecodeRequest("good", PROMPTS[0], MIXED[0])]) if r.finished]
    assert good[0].finish == "completed"


def test_out_of_memory_splits_the_batch_and_nothing_changes(f64):
    requests = [DecodeRequest(f"r{i}", PROMPTS[i % 3], s) for i, s in enumerate(MIXED)]
    engine = Engine(f64)
    engine.fault_hook = fail_when(lambda ids: len(ids) > 2, torch.OutOfMemoryError("injected: too many rows"))
    finals = {r.request_id: r for r in engine.stream(requests) if r.finished}
    assert engine.batch_cap <= 2
    assert_batch_mates_unchanged(f64, finals, requests)


def test_a_row_that_never_fits_fails_alone(f64):
    engine = Engine(f64)
    engine.fault_hook = fail_when(lambda ids: "huge" in ids, torch.OutOfMemoryError("injected"))
    requests = [DecodeRequest("huge", PROMPTS[0], MIXED[0]), DecodeRequest("ok", PROMPTS[1], MIXED[1])]
    finals = {r.request_id: r for r in engine.stream(requests) if r.finished}
    assert finals["huge"].finish == "error" and "out of memory" in finals["huge"].error
    assert finals["huge"].error_kind == "out_of_memory"
    assert_batch_mates_unchanged(f64, finals, requests, failed={"huge"})
