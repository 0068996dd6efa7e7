#!/usr/bin/env bash
# Seconds per objective evaluation beside the floor (one forward + backward of the truncated
# VGG-19) at 256 and 512 px, both presets as designed (all layers up to relu5_x), on this
# machine's CPU: the figures issue 2 asks for. Speed does not depend on the weights' values,
# so random weights serve. Pass extra flags through, e.g. --device cuda.
# Recorded results: benchmarks/results/bench-cpu-random-full.json, docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/results/bench-floor-ratio}
exec .venv/bin/masked-gatys bench --weights random --nets none --sizes 256,512 --presets gatys,masked \
    --optimizers plbfgs --eyes 1 --repeats 5 --run-iterations 5 --time-limit 10 --threads 2 \
    --json "$out.json" --plot "$out.png" "$@"
