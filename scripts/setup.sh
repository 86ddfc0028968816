#!/usr/bin/env bash
# Create .venv/ and install the project into it. Usage: scripts/setup.sh [serve|dev]
#   serve: runtime dependencies only;  dev: plus test tools, nginx and Chromium for the
#   end-to-end tests. Safe to re-run: a stamp file skips work that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-serve}"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)

stamp=".venv/.installed-$profile-$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  # torch first, pinned: 2.13.0 is the CPU wheel these machines have locally. An unpinned
  # torch would pull a multi-GB CUDA build; the project's range (<2.15) accepts 2.13.0.
  if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    "${pip[@]}" install "torch==${EVOTOKEN_TORCH_VERSION:-2.13.0}"
  fi
  if [ "$profile" = dev ]; then
    "${pip[@]}" install -e ".[dev]"
  else
    "${pip[@]}" install -e .
  fi
  touch "$stamp"
fi

if [ "$profile" = dev ]; then
  # System packages the tests drive for real: nginx (the load balancer config), Chromium
  # (the playground page), promtool (from prometheus: the scrape configs and alert rules), and
  # podman with runc and debootstrap (the image built and served: scripts/container_smoke.sh).
  # Installed only when missing.
  missing=()
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  for tool in podman runc; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      echo "setup: please install ${missing[*]} (the end-to-end tests need them)" >&2
    fi
  fi
fi
