#!/usr/bin/env bash
# Training speed, measured in one invocation (the machine is noisy, so only ratios are compared):
#  1. the sandwich step and the max child's plain training step: nas-train-supernet --arch (C++) against the same
#     architecture in Python with PyTorch (Debian's python3-torch, the same LibTorch), same threads,
#     batch and normalized data in memory, no augmentation on either side (the Python sandwich is
#     a once-for-all style dynamic supernet: scripts/bench/py_reference.py --sandwich);
#  2. the sandwich step (max + min + 2 random children) against the sum of standalone steps of its
#     children: max + min + 2 x the middle child (the random children's expected cost).
# Usage: scripts/bench/train_step.sh [STEPS] (default 40). Env: BUILD (build), THREADS (0: all cores),
#   BATCH (both sides; default: the recipe's batch_size, and py_reference.py's --batch default).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${1:-40}
BUILD=${BUILD:-build}
THREADS=${THREADS:-0}
batch_cxx=() batch_py=()
[[ -n ${BATCH:-} ]] && batch_cxx=(--batch-size "$BATCH") && batch_py=(--batch "$BATCH")
SPACE=configs/spaces/fmnist-mbconv.yaml
PY=/usr/bin/python3
$PY -c 'import torch' 2>/dev/null || { echo "train_step: needs Debian's python3-torch (apt-get install python3-torch)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The demo recipe without augmentation, logging every 5 steps.
sed -e 's/crop_padding: 2/crop_padding: 0/' -e 's/hflip: true/hflip: false/' -e 's/^log_every_steps: .*/log_every_steps: 5/' \
  configs/train/fmnist.yaml > "$tmp/train.yaml"
$PY scripts/bench/py_reference.py --space $SPACE --level 0.5 --write "$tmp/mid.json"
rate() {  # mean images/s over the logged windows after the first (warm-up)
  $PY -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][1:]
print("%.1f" % (sum(r["images_per_s"] for r in rows) / len(rows)))' "$1"
}
cxx() {  # name, extra flags...
  local name=$1; shift
  "$BUILD/nas-train-supernet" --space $SPACE --train "$tmp/train.yaml" --out "$tmp/$name" \
    --stop-after-steps "$STEPS" --threads "$THREADS" "${batch_cxx[@]}" -q "$@" > /dev/null
  rate "$tmp/$name/metrics.jsonl"
}
threads=$THREADS; [[ $threads == 0 ]] && threads=$(nproc)
py_max=$($PY scripts/bench/py_reference.py --space $SPACE --arch-level 1 --threads "$threads" "${batch_py[@]}" --steps "$STEPS")
py_sw=$($PY scripts/bench/py_reference.py --space $SPACE --sandwich --threads "$threads" "${batch_py[@]}" --steps "$STEPS")
cxx_max=$(cxx max --arch max)
cxx_min=$(cxx min --arch min)
cxx_mid=$(cxx mid --arch "$tmp/mid.json")
cxx_sw=$(cxx sandwich)
$PY - "$py_max" "$py_sw" "$cxx_max" "$cxx_min" "$cxx_mid" "$cxx_sw" <<'PY'
import sys
py_max, py_sw, mx, mn, mid, sw = map(float, sys.argv[1:])
# Seconds per image for the four standalone children, summed, against the sandwich step's.
standalone = 1 / mx + 1 / mn + 2 / mid
print("sandwich step: C++ %.1f images/s, Python %.1f images/s, ratio %.2fx" % (sw, py_sw, sw / py_sw))
print("max child plain step: C++ %.1f images/s, Python %.1f images/s, ratio %.2fx" % (mx, py_max, mx / py_max))
print("sandwich step: %.1f images/s; sum of standalone children steps: %.1f images/s; sandwich time / sum %.2fx"
      % (sw, 1 / standalone, (1 / sw) / standalone))
PY
