"""The short soak: benchmarks/loadgen.py's clients against a real `evotoken serve` process.

The full run (64 clients, 2 minutes) and its figures are in docs/reliability.md; this one is
small enough for CI and checks the same ledger: nothing lost or duplicated, no 5xx, the
engine idle afterwards, and the process's memory steady.
"""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.http_load import ServerProcess
from benchmarks.load_clients import Problem, _check_raw_stream
from benchmarks.loadgen import main, require_loopback, run_load

pytestmark = pytest.mark.timeout(180)

CLIENTS, SECONDS = 16, 10


def test_sixteen_clients_lose_nothing_and_leave_the_server_idle(tiny_checkpoint):
    with ServerProcess(str(tiny_checkpoint), ["--served-model-name", "tiny", "--max-queue", "128"]) as server:
        report = asyncio.run(run_load(server.base_url, CLIENTS, SECONDS, server_pid=server.proc.pid,
                                      seed=1, disconnect_rate=0.15))
        assert server.proc.poll() is None
    assert report.lost == 0 and report.duplicated == 0, report.problems
    assert report.server_5xx == 0 and report.client_5xx == 0, report.problems
    assert report.counts.get("errored", 0) == 0, report.problems
    assert report.counts["completed"] >= CLIENTS, report
    assert set(report.scenarios) >= {"chat", "completion", "chat_stream", "raw_stream"}, report.scenarios
    assert report.idle_after_s is not None and report.idle_after_s < 5, report
    # the server ended every row it admitted; cancelled rows are the dropped streams
    assert report.rows.get("completed", 0) >= report.counts["completed"]
    assert report.rows.get("error", 0) == 0
    assert report.rss_start_kb and report.rss_growth is not None and report.rss_growth < 0.25, report


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000/v1", "http://192.168.1.10:8000", "http://0.0.0.0:8000",
                                 "http://[::ffff:8.8.8.8]:80", "http://not-a-host.invalid"])
def test_the_load_generator_refuses_anything_but_loopback(url, capsys):
    with pytest.raises(ValueError):
        require_loopback(url)
    assert main(["--base-url", url, "--clients", "1", "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert "loopback" in err or "resolve" in err


def test_loopback_names_are_accepted():
    for url in ("http://127.0.0.1:8000/v1", "http://localhost:8000", "http://[::1]:9000/v1"):
        require_loopback(url)


def _chunk(index: int, finish: str | None = None, cid: str = "cmpl-1") -> dict:
    return {"id": cid, "choices": [{"index": index, "text": "x", "finish_reason": finish}]}


@pytest.mark.parametrize("frames, n, verdict", [
    ([_chunk(0), _chunk(0, "length")], 1, "lost"),                                 # no [DONE]
    ([_chunk(0), "[DONE]"], 1, "lost"),                                            # no finish_reason
    ([_chunk(0, "stop"), _chunk(1, "stop"), "[DONE]"], 3, "lost"),                 # choice 2 missing
    ([_chunk(0, "stop"), _chunk(0, "stop"), "[DONE]"], 1, "duplicated"),          # finished twice
    ([_chunk(0, "stop"), "[DONE]", "[DONE]"], 1, "duplicated"),
    ([_chunk(0), _chunk(0, "stop", cid="cmpl-2"), "[DONE]"], 1, "duplicated"),   # two answers mixed
    ([_chunk(0), {"error": {"message": "boom"}}, "[DONE]"], 1, "lost"),             # an error frame
])
def test_the_ledger_catches_lost_and_duplicated_answers(frames, n, verdict):
    with pytest.raises(Problem, match=f"^{verdict}"):
        _check_raw_stream("raw_stream", frames, n, 1.0)
    whole = [_chunk(0), _chunk(1, "stop"), _chunk(0, "length"), "[DONE]"]
    assert _check_raw_stream("raw_stream", whole, 2, 1.0).result == "completed"
