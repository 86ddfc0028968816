"""The image built from the Dockerfile and served for real, under podman:
`scripts/container_smoke.sh` builds a CPU stand-in for the CUDA base image, builds the project's
Dockerfile on it, runs it with the compose `cpu` profile's settings and checks it answers,
streams, counts, runs as uid 10001 and drains a stream on stop (the script says how).

A machine without podman, runc, debootstrap, root or the local CPU torch wheel skips this
test; CI (CI=true) fails instead, by the same rule as the other deploy checks.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from test_deploy_compose import require_tool  # one rule for every tool the deploy tests need

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "container_smoke.sh"
WHEELS = Path(os.environ.get("EVOTOKEN_SMOKE_WHEELS", "/opt/wheels"))

pytestmark = pytest.mark.timeout(660)


def require(condition: bool, message: str) -> None:
    """Skip on a laptop, fail in CI: the same rule as `require_tool`."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def test_the_image_builds_serves_and_drains_under_podman():
    for tool in ("podman", "runc", "debootstrap"):
        require_tool(tool, "scripts/setup.sh dev installs it from Debian")
    require(os.geteuid() == 0, "debootstrap and rootful podman need root")
    require(any(WHEELS.glob("torch-2.13.0+cpu-*.whl")),
            f"no CPU torch wheel in {WHEELS} (set EVOTOKEN_SMOKE_WHEELS to the folder pip finds it in)")
    try:
        result = subprocess.run(["bash", str(SCRIPT)], cwd=REPO, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as timeout:
        pytest.fail(f"the container smoke test ran past 10 minutes:\n{str(timeout.stderr)[-4000:]}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    for check in ("HEALTHCHECK kept", "runs as uid 10001", "step stream:", "drained a running stream",
                  "all checks passed"):
        assert check in output, output[-6000:]
