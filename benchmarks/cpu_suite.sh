#!/usr/bin/env bash
# The CPU figures of the README's performance section, in one go.
#   benchmarks/cpu_suite.sh [MODEL_DIR] [OUT_DIR]
# Each `evotoken bench` call runs its configurations side by side on the same model and
# prompts (the shipped held-out arithmetic questions), so ratios within a call are comparable
# even on a shared machine; absolute numbers depend on the machine and its load.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-}
out=${2:-runs/bench}
mkdir -p "$out"
# The reference settings (gen 128, block 32, 64 steps), whatever the model recommends.
bench() { .venv/bin/evotoken bench ${model:+--model "$model"} --task arith --gen-length 128 --block-length 32 --steps 64 "$@"; }

# exact mode against the published loop: batch 1 and rows in flight, both decoding modes
bench --requests 16 --concurrency 1,4,16 --reference --threads 1 --json --plot "$out/evotoken.png" > "$out/evotoken.json"
bench --requests 16 --concurrency 1,4,16 --reference --threads 1 --decoding hard_mask --json > "$out/hard_mask.json"
# the approximate caches (speed; their accuracy cost is measured with `evotoken eval --cache`)
for cache in prefix dual; do
  bench --requests 16 --concurrency 1 --reference --threads 1 --cache "$cache" --no-early-end --json > "$out/cache_$cache.json"
done
bench --requests 16 --concurrency 1 --reference --threads 1 --no-early-end --json > "$out/no_early_end.json"
# CPU threads: the same run with 1 and 2 torch threads
for t in 1 2; do
  bench --requests 8 --concurrency 1,8 --threads "$t" --json > "$out/threads_$t.json"
done
# through HTTP: a real `evotoken serve` on loopback, 1 and 16 requests in flight
bench --requests 16 --concurrency 1,16 --http --threads 1 --json > "$out/http.json"
echo "wrote $out"
