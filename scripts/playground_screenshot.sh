#!/usr/bin/env bash
# Regenerates docs/playground.png: the playground's screenshot test, run against the embedded
# demo model (the test suite itself uses a tiny random model and writes its picture under /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYGROUND_MODEL=embedded PLAYGROUND_SCREENSHOT="$PWD/docs/playground.png" \
    .venv/bin/python -m pytest -q tests/test_playground.py -k screenshot "$@"
