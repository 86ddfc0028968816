"""Paired statistics of two runs on the same items, on cases small enough to work by hand."""

from __future__ import annotations

import json
import math

import pytest

from evotoken_core.eval.paired import bootstrap_ci, compare, compare_files, main, mcnemar_exact


@pytest.mark.parametrize("b,c,expected", [
    (0, 0, 1.0),                                   # no discordant item: no evidence
    (1, 1, 1.0),                                   # P(1 of 2) = 1/2 is the likeliest outcome
    (5, 0, 2 / 32),                                # both tails: 5/5 and 0/5
    (0, 5, 2 / 32),
    (10, 2, 2 * (1 + 12 + 66) / 4096),             # 2 * P(X <= 2), X ~ Bin(12, 1/2)
    (3, 4, 1.0),                                   # 7 pairs, 3 vs 4: every outcome is as likely or less
])
def test_exact_mcnemar_by_hand(b, c, expected):
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def test_exact_mcnemar_rejects_negative_counts():
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_compare_counts_the_four_cells_and_the_difference():
    a = [True, True, False, False, True]
    b = [True, False, True, False, False]
    r = compare(a, b, ["x", "y", "z", "w", "v"], ["x", "q", "z", "w", "u"], ["1", "2", "3", None, "5"],
                ["1", "9", "3", None, "6"])
    assert (r.n, r.both_right, r.only_a, r.only_b, r.both_wrong) == (5, 1, 2, 1, 1)
    assert r.accuracy_a == pytest.approx(0.6) and r.accuracy_b == pytest.approx(0.4)
    assert r.difference == pytest.approx(0.2)
    assert r.mcnemar_p == pytest.approx(1.0)      # 2 vs 1 of 3 pairs
    assert r.same_output == 3                     # x, z, w
    assert r.same_extracted == 2                  # "1" and "3"; two missing answers are not "the same"
    assert r.ci_low <= r.difference <= r.ci_high
    assert "exact McNemar p = 1" in r.line()


def test_bootstrap_interval_degenerates_where_it_must():
    assert bootstrap_ci([True] * 6, [True] * 6, resamples=200) == (0.0, 0.0)
    assert bootstrap_ci([True] * 6, [False] * 6, resamples=200) == (1.0, 1.0)
    lo, hi = bootstrap_ci([True] * 30 + [False] * 10, [True] * 20 + [False] * 20, resamples=2000)
    assert -1 <= lo < 0.25 < hi <= 1                # the point estimate, 0.25, is inside
    assert (lo, hi) == bootstrap_ci([True] * 30 + [False] * 10, [True] * 20 + [False] * 20, resamples=2000)


def test_bootstrap_interval_width_is_about_that_of_the_normal_approximation():
    """40 items, 10 discordant all for A: sd of the paired difference ~ sqrt(p(1-p)/n)."""
    a, b = [True] * 40, [True] * 30 + [False] * 10
    lo, hi = bootstrap_ci(a, b, resamples=4000)
    sd = math.sqrt(0.25 * 0.75 / 40)
    assert abs((hi - lo) - 2 * 1.96 * sd) < 0.05


def test_compare_rejects_unpaired_lists():
    with pytest.raises(ValueError, match="equally long"):
        compare([True], [True, False])
    with pytest.raises(ValueError, match="non-empty"):
        compare([], [])


def records(mode, alpha, verdicts, task="arith", outputs=None):
    return [{"task": task, "index": i, "mode": mode, "alpha": alpha, "correct": v,
             "output": (outputs or [f"o{i}"] * len(verdicts))[i], "extracted": str(i)}
            for i, v in enumerate(verdicts)]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_files_from_evotoken_eval_are_matched_on_task_and_index(tmp_path, capsys):
    # one file with two runs (as `evotoken eval --decoding hard_mask,evotoken` writes), one with one
    both = write(tmp_path / "both.jsonl", records("hard_mask", None, [True, True, False, False])
                 + records("evotoken", 0.7, [True, False, False, True]))
    other = write(tmp_path / "other.jsonl", list(reversed(records("evotoken", 0.7, [False, False, False, True]))))
    r = compare_files(both, both, {"mode": "evotoken", "alpha": 0.7}, {"mode": "hard_mask"})
    assert (r.only_a, r.only_b, r.both_right, r.n) == (1, 1, 1, 4)
    r = compare_files(both, other, {"mode": "evotoken"}, {})
    assert (r.only_a, r.only_b, r.both_right) == (1, 0, 1)
    assert main([str(both), str(other), "--a-mode", "evotoken", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["only_a"] == 1


def test_an_ambiguous_or_empty_selection_is_a_clear_error(tmp_path, capsys):
    both = write(tmp_path / "both.jsonl", records("hard_mask", None, [True, False])
                 + records("evotoken", 0.7, [True, True]))
    with pytest.raises(ValueError, match="more than one run"):
        compare_files(both, both)
    with pytest.raises(SystemExit) as exit_info:
        main([str(both), str(both), "--a-mode", "evotoken", "--b-mode", "nope"])
    assert exit_info.value.code == 2
    assert "no records match" in capsys.readouterr().err
