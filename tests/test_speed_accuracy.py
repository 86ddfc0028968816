"""`benchmarks.speed_accuracy` on a tiny random checkpoint: the table's bookkeeping is right."""

from __future__ import annotations

import json

from benchmarks.speed_accuracy import main


def test_rows_compare_each_speed_up_with_exact_decoding(tiny_checkpoint, capsys, tmp_path, restore_threads):
    code = main(["--model", str(tiny_checkpoint), "--task", "arith", "--limit", "3", "--device", "cpu",
                 "--gen-length", "8", "--block-length", "4", "--steps", "4", "--threads", "1",
                 "--decoding", "evotoken,hard_mask", "--thresholds", "0.5,0.9", "--cache-refreshes", "1",
                 "--cache-guards", "1e9", "--no-progress", "--json", "--out", str(tmp_path)])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == json.loads((tmp_path / "speed_accuracy.json").read_text())
    names = ["exact, fixed steps", "exact", "threshold 0.5", "threshold 0.9", "threshold 0.5, stable",
             "threshold 0.9, stable", "prefix cache",
             "prefix cache, refresh 1", "prefix cache, guard 1e+09", "dual cache", "dual cache, refresh 1",
             "dual cache, guard 1e+09",
             "dual cache + threshold 0.5", "dual cache + threshold 0.9"]
    for mode in ("evotoken", "hard_mask"):
        mine = {r["config"]: r for r in rows if r["mode"] == mode}
        assert list(mine) == names
        fixed, exact = mine["exact, fixed steps"], mine["exact"]
        assert fixed["mean_nfe"] == 4 and fixed["speedup"] == 1.0 and fixed["delta_points"] is None
        # early end never changes an answer, and every row is scored against exact decoding
        assert exact["same_as_exact"] == 3 and exact["delta_points"] == 0.0
        assert exact["mcnemar_p"] == 1.0 and exact["ci_points"] == [0.0, 0.0] and exact["discordant"] == [0, 0]
        # refreshing at every step is exact decoding, answer for answer
        for cache in ("prefix", "dual"):
            assert mine[f"{cache} cache, refresh 1"]["same_as_exact"] == 3
            # a guard no step clears recomputes every cached step: exact, one forward more each
            guarded = mine[f"{cache} cache, guard 1e+09"]
            assert guarded["same_as_exact"] == 3 and guarded["mean_nfe"] >= exact["mean_nfe"]
        assert exact["mean_nfe"] <= fixed["mean_nfe"]
        for r in mine.values():
            assert r["n"] == 3 and r["tokens_per_s"] >= 0 and r["s_per_item"] > 0
            if r is not fixed:
                assert 0 <= r["same_as_exact"] <= 3
                assert r["delta_points"] == 100 * (r["accuracy"] - exact["accuracy"])
        # threshold decoding fills at least one position per forward pass (and may take more
        # passes than the fixed schedule when nothing is confident)
        assert 1 <= mine["threshold 0.5"]["mean_nfe"] <= 8


def test_markdown_table_is_printed_without_json(tiny_checkpoint, capsys, restore_threads):
    code = main(["--model", str(tiny_checkpoint), "--task", "arith", "--limit", "2", "--device", "cpu",
                 "--gen-length", "8", "--block-length", "4", "--steps", "4", "--threads", "1",
                 "--decoding", "hard_mask", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("| task | mode | configuration |")
    assert out.count("\n| arith | hard_mask |") == 7  # fixed, exact, threshold 0.9 (plain, stable), prefix, dual, dual + 0.9
