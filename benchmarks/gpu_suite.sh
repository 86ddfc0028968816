#!/usr/bin/env bash
# The GPU figures of the README, for a host with one CUDA GPU (about 8 minutes on an H100).
#   benchmarks/gpu_suite.sh [OUT_DIR]
# A random-weight model of LLaDA-8B-Instruct's shape in bfloat16 (no download): the reference
# loop against the engine at gen 256 / block 32, batch 1, 8 and 32, with and without the
# prefix/dual cache, the refreshed and guarded caches and stable threshold
# unmasking. Batch 1 is bound by reading the ~16 GB of weights once per forward:
# divide 16 GB by `ms_per_step` and by the card's memory bandwidth for the fraction reached.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/bench-gpu}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
bench() {
  evotoken bench --random-shape llada-8b --device cuda --dtype bfloat16 --prompt-length 64 \
    --gen-length 256 --block-length 32 --steps 128 --json "$@"
}
bench --requests 4 --concurrency 1 --reference --no-early-end > "$out/reference_vs_engine.json"
bench --requests 32 --concurrency 1,8,32 --no-early-end --plot "$out/throughput.png" > "$out/concurrency.json"
for cache in prefix dual; do
  bench --requests 32 --concurrency 1,8,32 --no-early-end --cache "$cache" > "$out/cache_$cache.json"
done
bench --requests 32 --concurrency 1,8,32 --no-early-end --decoding hard_mask > "$out/hard_mask.json"
# the soft-token policies (docs/caching.md): a cache refreshed every 4th step of a block, and
# threshold unmasking that waits for a candidate to repeat
for cache in prefix dual; do
  bench --requests 32 --concurrency 1,8,32 --no-early-end --cache "$cache" --cache-refresh 4 \
    > "$out/cache_${cache}_refresh4.json"
done
bench --requests 32 --concurrency 1,8,32 --no-early-end --threshold 0.9 --threshold-stable \
  > "$out/threshold_stable.json"
# the margin guard: a cached step is recomputed when a decision was closer than 0.5 log-odds
# (random weights decide by small margins, so this is its cost near the worst case)
bench --requests 32 --concurrency 1,8,32 --no-early-end --cache dual --cache-guard 0.5 \
  > "$out/cache_dual_guard0.5.json"
echo "wrote $out"
