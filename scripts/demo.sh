#!/usr/bin/env bash
# The whole pipeline on real Fashion-MNIST: train a supernet, search under a FLOPs bound, slice the
# max child, the min child and the search's best, benchmark each on the 10k test images, and print
# a table. About 15 minutes on a 2-core machine, plus the set-up and build on a fresh one.
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
source scripts/ensure-build.sh  # a fresh checkout: Debian packages, configure and build first
mkdir -p "$OUT"
start=$(date +%s)
stamp() { echo "demo: [$(( $(date +%s) - start ))s] $*" >&2; }
# Runs a tool with its stderr also kept in $OUT/logs/NAME.log (its last line: peak RSS and CPU use).
mkdir -p "$OUT/logs"
step() {
  local name=$1
  shift
  { "$@" 2>&1 1>&3 | tee "$OUT/logs/$name.log" >&2; } 3>&1  # pipefail keeps the tool's exit code
}

stamp "training the supernet"
step train "$BUILD/nas-train-supernet" --space configs/spaces/fmnist-mbconv.yaml --train configs/train/fmnist.yaml \
  --out "$OUT/run" --threads "$THREADS" "${EPOCHS_FLAG[@]}" > "$OUT/train.json"

stamp "searching under ${MAX_MFLOPS} MFLOPs"
step search "$BUILD/nas-search" --supernet "$OUT/run/supernet.ckpt" --max-mflops "$MAX_MFLOPS" --budget "$BUDGET" \
  --out "$OUT/search.json" --csv "$OUT/pareto.csv" --best-arch "$OUT/best.json" --threads "$THREADS"

for which in max min best; do
  arch=$which
  [[ $which == best ]] && arch="$OUT/best.json"
  stamp "slicing and benchmarking the $which child"
  step "slice-$which" "$BUILD/nas-slice" --supernet "$OUT/run/supernet.ckpt" --arch "$arch" --out "$OUT/$which.ckpt" --threads "$THREADS" > /dev/null
  step "bench-$which" "$BUILD/nas-benchmark" --model "$OUT/$which.ckpt" --threads 1 --batch 1 --out "$OUT/bench-$which.json"
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
# What each step cost: the tools' own last log line (cli::usage_line).
{
  printf '\n| step | peak RSS MiB | CPU s | wall s | cores |\n|---|---|---|---|---|\n'
  for f in train search slice-max bench-max slice-min bench-min slice-best bench-best; do
    sed -n 's/.*peak RSS \([0-9.]*\) MiB; CPU \([0-9.]*\) s in \([0-9.]*\) s (\([0-9.]*\) cores).*/| '"$f"' | \1 | \2 | \3 | \4 |/p' \
      "$OUT/logs/$f.log" | tail -1
  done
} | tee "$OUT/resources.md"
echo "demo: finished in ${elapsed}s; results in $OUT/" >&2
