#!/usr/bin/env bash
# The search strategies' targets (issue 21), on surrogates fitted to real evaluations
# (bench/strategy_bench.cpp says how each figure is measured):
#   - a space of unordered decisions only: the cell space (configs/spaces/fmnist-cell.yaml), its
#     children scored with inherited weights of a briefly trained supernet; evaluations each
#     strategy needs to reach random search's 500-evaluation best (20 seeds, medians);
#   - the mbconv space (configs/spaces/fmnist-mbconv.yaml, the demo's), likewise from a briefly trained
#     supernet: the same figures, and the hypervolume of NSGA-II and of ehvi after 150 evaluations
#     against random search's after 500, on accuracy x MFLOPs and accuracy x latency_ms (a latency
#     table built here); the cell space's on accuracy x MFLOPs too; on each space, the overhead per
#     proposal of tpe, nsga2 and ehvi after 500 observations.
# Every step resumes or skips when done: rerun the same command. Run it alone on the machine.
# Usage: scripts/bench/strategies.sh [OUT] (default runs/bench-strategies). Env: BUILD (build),
#   SEEDS (20), THREADS (2), CELL_EPOCHS (4), CELL_CHILDREN (300), CELL_TRAIN_FLAGS (more flags of the
#   cell supernet's training, e.g. --train-limit N), MBCONV_SPACE (configs/spaces/fmnist-mbconv.yaml),
#   MBCONV_TRAIN (configs/train/fmnist.yaml), MBCONV_EPOCHS (2), MBCONV_TRAIN_FLAGS, MBCONV_CHILDREN
#   (200 random children, twice: unbounded, then under MBCONV_BOUND), MBCONV_BOUND (--max-mflops 6:
#   the bound the bench's searches keep), LUT_FLAGS (more nas-benchmark --build-lut flags).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/search-helpers.sh
OUT=${1:-runs/bench-strategies}
BUILD=${BUILD:-build}
SEEDS=${SEEDS:-20}
THREADS=${THREADS:-2}
CELL_EPOCHS=${CELL_EPOCHS:-4}
CELL_CHILDREN=${CELL_CHILDREN:-300}
MBCONV_SPACE=${MBCONV_SPACE:-configs/spaces/fmnist-mbconv.yaml}
MBCONV_TRAIN=${MBCONV_TRAIN:-configs/train/fmnist.yaml}
MBCONV_EPOCHS=${MBCONV_EPOCHS:-2}
read -r -a mbconv_train_flags <<< "${MBCONV_TRAIN_FLAGS:-}"
MBCONV_CHILDREN=${MBCONV_CHILDREN:-200}
read -r -a mbconv_bound <<< "${MBCONV_BOUND:---max-mflops 6}"
read -r -a cell_train_flags <<< "${CELL_TRAIN_FLAGS:-}"
read -r -a lut_flags <<< "${LUT_FLAGS:-}"
mkdir -p "$OUT/cell" "$OUT/mbconv"
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

# 2. The mbconv space: real evaluations of its children (a supernet trained for MBCONV_EPOCHS, then
#    MBCONV_CHILDREN random children, and as many under the bound), and a latency table.
space=$MBCONV_SPACE
sup=$OUT/mbconv/supernet
QUIET=1 scripts/experiments/fmnist/train.sh "$BUILD" "$sup" "$THREADS" --space "$space" --train "$MBCONV_TRAIN" \
  --epochs "$MBCONV_EPOCHS" "${mbconv_train_flags[@]}"
# Every held-out validation image (--val-images 0): the two searches' seeds (1 draws other children
# than 0) then pick no different validation samples, which would offset one file's scores against
# the other's in the surrogate they share.
for kind in any bounded; do
  flags=()
  [[ $kind == bounded ]] && flags=("${mbconv_bound[@]}" --seed 1)
  resumable_search "$OUT/mbconv/random-$kind.json" --supernet "$sup/supernet.ckpt" --strategy random \
    --budget "$MBCONV_CHILDREN" --val-images 0 --calib-images 500 --threads "$THREADS" -q "${flags[@]}"
done
lut=$OUT/mbconv/lut.json
[[ -f $lut ]] || "$BUILD/nas-benchmark" --build-lut --space "$space" --threads "$THREADS" -q "${lut_flags[@]}" \
  --out "$lut"
echo "## mbconv space" >&2
"$BUILD/nas-bench-strategies" --space "$space" --search "$OUT/mbconv/random-any.json" \
  --search "$OUT/mbconv/random-bounded.json" --latency-table "$lut" --seeds "$SEEDS" --threads "$THREADS" \
  | tee "$OUT/mbconv.jsonl"
