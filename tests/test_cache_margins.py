"""`benchmarks.cache_margins` on a tiny random checkpoint: both quantities are measured on
every cached step of an exactly decoded answer."""

from __future__ import annotations

import json

from benchmarks.cache_margins import main


def test_every_cached_step_gets_an_error_and_a_margin(tiny_checkpoint, capsys, restore_threads):
    code = main(["--model", str(tiny_checkpoint), "--task", "arith", "--limit", "2", "--device", "cpu",
                 "--gen-length", "16", "--block-length", "8", "--steps", "8", "--threads", "1",
                 "--decoding", "evotoken,hard_mask", "--json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["mode"] for r in rows] == ["evotoken", "hard_mask"]
    for r in rows:
        # 2 blocks of 4 steps: hard-mask reads the cache at steps 2-4 of a block, EvoToken
        # (which settles the cache at a block's second step) at steps 3-4
        per_block = 3 if r["mode"] == "hard_mask" else 2
        assert r["items"] == 2 and r["cached_steps"] <= 2 * 2 * per_block and r["cached_steps"] > 0
        assert 0 <= r["margin_below_error"] <= 1
        for key in ("error", "margin"):
            q = [r[key][f"p{p}"] for p in (10, 25, 50, 75, 90)]
            assert q == sorted(q) and q[0] >= 0
        assert r["error"]["p90"] > 0  # a one-step-stale cache is not exact
