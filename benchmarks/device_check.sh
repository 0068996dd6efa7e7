#!/usr/bin/env bash
# The checks to run when a session is lent a GPU: one script, one device `run` (about 8 minutes
# on an H200 by estimate; never run there yet). Each step writes its own files, so a step that
# fails or is cut leaves the others' results:
#   1. the test suite's CUDA cases (pytest -m gpu);
#   2. the per-evaluation floor ratio with the presets as designed (random weights, 256-1024 px);
#   3. the bench with the ImageNet weights ($MASKED_GATYS_WEIGHTS): optimizers against the nets;
#   4. time to quality at 512 px, both presets (baseline, single-scale plbfgs, stylize's default).
# Results go to $OUT (the folder the device tool brings back), else scratch/device.
#
# On the device machine (its python3 holds torch, click, tqdm, matplotlib and scikit-learn; the
# package runs from the tree, nothing is installed): copy the weights file into an ignored folder
# of the checkout (scratch/), carry that folder, and run
#     MASKED_GATYS_WEIGHTS=scratch/vgg19_caffe_bgr255_conv1_1-conv3_4.pth bash benchmarks/device_check.sh
# To try the script here on a CPU in about a minute:  DEVICE=cpu QUICK=1 bash benchmarks/device_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-scratch/device}
device=${DEVICE:-cuda}
py=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && py=.venv/bin/python
weights=${MASKED_GATYS_WEIGHTS:-random}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$out"
if [ -n "${QUICK:-}" ]; then
    sizes=64,96; big=96; its=5; reps=2; tests="tests/test_encoder.py"
else
    sizes=256,512,1024; big=512; its=400; reps=5; tests="tests"
fi
status=0
step() { echo "== $1 ($(date -u +%H:%M:%S))"; shift; "$@" || { echo "!! failed: $*"; status=1; }; }

{ "$py" -c "import torch, platform; print(torch.__version__, platform.python_version(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')"; nvidia-smi -L 2>/dev/null; } \
    > "$out/machine.txt" 2>&1
step "CUDA tests" "$py" -m pytest -q -m gpu -p no:cacheprovider $tests --junitxml "$out/tests-gpu.xml"
step "floor ratio (random weights, presets as designed)" "$py" -m masked_gatys bench --device "$device" \
    --weights random --nets none --sizes "$sizes" --presets gatys,masked --optimizers plbfgs --eyes 1 \
    --repeats "$reps" --run-iterations 5 --no-progress --json "$out/bench-$device-random-full.json"
step "bench (weights: $(basename "$weights"))" "$py" -m masked_gatys bench --device "$device" \
    --weights "$weights" --sizes "$sizes" --presets gatys,masked --optimizers plbfgs,lbfgs,lbfgs-b,adam \
    --eyes 3 --repeats "$reps" --run-iterations 100 --no-progress --json "$out/bench-$device.json"
step "time to quality at $big px" "$py" benchmarks/time_to_quality.py --device "$device" --weights "$weights" \
    --sizes "$big" --presets gatys,masked --variants lbfgs,plbfgs,default --baseline-iterations "$its" \
    --iterations "$its" --json "$out/time-to-quality-$device.json"
echo "== done ($(date -u +%H:%M:%S)), files in $out"
exit $status
