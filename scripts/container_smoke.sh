#!/usr/bin/env bash
# Build the project's image with podman and serve it, the way an operator would, on a machine
# with no GPU and no registry: CI runs this (tests/test_container_smoke.py).
#
#   scripts/container_smoke.sh            # about 5 min the first time, 1-2 min once cached
#
# 1. A stand-in for the CUDA PyTorch base image: Debian bookworm from debootstrap, with
#    python3-venv and the CPU torch wheel this machine's pip finds in its find-links folder
#    (/opt/wheels; see `pip config list`), pinned to the `+cpu` build so no CUDA torch is ever
#    downloaded. Cached in podman's store under a tag that hashes its recipe.
# 2. The project's Dockerfile built on it with `--build-arg BASE_IMAGE` and `--format docker`
#    (the OCI format would drop the HEALTHCHECK).
# 3. The image run with the environment of docker-compose.yml's `cpu` profile, on loopback
#    only, and checked: /ready, a chat completion, a step stream, /metrics, the non-root uid
#    (10001), the HEALTHCHECK kept, and `podman stop` draining a running stream to a normal
#    end with exit code 0.
#
# What podman needs on these machines: runc (crun fails here), raised ulimits in a
# containers.conf of our own, host networking for the build, and pip inside the builds
# trusting the host's CA bundle (mounted, named by `cert` in a mounted pip.conf).
# Settings: EVOTOKEN_SMOKE_WORK (scratch and cache folder), EVOTOKEN_SMOKE_WHEELS (the folder
# holding torch-2.13.0+cpu), EVOTOKEN_SMOKE_CA (CA bundle), DEBIAN_MIRROR, PYTHON (a Python
# with httpx and PyYAML for the checks; default: the project's .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
python="${PYTHON:-$repo/.venv/bin/python}"
work="${EVOTOKEN_SMOKE_WORK:-/var/tmp/evotoken-smoke}"
wheels="${EVOTOKEN_SMOKE_WHEELS:-/opt/wheels}"
ca="${EVOTOKEN_SMOKE_CA:-/etc/ssl/certs/ca-certificates.crt}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
torch_pin="torch==2.13.0+cpu"
image=localhost/evotoken-smoke:latest
container="evotoken-smoke-$$"

log() { printf '[container_smoke %s] %s\n' "$(date +%T)" "$*" >&2; }

mkdir -p "$work"
cat > "$work/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$work/containers.conf"

# pip inside every build: the CPU torch wheel from the mounted find-links folder, PyPI for
# the rest, trusting the host's CA bundle.
cat > "$work/pip.conf" <<'EOF'
[global]
find-links = /opt/wheels
cert = /etc/ssl/certs/host-ca-bundle.pem
EOF
build_mounts=(-v "$wheels:/opt/wheels:ro" -v "$ca:/etc/ssl/certs/host-ca-bundle.pem:ro"
              -v "$work/pip.conf:/etc/pip.conf:ro")
build=(podman build --format docker --network=host "${build_mounts[@]}")

# --- 1. the stand-in base image ------------------------------------------------------------------
suite=bookworm
packages=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
base_recipe="FROM localhost/evotoken-smoke-rootfs:TAG
ENV PIP_BREAK_SYSTEM_PACKAGES=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m pip install \"$torch_pin\" && python -c \"import torch; assert torch.version.cuda is None, torch.__version__\""
tag=$(printf '%s\n' "$suite" "$packages" "$base_recipe" | sha256sum | cut -c1-16)
base="localhost/evotoken-smoke-base:$tag"
if podman image exists "$base"; then
  log "stand-in base $base is cached"
else
  log "building the stand-in base $base (debootstrap $suite, $torch_pin)"
  rootfs="$work/rootfs-$tag"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import - "localhost/evotoken-smoke-rootfs:$tag" > /dev/null
  rm -rf "$rootfs"
  printf '%s\n' "${base_recipe//TAG/$tag}" > "$work/Containerfile.base"
  "${build[@]}" -t "$base" -f "$work/Containerfile.base" "$work"
  podman rmi "localhost/evotoken-smoke-rootfs:$tag" > /dev/null
fi

# --- 2. the project's image on it ------------------------------------------------------------------
log "building the project's Dockerfile on $base"
previous=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
"${build[@]}" --build-arg "BASE_IMAGE=$base" -t "$image" "$repo"
if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$image")" ]; then
  podman rmi "$previous" > /dev/null 2>&1 || true  # the last run's image; its layers stay as cache
fi
healthcheck=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$image")
case "$healthcheck" in
  *evotoken-healthcheck*/ready*) log "HEALTHCHECK kept: $healthcheck" ;;
  *) log "the image lost its HEALTHCHECK: $healthcheck"; exit 1 ;;
esac

# --- 3. run it with the cpu profile's environment, and check it ---------------------------------------
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mapfile -t profile_env < <("$python" - "$repo/docker-compose.yml" <<'EOF'
import sys, yaml
env = yaml.safe_load(open(sys.argv[1]))["services"]["evotoken-cpu"]["environment"]
for name, value in env.items():
    if value is not None:  # `${VAR:-default}` -> default: the operator sets nothing here
        value = str(value)
        if value.startswith("${") and ":-" in value:
            value = value.split(":-", 1)[1].rstrip("}")
        print(f"{name}={value}")
EOF
)
env_args=()
for pair in "${profile_env[@]}"; do env_args+=(-e "$pair"); done
cleanup() { podman rm -f -t 0 "$container" > /dev/null 2>&1 || true; }
trap cleanup EXIT
log "running $image on 127.0.0.1:$port with ${profile_env[*]}"
# No health timer: podman runs those through systemd, which these machines lack; the check
# itself is run by hand below (`podman healthcheck run`).
podman run -d --name "$container" --network=host --stop-timeout 90 --health-interval disable \
  -e EVOTOKEN_HOST=127.0.0.1 -e "EVOTOKEN_PORT=$port" "${env_args[@]}" "$image" > /dev/null
