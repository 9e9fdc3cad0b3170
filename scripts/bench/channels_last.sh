#!/usr/bin/env bash
# Training throughput of the demo supernet with channels-last (NHWC) convolutions against the NCHW
# baseline, in the same invocation. Prints images/s for each and the ratio.
# Usage: scripts/bench/channels_last.sh [STEPS] (default 40). Env: BUILD (build), THREADS (0: all),
#   TRAIN_FLAGS (more nas-train-supernet flags, e.g. --batch-size 16).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${1:-40}
BUILD=${BUILD:-build}
THREADS=${THREADS:-0}
read -r -a train_flags <<< "${TRAIN_FLAGS:-}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rate() {  # mean images/s over the logged windows after the first (warm-up)
  /usr/bin/env python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][1:]
print("%.1f" % (sum(r["images_per_s"] for r in rows) / len(rows)))' "$1"
}
run() {
  NAS_CHANNELS_LAST=$1 "$BUILD/nas-train-supernet" --space configs/spaces/fmnist-mbconv.yaml \
    --train configs/train/fmnist.yaml --out "$tmp/$2" --stop-after-steps "$STEPS" --threads "$THREADS" -q "${train_flags[@]}" > /dev/null
  rate "$tmp/$2/metrics.jsonl"
}
nchw=$(run 0 nchw)
nhwc=$(run 1 nhwc)
echo "training images/s (sandwich, 4 children, batch 128): NCHW $nchw, channels-last $nhwc, ratio $(/usr/bin/env python3 -c "print('%.2fx' % ($nhwc / $nchw))")"
