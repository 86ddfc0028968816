"""`threshold_stable`: threshold unmasking that only takes a candidate the previous step proposed
too, so EvoToken does not commit early to a token it would still revise."""

from __future__ import annotations

import pytest

from evotoken_core.decoding import DecodeRequest, DecodeSettings, TokenState
from evotoken_core.engine import Engine
from evotoken_core.model import load_model

HIDDEN = (int(TokenState.MASKED), int(TokenState.SOFT))
PROMPTS = [[5, 17, 42, 8, 99], [7, 3, 120], [64, 250, 31, 9]]


@pytest.fixture(scope="module")
def f64(tiny_checkpoint):
    return load_model(tiny_checkpoint, dtype="float64", device="cpu")


def _records(loaded, prompt, settings):
    return [r for r in Engine(loaded).stream([DecodeRequest("a", prompt, settings, want_steps=True)])
            if not r.finished]


@pytest.mark.parametrize("decoding", ["evotoken", "hard_mask"])
def test_a_threshold_passes_only_candidates_the_previous_step_proposed(f64, decoding):
    s = DecodeSettings(gen_length=24, block_length=8, steps=24, threshold=0.02, threshold_stable=True,
                       decoding=decoding, early_end=False)
    parallel = 0
    for prompt in PROMPTS:
        records = _records(f64, prompt, s)
        for before, now in zip(records, records[1:]):
            new = [p for p in range(24) if before.states[p] in HIDDEN and now.states[p] not in HIDDEN]
            assert new, "every step decodes at least the most confident position"
            unstable = [p for p in new if int(before.top_ids[p, 0]) != int(now.gen_ids[p])]
            assert len(unstable) <= 1, (now.step, new, unstable)
            parallel += len(new) > 1
    assert parallel > 0, "with a low threshold, stable candidates are decoded several at a time"


def test_stable_threshold_rows_batch_like_solo_and_others_are_unchanged(f64):
    shapes = [dict(gen_length=24, block_length=8, steps=24), dict(gen_length=16, block_length=4, steps=16)]
    requests = []
    for i in range(8):
        extra = dict(threshold=0.05, threshold_stable=bool(i % 2)) if i % 4 else {}
        s = DecodeSettings(decoding=("evotoken", "hard_mask")[i // 4], **shapes[i % 2], **extra)
        requests.append(DecodeRequest(f"r{i}", PROMPTS[i % 3], s))
    batched = {r.request_id: r for r in Engine(f64).stream(requests) if r.finished}
    for r in requests:
        alone = [x for x in Engine(f64).stream([r]) if x.finished][0]
        assert batched[r.request_id].gen_ids.tolist() == alone.gen_ids.tolist()


def test_without_a_threshold_the_flag_changes_nothing(f64):
    s = DecodeSettings(gen_length=24, block_length=8, steps=12, early_end=False)
    plain = _records(f64, PROMPTS[0], s)[-1]
    flagged = _records(f64, PROMPTS[0], s.with_(threshold_stable=True))[-1]
    assert plain.gen_ids.tolist() == flagged.gen_ids.tolist()
