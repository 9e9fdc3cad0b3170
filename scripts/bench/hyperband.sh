#!/usr/bin/env bash
# Hyperband against plain low-fidelity random search on real Fashion-MNIST training (issue 21): per
# seed, random search trains RANDOM_BUDGET children of SPACE (recipe TRAIN) for MAX epochs each
# (LF images per epoch, validation on VAL held-out images); Hyperband (min 1 epoch, max MAX, eta
# ETA) runs HB_BUDGET evaluations with the same seed. hyperband_report.py prints, per seed, the
# training images Hyperband spent until a child trained for MAX epochs scored at least random
# search's best, as a fraction of random search's images (target <= 1/3), and the medians.
# Then the chosen children are judged on separate images (hyperband_report.py says why): random
# search's best and each of Hyperband's incumbents are trained again from scratch for as long as
# they were scored (MAX epochs on LF images: the first LF of the training split, where the search
# drew a seeded sample, with nas-train-supernet --arch) and scored on the whole test set
# (nas-benchmark), and the same figures are printed with those scores. Nothing is chosen by them.
# The mlp family (the default) keeps it to minutes; the schedule is the same for every family.
# Every search resumes or skips when done: rerun the same command. Run it alone on the machine.
# Usage: scripts/bench/hyperband.sh [OUT] (default runs/bench-hyperband, and -NAME after it for another
# SPACE, NAME its file's name: each space needs a folder of its own).
# Env: SPACE (configs/spaces/fmnist-mlp.yaml), TRAIN (configs/train/fmnist-mlp.yaml), BUILD (build),
#   THREADS (2), SEEDS (5), LF (5000), VAL (2000), MAX (9), ETA (3), RANDOM_BUDGET (27),
#   HB_BUDGET (44: two Hyperband iterations at max 9, eta 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/search-helpers.sh
SPACE=${SPACE:-configs/spaces/fmnist-mlp.yaml}
TRAIN=${TRAIN:-configs/train/fmnist-mlp.yaml}
# Each space its own folder by default: a finished search of another space would pass for this one's.
default_out=runs/bench-hyperband
[[ $SPACE == configs/spaces/fmnist-mlp.yaml ]] || default_out+=-$(basename "$SPACE" .yaml)
OUT=${1:-$default_out}
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
SEEDS=${SEEDS:-5}
LF=${LF:-5000}
VAL=${VAL:-2000}
MAX=${MAX:-9}
ETA=${ETA:-3}
RANDOM_BUDGET=${RANDOM_BUDGET:-27}
HB_BUDGET=${HB_BUDGET:-44}
mkdir -p "$OUT"
cmake --build "$BUILD" --target nas-search nas-train-supernet nas-benchmark > /dev/null
machine_header "space $SPACE, recipe $TRAIN, threads $THREADS, commit $(git rev-parse --short HEAD)"
search() {  # out file, nas-search flags...
  local f=$1
  shift
  resumable_search "$f" --space "$SPACE" --train "$TRAIN" \
    --estimator low-fidelity --lf-images "$LF" --val-images "$VAL" --threads "$THREADS" -q "$@"
}
pairs=()
for ((seed = 0; seed < SEEDS; ++seed)); do
  search "$OUT/random-$seed.json" --strategy random --lf-epochs "$MAX" --budget "$RANDOM_BUDGET" --seed "$seed"
  search "$OUT/hyperband-$seed.json" --strategy hyperband --hb-min-epochs 1 --hb-max-epochs "$MAX" --hb-eta "$ETA" \
    --budget "$HB_BUDGET" --seed "$seed"
  pairs+=("$OUT/random-$seed.json" "$OUT/hyperband-$seed.json")
done
python3 scripts/bench/hyperband_report.py --max-epochs "$MAX" "${pairs[@]}"
judged=$OUT/judged-e$MAX-i$LF  # the retraining's epochs and images: another MAX or LF judges anew
mkdir -p "$judged"
python3 scripts/bench/hyperband_report.py --max-epochs "$MAX" --judge-list "$judged" "${pairs[@]}" > "$judged/children"
while read -r hash; do
  dir=$judged/$hash
  [[ -f $dir/bench.json ]] && continue
  rm -rf "$dir/train"  # a retraining stopped part way starts over: it takes seconds
  "$BUILD/nas-train-supernet" --space "$SPACE" --train "$TRAIN" \
    --arch "$dir/arch.json" --epochs "$MAX" --train-limit "$LF" --threads "$THREADS" -q --out "$dir/train" < /dev/null > "$dir/train.log"
  # Only the accuracy is used: the shortest timing nas-benchmark takes.
  "$BUILD/nas-benchmark" --model "$dir/train/child.ckpt" --test-images -1 --warmup 0 --reps 1 --min-time 0 --ci 0 \
    --max-time 0.5 --throughput-batch 1 --threads "$THREADS" -q --out "$dir/bench.json.part" < /dev/null > "$dir/bench.log"
  mv "$dir/bench.json.part" "$dir/bench.json"
done < "$judged/children"
python3 scripts/bench/hyperband_report.py --max-epochs "$MAX" --judged "$judged" "${pairs[@]}"
