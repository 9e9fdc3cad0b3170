#!/usr/bin/env bash
# The whole pipeline on real Fashion-MNIST: train a supernet, search under a FLOPs bound, slice the
# max child, the min child and the search's best, benchmark each on the 10k test images, and print
# a table. About 15 minutes on a 2-core machine.
# Usage: scripts/demo.sh [OUT_DIR] (default demo-out). Env: MAX_MFLOPS (default 6), BUDGET (40),
# EPOCHS (the train spec's), THREADS (all cores), BUILD (build).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo-out}
BUILD=${BUILD:-build}
MAX_MFLOPS=${MAX_MFLOPS:-6}
BUDGET=${BUDGET:-40}
THREADS=${THREADS:-0}
EPOCHS_FLAG=()
[[ -n "${EPOCHS:-}" ]] && EPOCHS_FLAG=(--epochs "$EPOCHS")
for t in nas-train-supernet nas-search nas-slice nas-benchmark; do
  [[ -x "$BUILD/$t" ]] || { echo "demo: $BUILD/$t missing: run scripts/setup.sh first" >&2; exit 2; }
done
mkdir -p "$OUT"
start=$(date +%s)
stamp() { echo "demo: [$(( $(date +%s) - start ))s] $*" >&2; }

stamp "training the supernet"
"$BUILD/nas-train-supernet" --space configs/spaces/fmnist-mbconv.yaml --train configs/train/fmnist.yaml \
  --out "$OUT/run" --threads "$THREADS" "${EPOCHS_FLAG[@]}" > "$OUT/train.json"

stamp "searching under ${MAX_MFLOPS} MFLOPs"
"$BUILD/nas-search" --supernet "$OUT/run/supernet.ckpt" --max-mflops "$MAX_MFLOPS" --budget "$BUDGET" \
  --out "$OUT/search.json" --csv "$OUT/pareto.csv" --best-arch "$OUT/best.json" --threads "$THREADS"

for which in max min best; do
  arch=$which
  [[ $which == best ]] && arch="$OUT/best.json"
  stamp "slicing and benchmarking the $which child"
  "$BUILD/nas-slice" --supernet "$OUT/run/supernet.ckpt" --arch "$arch" --out "$OUT/$which.ckpt" --threads "$THREADS" > /dev/null
  "$BUILD/nas-benchmark" --model "$OUT/$which.ckpt" --threads 1 --batch 1 --out "$OUT/bench-$which.json"
done
elapsed=$(( $(date +%s) - start ))

table() {
  printf '| child | arch hash | MFLOPs | params | latency ms (batch 1, 1 thread, median) | test accuracy |\n'
  printf '|---|---|---|---|---|---|\n'
  for which in max min best; do
    /usr/bin/env python3 - "$OUT/bench-$which.json" "$which" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
print("| %s | %s | %.2f | %d | %.3f | %.2f%% |" % (sys.argv[2], b["model"]["hash"], b["model"]["mflops"],
      b["model"]["params"], b["latency"]["median_ms"], 100 * b["accuracy"]["top1"]))
PY
  done
}
table | tee "$OUT/table.md"
echo "demo: finished in ${elapsed}s; results in $OUT/" >&2
