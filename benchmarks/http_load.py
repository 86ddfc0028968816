"""The same workload through a running server's /v1/completions, N requests in flight."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from evotoken_core.decoding import DecodeSettings

from .measure import Run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`evotoken serve` on loopback for the duration of a `with` block."""

    def __init__(self, model: str | None, extra: list[str] = ()):
        self.port = free_port()
        cmd = [sys.executable, "-m", "evotoken_core.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--device", "cpu", "--log-level", "warning", *extra]
        if model:
            cmd += ["--model", model]
        self.cmd = cmd
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):
        self.proc = subprocess.Popen(self.cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("server did not become ready in 180 s")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_http(base_url: str, prompts: list[list[int]], settings: DecodeSettings, concurrency: int,
             api_key: str | None = None) -> Run:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=600) as client:
        model = client.get("/models").json()["data"][0]["id"]

        def one(prompt: list[int]) -> tuple[int, int]:
            body = {"model": model, "prompt": prompt, "max_tokens": settings.gen_length,
                    "temperature": settings.temperature, "steps": settings.steps,
                    "block_length": settings.block_length, "k_soft": settings.k_soft,
                    "alpha_soft_mask": settings.alpha_soft_mask, "decoding": settings.decoding}
            if settings.threshold is not None:
                body["threshold"] = settings.threshold
            r = client.post("/completions", json=body)
            r.raise_for_status()
            data = r.json()
            return data["usage"]["completion_tokens"], int(data.get("evotoken", {}).get("nfe", 0))

        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(one, prompts))
        seconds = time.perf_counter() - start
    tokens = sum(r[0] for r in results)
    nfe = sum(r[1] for r in results)
    return Run("http", concurrency, len(prompts), seconds, tokens, nfe, forwards=0)
