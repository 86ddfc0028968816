"""`evotoken bench`: runs the published loop beside the engine and says whether texts agree."""

from __future__ import annotations

import json

from evotoken_core.cli import main


def test_bench_reports_every_configuration_and_identical_texts(tiny_checkpoint, capsys, tmp_path):
    plot = tmp_path / "bench.png"
    code = main(["bench", "--model", str(tiny_checkpoint), "--requests", "3", "--concurrency", "1,3",
                 "--reference", "--gen-length", "16", "--block-length", "8", "--steps", "8",
                 "--threads", "1", "--json", "--plot", str(plot)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    rows = {(r["name"], r["concurrency"]): r for r in report["rows"]}
    assert set(rows) == {("reference", 1), ("engine", 1), ("engine", 3)}
    assert rows[("reference", 1)]["nfe_per_request"] == 8  # the reference never exits early
    for key in (("engine", 1), ("engine", 3)):
        row = rows[key]
        assert row["same_text_as_reference"] == 3
        assert 0 < row["decode_share"] < 1 and row["ms_per_step"] > 0
        assert row["tokens_per_forward"] * key[1] >= rows[("engine", 1)]["tokens_per_forward"]
    assert report["matmul_gflops"] > 0
    assert plot.stat().st_size > 1000


def test_bench_random_shape_needs_no_checkpoint(capsys):
    code = main(["bench", "--random-shape", "demo", "--requests", "2", "--concurrency", "2",
                 "--gen-length", "8", "--block-length", "8", "--steps", "4", "--threads", "1", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "demo" and report["rows"][0]["requests"] == 2


def test_bench_refuses_to_pair_the_published_loop_with_settings_it_does_not_have(tiny_checkpoint, capsys):
    code = main(["bench", "--model", str(tiny_checkpoint), "--requests", "1", "--concurrency", "1",
                 "--reference", "--gen-length", "16", "--block-length", "8", "--steps", "8",
                 "--threads", "1", "--min-tokens", "4"])
    assert code != 0
    assert "published loop has no min_tokens" in capsys.readouterr().err
