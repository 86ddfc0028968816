"""Soak test for a running server: N clients for a set time, then a ledger of every answer.

    python -m benchmarks.loadgen --model CKPT --clients 64 --duration 120     # starts a server
    python -m benchmarks.loadgen --tiny ...     # same, on a random 2-layer checkpoint made here
    python -m benchmarks.loadgen --base-url http://127.0.0.1:8000 --server-pid PID

Loopback only: a base URL whose host does not resolve to loopback is refused. Each client
loops until the deadline over a mix of requests (chat and completions through the OpenAI SDK,
raw SSE through httpx with `stream_steps`, n > 1, stop strings) and sometimes drops a stream
midway. Every answer is checked: one finish_reason per choice, every choice present once, a
stream ends in exactly one `[DONE]`, no completion id seen twice. Afterwards the server must
go idle (`evotoken_active_rows` and `evotoken_queue_depth` back to 0). The exit status is 0
only when nothing was lost or duplicated, nothing was a 5xx, the server went idle and its
RSS grew less than `--max-rss-growth`.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import random
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import httpx
import openai

from .load_clients import PROMPTS, STOPS, Client, Outcome, guarded

def tiny_checkpoint(directory: str) -> str:
    """A random 2-layer LLaDA-format checkpoint with a small BPE tokenizer, as the tests use."""
    from evotoken_core.model.random_init import make_random_checkpoint
    from evotoken_core.tokenizer import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(PROMPTS * 40 + STOPS * 40, vocab_size=320)
    return str(make_random_checkpoint(directory, tokenizer, seed=0, init_std=0.15))


def require_loopback(base_url: str) -> None:
    """Raise ValueError unless every address the URL's host resolves to is loopback."""
    host = urlsplit(base_url).hostname
    if not host:
        raise ValueError(f"no host in {base_url!r}")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as error:
        raise ValueError(f"cannot resolve {host!r}: {error}") from None
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise ValueError(f"{base_url} is not a loopback address; this tool only targets 127.0.0.1/::1")


