#!/usr/bin/env python3
"""Container health probe: exit 0 when the local server answers 200 on /ready, else 1.

Docker's HEALTHCHECK, the compose healthcheck and anyone on the box share this one probe so
they all agree on what "healthy" means. It is stdlib-only on purpose: it runs every few
seconds, must not import torch, and must work in an image without curl.

Usage: evotoken-healthcheck [PATH]   (PATH defaults to /ready; /health checks liveness only)
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

# Shorter than the 5 s HEALTHCHECK timeout, so a slow answer is reported by us with a
# reason instead of being killed silently by the engine.
TIMEOUT_S = 4.0


def probe_host() -> str:
    """The server binds EVOTOKEN_HOST; a wildcard bind is reachable on loopback."""
    host = os.environ.get("EVOTOKEN_HOST", "127.0.0.1")
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def first_api_key() -> str | None:
    """Probes are open by default (EVOTOKEN_OPEN_PROBES); when an operator closes them the
    probe must still get in, with the same key the clients use."""
    keys = [k.strip() for k in os.environ.get("EVOTOKEN_API_KEY", "").split(",") if k.strip()]
    key_file = os.environ.get("EVOTOKEN_API_KEY_FILE")
    if not keys and key_file and Path(key_file).is_file():
        keys = [line.strip() for line in Path(key_file).read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    return keys[0] if keys else None


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/ready"
    url = f"http://{probe_host()}:{os.environ.get('EVOTOKEN_PORT', '8000')}{path}"
    request = urllib.request.Request(url, headers={"x-request-id": "healthcheck"})
    key = first_api_key()
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            status = response.status
    except urllib.error.HTTPError as error:  # 503 while loading or draining
        status = error.code
    except (OSError, ValueError) as error:  # refused, reset, timed out
        print(f"unhealthy: {url}: {error}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
