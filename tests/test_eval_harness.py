"""`evotoken eval` end to end on a tiny random checkpoint, plus the scoring bookkeeping."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from evotoken_core.decoding import DecodeSettings
from evotoken_core.eval import load_items, shipped_test_set
from evotoken_core.eval.cli import main
from evotoken_core.eval.generation import Generation
from evotoken_core.eval.harness import evaluate_task, plan_runs

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices on a shared 2-core box: one intra-op thread is ~100x faster than two
    spinning against other processes. Restored afterwards so other modules are unaffected."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FAST = ["--gen-length", "8", "--block-length", "4", "--steps", "4", "--device", "cpu", "--no-progress"]


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([*args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def sweep(tiny_checkpoint, tmp_path_factory):
    """One real sweep: 2 tasks x (evotoken at 2 alphas + hard_mask) x 3 items, with --out."""
    out = tmp_path_factory.mktemp("eval_out")
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["--model", str(tiny_checkpoint), "--task", "arith,countdown", "--limit", "3",
                     "--decoding", "evotoken,hard_mask", "--alpha-soft-mask", "0.5,0.9", "--json",
                     "--out", str(out), "--batch-size", "4", *FAST])
    return code, buffer.getvalue(), out


def test_json_report_has_every_task_mode_and_alpha(sweep):
    code, stdout, _ = sweep
    assert code == 0
    report = json.loads(stdout)  # exactly one JSON object on stdout
    results = report["results"]
    assert set(results) == {"arith", "countdown"}
    for task in results:
        assert set(results[task]) == {"evotoken", "hard_mask"}
        assert set(results[task]["evotoken"]) == {"0.5", "0.9"}
        assert set(results[task]["hard_mask"]) == {"none"}
        for cell in [*results[task]["evotoken"].values(), *results[task]["hard_mask"].values()]:
            assert cell["n"] == 3 and 0.0 <= cell["accuracy"] <= 1.0
            assert cell["accuracy"] == cell["correct"] / 3
            assert 1 <= cell["mean_nfe"] <= 4
    assert report["settings"]["steps"] == 4 and report["alphas"] == [0.5, 0.9]


def test_out_writes_every_generation_and_a_png(sweep):
    code, stdout, out = sweep
    lines = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * 3 * 3
    assert {(r["task"], r["mode"], r["alpha"]) for r in lines} == {
        (t, m, a) for t in ("arith", "countdown") for m, a in (("evotoken", 0.5), ("evotoken", 0.9), ("hard_mask", None))}
    assert (out / "accuracy_vs_alpha.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(stdout)
    assert json.loads((out / "results.json").read_text())["results"] == report["results"]
    # mean_nfe is the mean of the per-answer forward passes that were saved
    for task in ("arith", "countdown"):
        mine = [r for r in lines if r["task"] == task and r["mode"] == "evotoken" and r["alpha"] == 0.5]
        assert report["results"][task]["evotoken"]["0.5"]["mean_nfe"] == sum(r["nfe"] for r in mine) / 3
        assert [r["index"] for r in mine] == [0, 1, 2]
        assert all(r["finish"] == "completed" and isinstance(r["output"], str) for r in mine)


def test_table_is_printed_without_json(tiny_checkpoint, capsys):
    code, out, _ = run_cli(capsys, "--model", str(tiny_checkpoint), "--task", "countdown", "--limit", "2", *FAST)
    assert code == 0
    header, rule, row = out.strip().splitlines()
    assert header.split() == ["task", "mode", "alpha", "accuracy", "95%_CI", "correct", "n", "mean_nfe", "errors"]
    assert row.split()[:3] == ["countdown", "evotoken", "0.7"] and row.split()[6] == "2"
    low, high = (float(x) for x in row.split()[4].strip("[]").split(","))
    assert 0 <= low <= float(row.split()[3].rstrip("%")) <= high <= 100


class ScriptedGenerator:
    """A backend that answers from a script, to pin the harness's counting (not a model)."""

    def __init__(self, answers):
        self.answers = answers
        self.jobs = []

    def generate(self, jobs, progress):
        self.jobs += jobs
        progress(len(jobs))
        return [Generation(j.job_id, self.answers(j), 7, "completed") for j in jobs]


def test_scorer_correct_answers_are_counted():
    items = load_items("countdown", shipped_test_set("countdown"), limit=4)
    from evotoken_core.data.countdown import solve

    def answer(job):
        if job.item.index % 2:
            return "<answer>\\boxed{1 + 1}</answer>"
        expr = solve(list(job.item.numbers), int(job.item.reference))
        return f"<reasoning>...</reasoning>\n<answer>\\boxed{{{expr}}}</answer>"

    gen = ScriptedGenerator(answer)
    runs = plan_runs(["evotoken", "hard_mask"], [0.6, 0.8])
    results = evaluate_task("countdown", items, runs, DecodeSettings(seed=10), gen)
    assert [(r.run.mode, r.run.alpha) for r in results] == [("evotoken", 0.6), ("evotoken", 0.8), ("hard_mask", None)]
    for r in results:
        assert r.n == 4 and r.correct == 2 and r.accuracy == 0.5 and r.mean_nfe == 7
        assert [rec["correct"] for rec in r.records] == [True, False, True, False]
    # each item keeps its seed across modes; alphas and modes reach the settings
    seeds = {(j.job_id.split("/")[1], j.item.index): j.settings.seed for j in gen.jobs}
    assert seeds[("0", 3)] == seeds[("2", 3)] == 13
    assert {j.settings.alpha_soft_mask for j in gen.jobs if j.settings.decoding == "evotoken"} == {0.6, 0.8}


