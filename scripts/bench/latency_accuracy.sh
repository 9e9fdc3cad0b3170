#!/usr/bin/env bash
# Latency tables and the learned latency model against end-to-end measurements (issue 5): builds a
# table for the Fashion-MNIST space with nas-benchmark --build-lut (timed: the build-time target),
# then measures 100 random children it has never seen end to end and reports the MAPE, Spearman's
# rho and Kendall's tau of the table's sum and of the learned model.
# On this CPU at batch 1; with a GPU (DEVICE=cuda) at batch 1 and 64.
# Usage: scripts/bench/latency_accuracy.sh [OUT_DIR] (default runs/latency). Env: BUILD (build),
#   THREADS (2), DEVICE (cpu), BATCHES ("1" on cpu, "1 64" on cuda), ARCHS (100), MODEL_ARCHS (100),
#   ROUNDS (3: passes over the table and over the held-out children), SPACE
#   (configs/spaces/fmnist-mbconv.yaml), LUT_FLAGS (more nas-benchmark --build-lut flags).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/search-helpers.sh
OUT=${1:-runs/latency}
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
DEVICE=${DEVICE:-cpu}
if [[ $DEVICE == cuda ]]; then BATCHES=${BATCHES:-1 64}; else BATCHES=${BATCHES:-1}; fi
SPACE=${SPACE:-configs/spaces/fmnist-mbconv.yaml}
read -r -a lut_flags <<< "${LUT_FLAGS:-}"
mkdir -p "$OUT"
cmake --build "$BUILD" --target nas-benchmark nas-bench-latency > /dev/null
machine_header "$THREADS threads, $DEVICE"
for b in $BATCHES; do
  lut="$OUT/lut-$DEVICE-b$b.json"
  start=$(date +%s%N)
  "$BUILD/nas-benchmark" --build-lut --space "$SPACE" --threads "$THREADS" --device "$DEVICE" --batch "$b" \
    --model-archs "${MODEL_ARCHS:-100}" --rounds "${ROUNDS:-3}" "${lut_flags[@]}" --out "$lut"
  end=$(date +%s%N)
  echo "{\"what\": \"lut_build\", \"batch\": $b, \"device\": \"$DEVICE\", \"seconds\": $(( (end - start) / 1000000000 ))}"
  "$BUILD/nas-bench-latency" --lut "$lut" --space "$SPACE" --archs "${ARCHS:-100}" --threads "$THREADS" --device "$DEVICE" --rounds "${ROUNDS:-3}"
done
