#!/usr/bin/env bash
# The cell family on Fashion-MNIST (issue 6): trains the one-shot supernet of
# configs/spaces/fmnist-cell.yaml with SPOS (configs/train/fmnist-cell.yaml, SUPERNET_EPOCHS), then
# finds a child under MAX_MFLOPS twice: by regularized evolution on the inherited weights, and by
# DARTS (first-order bi-level optimization of the relaxation on a copy of the supernet, then the
# derived cell and the next most likely ones, scored the same way). Trains both found children from
# scratch (nas-train-supernet --arch, same recipe, CHILD_EPOCHS) and measures them on the 10,000
# test images. Prints one JSON line per child; every step resumes (a finished step is skipped).
# Usage: scripts/experiments/fmnist-cell/run.sh [OUT] (default runs/fmnist-cell).
# Env: BUILD (build), THREADS (2), SUPERNET_EPOCHS (10), CHILD_EPOCHS (20), MAX_MFLOPS (50),
#   DARTS_STEPS (200), BUDGET (100: the evolution search), VAL_IMAGES (2000), TRAIN_FLAGS (more flags
#   of every training, e.g. --train-limit 512), TEST_IMAGES (-1: all), MAX_TIME (2: nas-benchmark's).
set -euo pipefail
cd "$(dirname "$0")/../../.."
source scripts/search-helpers.sh
OUT=${1:-runs/fmnist-cell}
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
SUPERNET_EPOCHS=${SUPERNET_EPOCHS:-10}
CHILD_EPOCHS=${CHILD_EPOCHS:-20}
MAX_MFLOPS=${MAX_MFLOPS:-50}
DARTS_STEPS=${DARTS_STEPS:-200}
BUDGET=${BUDGET:-100}
VAL_IMAGES=${VAL_IMAGES:-2000}
read -r -a train_flags <<< "${TRAIN_FLAGS:-}"
TEST_IMAGES=${TEST_IMAGES:--1}
MAX_TIME=${MAX_TIME:-2}
SPACE=configs/spaces/fmnist-cell.yaml
TRAIN=configs/train/fmnist-cell.yaml
mkdir -p "$OUT"
train() {  # out dir, extra flags...
  local dir=$1; shift
  if [[ -f $dir/done ]]; then return; fi
  local resume=(); [[ -f $dir/supernet.ckpt || -f $dir/child.ckpt ]] && resume=(--resume)
  if [[ ${#resume[@]} -gt 0 ]]; then
    "$BUILD/nas-train-supernet" --out "$dir" --threads "$THREADS" --resume 2> "$dir.err" | tee "$dir.log"
  else
    "$BUILD/nas-train-supernet" --space "$SPACE" --train "$TRAIN" --out "$dir" --threads "$THREADS" "$@" \
      "${train_flags[@]}" 2> "$dir.err" | tee "$dir.log"
  fi
  touch "$dir/done"
}
train "$OUT/supernet" --epochs "$SUPERNET_EPOCHS"
common=(--supernet "$OUT/supernet/supernet.ckpt" --max-mflops "$MAX_MFLOPS" --val-images "$VAL_IMAGES" --calib-images 1000
        --threads "$THREADS" -q)
search() {  # strategy, flags...
  local s=$1; shift
  resumable_search "$OUT/search-$s.json" "${common[@]}" --strategy "$s" "$@"
}
search evolution --budget "$BUDGET" --population 20 --sample-size 10
search darts --darts-steps "$DARTS_STEPS" --budget 10
for s in evolution darts; do
  train "$OUT/scratch-$s" --arch "$OUT/search-$s.json" --epochs "$CHILD_EPOCHS"
  [[ -f $OUT/bench-$s.json ]] || "$BUILD/nas-benchmark" --model "$OUT/scratch-$s/child.ckpt" --threads "$THREADS" \
    --test-images "$TEST_IMAGES" --max-time "$MAX_TIME" -q --out "$OUT/bench-$s.json"
  [[ -e $OUT/inherited-$s.ckpt ]] || "$BUILD/nas-slice" --supernet "$OUT/supernet/supernet.ckpt" \
    --arch "$OUT/search-$s.json" --out "$OUT/inherited-$s.ckpt" --threads "$THREADS" -q > /dev/null
  [[ -f $OUT/bench-inherited-$s.json ]] || "$BUILD/nas-benchmark" --model "$OUT/inherited-$s.ckpt" --threads "$THREADS" \
    --test-images "$TEST_IMAGES" --max-time "$MAX_TIME" -q --out "$OUT/bench-inherited-$s.json"
  /usr/bin/python3 - "$OUT" "$s" <<'PY'
import json, sys
out, s = sys.argv[1], sys.argv[2]
search = json.load(open(f"{out}/search-{s}.json"))
best = search["best"]
scratch = json.load(open(f"{out}/bench-{s}.json"))
inherited = json.load(open(f"{out}/bench-inherited-{s}.json"))
m = scratch["model"]
print(json.dumps({"strategy": s, "normal": m["arch"]["cell"]["normal"], "reduce": m["arch"]["cell"]["reduce"],
                  "params": m["params"], "mflops": round(m["mflops"], 3), "val_acc_inherited": best["metrics"]["val_acc"],
                  "test_top1_inherited": inherited["accuracy"]["top1"], "test_top1_scratch": scratch["accuracy"]["top1"],
                  "search_seconds": round(search["timings"]["total_seconds"], 1)}))
PY
done