class _ChatHandler(BaseHTTPRequestHandler):
    """A minimal OpenAI-shaped endpoint that records requests and answers 3 + 4 = 7."""

    seen: list[dict] = []

    def do_GET(self):  # the model entry lists its defaults the way this project's server does
        defaults = {"max_tokens": 12, "block_length": 6, "steps": 4, "steps_ratio": 0.34}
        self._send({"object": "list", "data": [{"id": "tiny", "object": "model", "created": 0, "owned_by": "x",
                                                "evotoken_defaults": defaults}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        self._send({"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "<answer>\\boxed{7}</answer>"}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2, "nfe": 5}})

    def _send(self, obj):
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_base_url_sends_the_diffusion_settings_and_scores_the_replies(tmp_path, capsys):
    pytest.importorskip("openai")
    data = tmp_path / "gsm.jsonl"
    data.write_text(json.dumps({"question": "What is 3 + 4?", "answer": "3 + 4 = 7\n#### 7"}) + "\n"
                    + json.dumps({"question": "What is 2 + 2?", "answer": "#### 4"}) + "\n")
    server = HTTPServer(("127.0.0.1", 0), _ChatHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code, out, err = run_cli(capsys, "--task", "gsm8k", "--data", str(data), "--json",
                                 "--base-url", f"http://127.0.0.1:{server.server_port}/v1",
                                 "--decoding", "hard_mask", "--alpha-soft-mask", "0.6", *FAST)
    finally:
        server.shutdown()
    assert code == 0, err
    cell = json.loads(out)["results"]["gsm8k"]["hard_mask"]["none"]
    assert cell.pop("ci95") == pytest.approx([0.0945, 0.9055], abs=1e-4)  # Wilson, 1 of 2
    assert cell == {"accuracy": 0.5, "n": 2, "correct": 1, "mean_nfe": 5.0, "errors": 0}
    body = _ChatHandler.seen[-1]
    assert body["model"] == "tiny" and body["max_tokens"] == 8 and body["decoding"] == "hard_mask"
    assert body["steps"] == 4 and body["block_length"] == 4 and body["k_soft"] == 3
    assert body["messages"][0]["content"].startswith("What is")
    assert "\\boxed{}" in body["messages"][0]["content"]


def test_base_url_without_canvas_flags_decodes_with_the_servers_defaults(tmp_path, capsys):
    pytest.importorskip("openai")
    data = tmp_path / "gsm.jsonl"
    data.write_text(json.dumps({"question": "What is 3 + 4?", "answer": "#### 7"}) + "\n")
    server = HTTPServer(("127.0.0.1", 0), _ChatHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code, out, err = run_cli(capsys, "--task", "gsm8k", "--data", str(data), "--json", "--no-progress",
                                 "--base-url", f"http://127.0.0.1:{server.server_port}/v1")
    finally:
        server.shutdown()
    assert code == 0, err
    body = _ChatHandler.seen[-1]  # 12 tokens in blocks of 6, 2 steps a block (0.34 of 6, rounded down)
    assert (body["max_tokens"], body["block_length"], body["steps"]) == (12, 6, 4)
    assert json.loads(out)["settings"]["gen_length"] == 12


@pytest.mark.parametrize("args, message", [
    (["--task", "gsm8k"], "has no shipped test set"),
    (["--task", "arith", "--gen-length", "10", "--block-length", "4"], "--block-length: gen_length 10"),
    (["--task", "arith,countdown", "--data", "x.jsonl"], "give one per task"),
    (["--task", "arith", "--model", "/nonexistent/model"], "does not exist"),
    (["--task", "arith", "--limit", "0"], "--limit must be at least 1"),
])
def test_command_line_errors_are_reported_plainly(capsys, args, message):
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == "" and message in err


def test_the_wilson_interval_matches_its_closed_forms():
    from evotoken_core.eval.harness import wilson_interval

    z2 = 1.959964 ** 2
    assert wilson_interval(0, 20) == pytest.approx((0.0, z2 / (20 + z2)))  # no successes: [0, z²/(n+z²)]
    assert wilson_interval(20, 20) == pytest.approx((20 / (20 + z2), 1.0))
    low, high = wilson_interval(273, 300)  # 91.0 %: asymmetric, pulled toward 1/2
    assert low < 0.91 < high and (0.91 - low) > (high - 0.91)
    assert (low, high) == pytest.approx((0.8722, 0.9374), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
