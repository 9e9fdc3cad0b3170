#!/usr/bin/env bash
# The search strategies' targets (issue 21), on surrogates fitted to real evaluations
# (bench/strategy_bench.cpp says how each figure is measured):
#   - a space of unordered decisions only: the cell space (configs/spaces/fmnist-cell.yaml), its
#     children scored with inherited weights of a briefly trained supernet; evaluations each
#     strategy needs to reach random search's 500-evaluation best (20 seeds, medians);
#   - the mbconv space of the Fashion-MNIST experiment (its two searches; skipped until
#     `make -f scripts/experiments/fmnist/Makefile BUDGET=long` has written them): the same, and
#     the hypervolume of NSGA-II after 150 evaluations against random search's after 500, on
#     accuracy x MFLOPs and accuracy x latency_ms (a latency table built here).
# Every step resumes or skips when done: rerun the same command. Run it alone on the machine.
# Usage: scripts/bench/strategies.sh [OUT] (default runs/bench-strategies). Env: BUILD (build),
#   SEEDS (20), THREADS (2), CELL_EPOCHS (4), CELL_CHILDREN (300), CELL_TRAIN_FLAGS (more flags of the
#   cell supernet's training, e.g. --train-limit N), LONG (runs/fmnist-long), MBCONV_SPACE (the long
#   experiment's: configs/spaces/fmnist-mbconv-large.yaml), LUT_FLAGS (more nas-benchmark --build-lut
#   flags).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/search-helpers.sh
OUT=${1:-runs/bench-strategies}
BUILD=${BUILD:-build}
SEEDS=${SEEDS:-20}
THREADS=${THREADS:-2}
CELL_EPOCHS=${CELL_EPOCHS:-4}
CELL_CHILDREN=${CELL_CHILDREN:-300}
LONG=${LONG:-runs/fmnist-long}
MBCONV_SPACE=${MBCONV_SPACE:-configs/spaces/fmnist-mbconv-large.yaml}
read -r -a cell_train_flags <<< "${CELL_TRAIN_FLAGS:-}"
read -r -a lut_flags <<< "${LUT_FLAGS:-}"
mkdir -p "$OUT/cell"
cmake --build "$BUILD" --target nas-bench-strategies nas-train-supernet nas-search nas-benchmark > /dev/null
machine_header "threads $THREADS, commit $(git rev-parse --short HEAD)"

# 1. Real evaluations of cell children: a supernet trained for CELL_EPOCHS, then CELL_CHILDREN
#    random children scored with its weights.
sup=$OUT/cell/supernet
QUIET=1 scripts/experiments/fmnist/train.sh "$BUILD" "$sup" "$THREADS" --space configs/spaces/fmnist-cell.yaml \
  --train configs/train/fmnist-cell.yaml --epochs "$CELL_EPOCHS" "${cell_train_flags[@]}"
random=$OUT/cell/random.json
resumable_search "$random" --supernet "$sup/supernet.ckpt" --strategy random --budget "$CELL_CHILDREN" \
  --val-images 1000 --calib-images 500 --threads "$THREADS" -q
echo "## cell space (unordered decisions only)" >&2
"$BUILD/nas-bench-strategies" --space configs/spaces/fmnist-cell.yaml --search "$random" --seeds "$SEEDS" \
  --threads "$THREADS" | tee "$OUT/cell.jsonl"

# 2. The mbconv space of the long experiment, with a latency table for the latency objective.
if [[ -f $LONG/search.json && -f $LONG/search-100k.json ]]; then
  lut=$OUT/mbconv-large-lut.json
  [[ -f $lut ]] || "$BUILD/nas-benchmark" --build-lut --space "$MBCONV_SPACE" --threads "$THREADS" -q \
    "${lut_flags[@]}" --out "$lut"
  echo "## mbconv space of the long experiment" >&2
  "$BUILD/nas-bench-strategies" --space "$MBCONV_SPACE" --search "$LONG/search.json" \
    --search "$LONG/search-100k.json" --latency-table "$lut" --seeds "$SEEDS" --threads "$THREADS" \
    | tee "$OUT/mbconv.jsonl"
else
  echo "strategies.sh: $LONG/search.json: not there yet; the mbconv figures wait for the long experiment" >&2
fi