pid=$(podman inspect --format '{{.State.Pid}}' "$container")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
log "the server process runs as uid $uid"
[ "$uid" = 10001 ] || { log "expected uid 10001"; exit 1; }

"$python" - "http://127.0.0.1:$port" "$container" <<'EOF'
"""The served image answers like the server does in the test suite, then drains on stop."""
import json
import subprocess
import sys
import threading
import time

import httpx

url, container = sys.argv[1], sys.argv[2]


def fail(message):
    logs = subprocess.run(["podman", "logs", "--tail", "40", container], capture_output=True, text=True)
    sys.exit(f"{message}\n--- container log ---\n{logs.stdout}{logs.stderr}")


deadline = time.monotonic() + 300
while True:
    try:
        if httpx.get(url + "/ready", timeout=5).status_code == 200:
            break
    except httpx.TransportError:
        pass
    if time.monotonic() > deadline:
        fail("/ready never answered 200")
    time.sleep(1)
print("ready", file=sys.stderr)
health = subprocess.run(["podman", "healthcheck", "run", container], capture_output=True, text=True)
if health.returncode != 0:
    fail(f"the image's HEALTHCHECK fails on a ready server: {health.stdout}{health.stderr}")
print("HEALTHCHECK passes inside the container", file=sys.stderr)

model = httpx.get(url + "/v1/models", timeout=30).json()["data"][0]["id"]
chat = httpx.post(url + "/v1/chat/completions", timeout=120, json={
    "model": model, "messages": [{"role": "user", "content": "What is 12 + 30?"}]})
if chat.status_code != 200 or not chat.json()["choices"][0]["message"]["content"]:
    fail(f"chat completion: {chat.status_code} {chat.text}")
print("chat:", json.dumps(chat.json()["choices"][0]["message"]["content"]), file=sys.stderr)


def frames(response):
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield line[6:]


started = time.monotonic()
with httpx.stream("POST", url + "/v1/chat/completions", timeout=120, json={
        "model": model, "messages": [{"role": "user", "content": "Sort the list: 5, 3, 9, 1."}],
        "stream": True, "stream_steps": True}) as r:
    got = list(frames(r))
steps = [c["evotoken"] for f in got[:-1] for c in json.loads(f)["choices"] if "evotoken" in c]
if got[-1:] != ["[DONE]"] or not steps or "draft" not in steps[-1]:
    fail(f"step stream: {got[:3]} ... {got[-2:]}")
step_seconds = (time.monotonic() - started) / len(steps)
print(f"step stream: {len(steps)} step chunks, {step_seconds:.3f} s a step", file=sys.stderr)

metrics = httpx.get(url + "/metrics", timeout=30).text
if 'evotoken_requests_total{route="/v1/chat/completions",status="200"}' not in metrics:
    fail("/metrics does not count the chat requests")

# A long stream is running when the stop comes: it must finish normally, then the process exits 0.
# About 10 s of steps at the pace just measured: still running when the stop lands, and done
# well inside the 30 s drain (a busy two-core machine takes ~1 s a step, an idle one ~10 ms).
# A step over a longer canvas costs more than the short stream's steps did (on idle cores, 384
# tokens ran at 0.09 s a step against 0.026 measured and outlasted the drain), so at most 128.
tokens = max(8, min(128, int(10 / step_seconds))) // 4 * 4
long = {"model": model, "messages": [{"role": "user", "content": "What is 12 + 30?"}],
        "max_tokens": tokens, "block_length": 4, "steps": tokens, "stream": True, "ignore_eos": True}
stopped = {}
with httpx.stream("POST", url + "/v1/chat/completions", json=long, timeout=180) as r:
    got = []
    for frame in frames(r):
        got.append(frame)
        if len(got) == 1:
            stopper = threading.Thread(target=lambda: stopped.update(
                result=subprocess.run(["podman", "stop", "-t", "90", container], capture_output=True, text=True)))
            stopper.start()
stopper.join(120)
finish = [c.get("finish_reason") for f in got[:-1] for c in json.loads(f).get("choices", [])]
errors = [f for f in got if '"error"' in f]
if got[-1:] != ["[DONE]"] or errors or "length" not in finish:
    fail(f"the stream was cut by the stop: {got[-3:]}")
exit_code = subprocess.run(["podman", "inspect", "--format", "{{.State.ExitCode}}", container],
                           capture_output=True, text=True).stdout.strip()
if exit_code != "0":
    fail(f"the server exited {exit_code} after the drain")
logs = subprocess.run(["podman", "logs", container], capture_output=True, text=True)
if "1 rows in flight get up to" not in logs.stdout + logs.stderr:
    fail("the stream had ended before the stop came: nothing was drained")
print(f"drained a running stream of {len(got)} frames on stop; exit code 0", file=sys.stderr)
EOF
log "all checks passed"
