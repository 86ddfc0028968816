"""SIGTERM on a real `evotoken serve` process: drain, then exit 0.

After the signal the server keeps its port open and answers new requests (and /ready) with
503, so a load balancer moves traffic away; the requests already in flight finish within
`--shutdown-grace` seconds, and those still running after it end with a 503 (an error frame
and `[DONE]` on a stream), never with a cut connection. Then the process exits 0. (The grace
running out is tested in-process, on `server.shutdown.drain`, in test_reliability_faults.py.)
"""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import pytest

from benchmarks.http_load import ServerProcess

pytestmark = pytest.mark.timeout(120)

# 48 refinement steps in one block (so no early end): about a second on the tiny model, long
# enough to still be running while the checks after the signal (a few loopback requests) run.
LONG = {"model": "tiny", "prompt": "Hi", "max_tokens": 48, "block_length": 48, "steps": 48}


def _stream(url: str, body: dict, out: dict) -> None:
    try:
        with httpx.stream("POST", url + "/v1/completions", json={**body, "stream": True}, timeout=60) as r:
            out["status"] = r.status_code
            out["frames"] = [line[len("data: "):] if line == "data: [DONE]" else json.loads(line[len("data: "):])
                             for line in r.iter_lines() if line.startswith("data: ")]
    except Exception as error:  # noqa: BLE001 - the test asserts on it
        out["error"] = repr(error)


def _post(url: str, body: dict, out: dict) -> None:
    try:
        r = httpx.post(url + "/v1/completions", json=body, timeout=60)
        out["status"], out["body"] = r.status_code, r.json()
    except Exception as error:  # noqa: BLE001
        out["error"] = repr(error)


def _in_flight(url: str) -> tuple[dict, dict, list[threading.Thread]]:
    """A streamed and a non-streamed long request, both running once this returns."""
    streamed, plain = {}, {}
    threads = [threading.Thread(target=_stream, args=(url, LONG, streamed)),
               threading.Thread(target=_post, args=(url, LONG, plain))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while _gauge(url, "evotoken_active_rows") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gauge(url, "evotoken_active_rows") == 2, "both requests should be running"
    return streamed, plain, threads


def _gauge(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} is not in /metrics")


def _serve(checkpoint, grace: float) -> ServerProcess:
    """`evotoken serve` as a subprocess on a free loopback port, ready when entered."""
    return ServerProcess(str(checkpoint), ["--served-model-name", "tiny", "--shutdown-grace", str(grace),
                                           "--max-batch-size", "4"])


def test_sigterm_refuses_new_work_finishes_in_flight_and_exits_0(tiny_checkpoint):
    with _serve(tiny_checkpoint, grace=60) as server:
        url = f"http://127.0.0.1:{server.port}"
        streamed, plain, threads = _in_flight(url)
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while (ready := httpx.get(url + "/ready", timeout=10)).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        refused = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "Hi", "max_tokens": 4},
                             timeout=10)
        still_running = any(t.is_alive() for t in threads)
        for t in threads:
            t.join(60)
        code = server.proc.wait(30)
    assert still_running, "the in-flight requests ended before the checks; make them longer"
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "service_unavailable"
    assert "shutting down" in refused.json()["error"]["message"]
    assert ready.status_code == 503
    assert plain.get("status") == 200, plain
    assert plain["body"]["choices"][0]["finish_reason"] in ("stop", "length")
    frames = streamed.get("frames")
    assert streamed.get("status") == 200 and frames, streamed
    assert frames[-1] == "[DONE]" and frames.count("[DONE]") == 1
    assert not any("error" in f for f in frames[:-1] if isinstance(f, dict))
    assert [c["finish_reason"] for f in frames[:-1] for c in f["choices"] if c["finish_reason"]] in (["stop"], ["length"])
    assert code == 0