def rss_kb(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def scrape(metrics_text: str) -> dict[str, float]:
    """`name{labels}` -> value for the evotoken_* samples of a Prometheus text page."""
    out = {}
    for line in metrics_text.splitlines():
        if line.startswith("evotoken_"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


@dataclass
class Report:
    clients: int
    duration_s: float
    counts: dict[str, int] = field(default_factory=dict)      # by result
    scenarios: dict[str, int] = field(default_factory=dict)   # by kind of request
    lost: int = 0
    duplicated: int = 0
    server_5xx: int = 0
    client_5xx: int = 0
    p50_s: float | None = None
    p99_s: float | None = None
    requests_per_s: float = 0.0
    completion_tokens_per_s: float = 0.0
    rss_start_kb: int | None = None
    rss_end_kb: int | None = None
    rss_growth: float | None = None
    rss_samples_kb: list[int] = field(default_factory=list)  # every 1/12 of the run: a leak keeps climbing
    idle_after_s: float | None = None   # time for the active and queued rows to reach 0
    rows: dict[str, float] = field(default_factory=dict)  # server-side row outcomes during the run
    problems: list[str] = field(default_factory=list)

    def passed(self, max_rss_growth: float) -> bool:
        """Every request answered whole or cancelled by its client (429s aside), no 5xx, idle, no leak."""
        return (self.lost == 0 and self.duplicated == 0 and self.counts.get("errored", 0) == 0
                and self.server_5xx == 0 and self.client_5xx == 0 and self.idle_after_s is not None
                and (self.rss_growth is None or self.rss_growth < max_rss_growth))


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_load(base_url: str, clients: int, duration: float, *, api_key: str | None = None,
                   server_pid: int | None = None, seed: int = 0, disconnect_rate: float = 0.1,
                   request_timeout: float = 120.0) -> Report:
    """Drive `clients` clients for `duration` seconds against `base_url` (ending in /v1)."""
    require_loopback(base_url)
    root = base_url.removesuffix("/").removesuffix("/v1")
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=2 * clients + 4, max_keepalive_connections=2 * clients)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=request_timeout, limits=limits) as http, \
            httpx.AsyncClient(timeout=request_timeout, limits=limits) as sdk_http:
        sdk = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "none", max_retries=0,
                                 timeout=request_timeout, http_client=sdk_http)
        model = (await http.get("/models")).json()["data"][0]["id"]
        before = scrape((await http.get(root + "/metrics")).text)
        rss_start = rss_kb(server_pid)
        started = time.monotonic()
        deadline = started + duration

        async def user(i: int) -> list[Outcome]:
            client = Client(sdk, http, model, random.Random(seed * 100003 + i), disconnect_rate)
            done = []
            while time.monotonic() < deadline:
                done.append(await guarded(client))
            return done

        samples: list[int] = []

        async def sample_rss() -> None:
            while True:
                await asyncio.sleep(max(1.0, duration / 12))
                value = rss_kb(server_pid)
                if value is not None:
                    samples.append(value)

        sampler = asyncio.create_task(sample_rss())
        outcomes = [o for batch in await asyncio.gather(*(user(i) for i in range(clients))) for o in batch]
        elapsed = time.monotonic() - started
        sampler.cancel()
        idle_after = None
        for _ in range(600):  # up to 30 s for the cancelled rows to leave
            after = scrape((await http.get(root + "/metrics")).text)
            if after.get("evotoken_active_rows", 1) == 0 and after.get("evotoken_queue_depth", 1) == 0:
                idle_after = time.monotonic() - started - elapsed
                break
            await asyncio.sleep(0.05)
        rss_end = rss_kb(server_pid)

    report = Report(clients, round(elapsed, 1), rss_start_kb=rss_start, rss_end_kb=rss_end, idle_after_s=idle_after,
                    rss_samples_kb=samples)
    for o in outcomes:
        report.counts[o.result] = report.counts.get(o.result, 0) + 1
        report.scenarios[o.scenario] = report.scenarios.get(o.scenario, 0) + 1
        if o.problem and o.result == "errored":
            report.lost += o.problem.startswith("lost")
            report.duplicated += o.problem.startswith("duplicated")
            if len(report.problems) < 20:
                report.problems.append(f"{o.scenario} {o.status}: {o.problem}")
        report.client_5xx += o.status is not None and o.status >= 500
    ids = [o.completion_id for o in outcomes if o.completion_id]
    report.duplicated += len(ids) - len(set(ids))
    completed = [o for o in outcomes if o.result == "completed"]
    latencies = [o.seconds for o in completed]
    report.p50_s, report.p99_s = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    report.requests_per_s = round(len(completed) / elapsed, 2)
    report.completion_tokens_per_s = round(sum(o.tokens for o in completed) / elapsed, 1)
    if rss_start and rss_end:
        report.rss_growth = round(rss_end / rss_start - 1, 4)
    for key, value in after.items():
        delta = value - before.get(key, 0.0)
        if key.startswith("evotoken_requests_total{") and 'status="5' in key:
            report.server_5xx += int(delta)
        if key.startswith("evotoken_rows_total{"):
            report.rows[key.split('"')[1]] = delta
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--base-url", help="a running server, e.g. http://127.0.0.1:8000 (loopback only)")
    target.add_argument("--model", help="start `evotoken serve --model MODEL` on a free loopback port")
    target.add_argument("--embedded", action="store_true", help="start `evotoken serve` with the embedded model")
    target.add_argument("--tiny", action="store_true", help="start `evotoken serve` on a random tiny checkpoint")
    parser.add_argument("--server-pid", type=int, help="PID of the server at --base-url, for its RSS")
    parser.add_argument("--server-arg", action="append", default=[], help="extra `evotoken serve` flag (repeatable)")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--disconnect-rate", type=float, default=0.1, help="share of requests dropped midway")
    parser.add_argument("--api-key")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-rss-growth", type=float, default=0.10)
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= 1024 and 0 < args.duration <= 3600):
        parser.error("--clients must be in [1, 1024] and --duration in (0, 3600]")

    def go(base_url: str, pid: int | None) -> Report:
        return asyncio.run(run_load(base_url, args.clients, args.duration, api_key=args.api_key, server_pid=pid,
                                    seed=args.seed, disconnect_rate=args.disconnect_rate))
    try:
        if args.base_url:
            require_loopback(args.base_url)
            base = args.base_url.rstrip("/")
            report = go(base if base.endswith("/v1") else base + "/v1", args.server_pid)
        else:
            from .http_load import ServerProcess

            extra = ["--max-queue", str(6 * args.clients), *args.server_arg]  # up to 6 rows a request
            if args.api_key:
                extra += ["--api-key", args.api_key]
            with tempfile.TemporaryDirectory() as scratch:
                model = tiny_checkpoint(scratch) if args.tiny else None if args.embedded else args.model
                with ServerProcess(model, extra) as server:
                    report = go(server.base_url, server.proc.pid)
    except ValueError as error:
        print(f"loadgen: {error}", file=sys.stderr)
        return 2
    text = json.dumps(asdict(report), indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    ok = report.passed(args.max_rss_growth)
    print("PASS" if ok else "FAIL", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
