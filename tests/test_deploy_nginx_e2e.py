"""End to end through the shipped balancer: Debian's nginx, running the config generated from
deploy/nginx/evotoken.conf (see test_deploy_nginx.py), in front of two `evotoken serve`
replicas (tiny model, CPU) on loopback.

The tests share one running stack and run in file order; the failover test kills a replica
and comes last.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from test_deploy_nginx import NGINX, REPO, needs_nginx, nginx_test, free_port, render_config

HEALTHCHECK = REPO / "deploy" / "docker" / "healthcheck.py"

def serve_command(model: Path, port: int) -> list[str]:
    args = ["--model", str(model), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
            "--log-level", "warning"]
    console = Path(sys.executable).parent / "evotoken"
    if console.exists() and importlib.util.find_spec("evotoken_core.cli") is not None:
        return [str(console), "serve", *args]  # what the image's ENTRYPOINT runs
    return [sys.executable, "-m", "server", *args]  # the serve command alone, from a checkout


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} not ready after {timeout} s:\n{log.read_text()[-3000:]}")


class Stack:
    """Two replicas and nginx, as child processes that `stop` always reaps."""

    def __init__(self, directory: Path, model: Path):
        self.directory, self.model = directory, model
        self.replica_ports = [free_port(), free_port()]
        self.port = free_port()
        self.replicas: list[subprocess.Popen] = []
        self.nginx: subprocess.Popen | None = None
        self.clients: list[httpx.Client] = []

    def start(self) -> None:
        directory, model = self.directory, self.model
        # Two replicas on two shared cores: one thread each keeps them from fighting.
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVOTOKEN_")}
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        for i, port in enumerate(self.replica_ports):
            log = directory / f"replica{i}.log"
            self.replicas.append(subprocess.Popen(serve_command(model, port), env=env, cwd=directory,
                                                  stdout=log.open("wb"), stderr=subprocess.STDOUT))
        config = render_config(directory, self.port, self.replica_ports)
        assert nginx_test(config).returncode == 0
        self.nginx = subprocess.Popen([NGINX, "-p", str(directory), "-c", str(config),
                                       "-e", str(directory / "error.log")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i, port in enumerate(self.replica_ports):
            wait_ready(f"http://127.0.0.1:{port}/ready", self.replicas[i], directory / f"replica{i}.log")
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=60)
        self.direct = [httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=60) for p in self.replica_ports]
        self.clients = [self.client, *self.direct]
        self.model_id = self.direct[0].get("/v1/models").json()["data"][0]["id"]
        self.addresses = [f"127.0.0.1:{p}" for p in self.replica_ports]

    def access_log(self, *request_ids: str) -> dict[str, dict]:
        """nginx's JSON access log by request id. nginx writes a line just after the last byte
        went out, so a client can be a moment ahead of it: wait for the ids we need."""
        deadline = time.monotonic() + 10
        while True:
            lines = (self.directory / "access.log").read_text().splitlines()
            log = {entry["request_id"]: entry for entry in map(json.loads, lines)}
            if set(request_ids) <= log.keys() or time.monotonic() > deadline:
                return log
            time.sleep(0.05)

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        processes = [*self.replicas, *([self.nginx] if self.nginx else [])]
        for process in processes:
            if process.poll() is None:
                # nginx: SIGQUIT is its graceful stop; the replicas drain on SIGTERM.
                process.send_signal(signal.SIGQUIT if process is self.nginx else signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_checkpoint):
    if NGINX is None:
        pytest.fail("nginx is not installed (apt-get install nginx)")
    running = Stack(tmp_path_factory.mktemp("nginx-stack"), tiny_checkpoint)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def completion(**extra) -> dict:
    return {"prompt": "What is 12 + 30?", "max_tokens": 16, "seed": 7, **extra}


def post(stack: Stack, client: httpx.Client, request_id: str | None = None, **body) -> httpx.Response:
    headers = {"x-request-id": request_id} if request_id else {}
    return client.post("/v1/completions", json={"model": stack.model_id, **completion(**body)},
                       headers=headers)


@needs_nginx
def test_non_streaming_passes_through_with_the_request_id(stack):
    response = post(stack, stack.client, "e2e-plain-1")
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "e2e-plain-1"  # the replica saw ours
    assert response.headers["x-accel-buffering"] == "no"
    direct = post(stack, stack.direct[0])
    assert response.json()["choices"] == direct.json()["choices"]  # same seed, same weights
    assert response.json()["usage"]["completion_tokens"] == 16

    minted = post(stack, stack.client)  # no id from the client: nginx makes one
    assert minted.status_code == 200
    request_id = minted.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    log = stack.access_log(request_id, "e2e-plain-1")
    assert log[request_id]["upstream_addr"] in stack.addresses
    assert log["e2e-plain-1"]["status"] == 200


def read_stream(client: httpx.Client, stack: Stack, **body) -> tuple[list[dict], list[tuple[float, int]]]:
    """All data frames of one SSE response, and (arrival time, step frames) per network read."""
    payload = {"model": stack.model_id, **completion(stream=True, **body)}
    frames, reads, pending = [], [], b""
    with client.stream("POST", "/v1/completions", json=payload) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for raw in response.iter_raw():
            arrived = time.monotonic()
            pending += raw
            *complete, pending = pending.split(b"\n\n")
            data = [line[5:].strip() for event in complete for line in event.split(b"\n")
                    if line.startswith(b"data:")]
            parsed = [json.loads(d) for d in data if d != b"[DONE]"]
            frames += parsed + ([{"done": True}] if b"[DONE]" in data else [])
            steps = sum(1 for f in parsed if f.get("choices") and "evotoken" in f["choices"][0])
            if steps:
                reads.append((arrived, steps))
    return frames, reads


@needs_nginx
def test_stream_steps_arrive_unbuffered_one_at_a_time(stack):
    body = dict(max_tokens=32, steps=32, block_length=8, stream_steps=True)
    direct_frames, direct_reads = read_stream(stack.direct[0], stack, **body)
    proxied_frames, proxied_reads = read_stream(stack.client, stack, **body)

    def trajectory(frames):
        return [(f["choices"][0]["evotoken"]["step"], f["choices"][0]["evotoken"]["draft"])
                for f in frames if f.get("choices") and "evotoken" in f["choices"][0]]

    steps = trajectory(proxied_frames)
    assert len(steps) == 32 and steps == trajectory(direct_frames)  # nothing lost, merged or changed
    assert proxied_frames[-1] == {"done": True}
    text = "".join(f["choices"][0]["text"] for f in proxied_frames if f.get("choices"))
    assert text == "".join(f["choices"][0]["text"] for f in direct_frames if f.get("choices"))

    # Unbuffered: steps reach the client in about as many separate reads, spread over about
    # as much time, as on a direct connection. A buffering proxy delivers them in a few
    # large reads at the end of the generation.
    def spread(reads):
        return reads[-1][0] - reads[0][0]

    assert len(proxied_reads) >= max(8, 0.5 * len(direct_reads)), (proxied_reads, direct_reads)
    assert spread(proxied_reads) >= 0.3 * spread(direct_reads), (proxied_reads, direct_reads)
    alone = sum(1 for _, count in proxied_reads if count == 1)
    assert alone >= len(steps) / 3, proxied_reads


@needs_nginx
def test_requests_spread_over_both_replicas(stack):
    ids = [f"e2e-spread-{i}" for i in range(8)]
    for request_id in ids:
        assert post(stack, stack.client, request_id, max_tokens=4).status_code == 200
    log = stack.access_log(*ids)
    served = [log[request_id]["upstream_addr"] for request_id in ids]
    for address in stack.addresses:
        assert served.count(address) >= 2, served


@needs_nginx
def test_balancer_hides_metrics_and_replicas_expose_what_the_alerts_use(stack):
    assert stack.client.get("/metrics").status_code == 404
    assert stack.client.get("/nginx-health").status_code == 200
    assert stack.client.get("/ready").status_code == 200
    # The alerts and the operator guide's queries must name metrics the server really has.
    used = set()
    for path in (REPO / "deploy" / "prometheus" / "alerts.yml", REPO / "deploy" / "README.md"):
        used |= set(re.findall(r"\b(evotoken_\w+)", path.read_text()))
    assert {"evotoken_requests_total", "evotoken_queue_depth", "evotoken_step_seconds_bucket",
            "evotoken_active_rows", "evotoken_time_to_first_text_seconds_bucket"} <= used
    for client in stack.direct:
        exposition = client.get("/metrics").text
        exposed = set(re.findall(r"^(evotoken_\w+)", exposition, re.M))
        assert used <= exposed, f"deploy/ queries metrics the server does not expose: {used - exposed}"


def run_probe(port: int) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVOTOKEN_")}
    return subprocess.run([sys.executable, str(HEALTHCHECK)], env={**env, "EVOTOKEN_PORT": str(port)},
                          capture_output=True, timeout=20).returncode


@needs_nginx
def test_a_dead_replica_is_routed_around(stack):
    """Last in this module: it kills replica 0."""
    assert [run_probe(port) for port in stack.replica_ports] == [0, 0]
    stack.replicas[0].kill()
    stack.replicas[0].wait(timeout=10)
    assert run_probe(stack.replica_ports[0]) == 1

    ids = [f"e2e-failover-{i}" for i in range(6)]
    for request_id in ids:
        response = post(stack, stack.client, request_id, max_tokens=4)
        assert response.status_code == 200, response.text
    frames, _ = read_stream(stack.client, stack, max_tokens=8)
    assert frames[-1] == {"done": True}

    log = stack.access_log(*ids)
    dead, alive = stack.addresses
    tried = [log[request_id]["upstream_addr"] for request_id in ids]
    assert all(entry.split(", ")[-1] == alive for entry in tried), tried
    # Round robin among equals sends some of them to the dead replica first: those must have
    # been retried on the live one, invisibly to the client.
    assert any(entry == f"{dead}, {alive}" for entry in tried), tried
