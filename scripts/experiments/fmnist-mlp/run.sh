#!/usr/bin/env bash
# The mlp family on Fashion-MNIST (issue 6): trains the MLP supernet (configs/spaces/fmnist-mlp.yaml,
# configs/train/fmnist-mlp.yaml, 30 epochs), runs two evolution searches on 5,000 held-out training
# images with inherited weights (no bound, and at most 240K params), slices the two best children,
# the max and the min, and measures each on the 10,000 test images; then trains the two found
# children from scratch (nas-train-supernet --arch, same recipe and data) and tests them too.
# Prints one JSON line per child; every step resumes (a finished step is skipped). About 10 minutes
# on 2 idle cores.
# Usage: scripts/experiments/fmnist-mlp/run.sh [OUT] (default runs/fmnist-mlp). Env: BUILD (build),
#   THREADS (2), BUDGET (150), VAL_IMAGES (5000), TRAIN_FLAGS (more flags of every training, e.g.
#   --epochs 1 --train-limit 512), TEST_IMAGES (-1: all), MAX_TIME (2: nas-benchmark's).
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=${1:-runs/fmnist-mlp}
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
BUDGET=${BUDGET:-150}
VAL_IMAGES=${VAL_IMAGES:-5000}
read -r -a train_flags <<< "${TRAIN_FLAGS:-}"
TEST_IMAGES=${TEST_IMAGES:--1}
MAX_TIME=${MAX_TIME:-2}
mkdir -p "$OUT"
# train.log holds the summary of a finished training: its steps equal its total_steps.
finished() { /usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(j["steps"] != j["total_steps"])' "$1" 2>/dev/null; }
if [[ ! -f $OUT/supernet/supernet.ckpt ]] || ! finished "$OUT/train.log"; then
  flags=("${train_flags[@]}"); [[ -f $OUT/supernet/supernet.ckpt ]] && flags=(--resume)
  "$BUILD/nas-train-supernet" --space configs/spaces/fmnist-mlp.yaml --train configs/train/fmnist-mlp.yaml \
    --out "$OUT/supernet" --threads "$THREADS" "${flags[@]}" 2> "$OUT/train.err" | tee "$OUT/train.log"
fi
search() {  # name, constraint flags...
  local name=$1; shift
  [[ -f $OUT/search-$name.json ]] || "$BUILD/nas-search" --supernet "$OUT/supernet/supernet.ckpt" --strategy evolution \
    --budget "$BUDGET" --val-images "$VAL_IMAGES" --threads "$THREADS" -q "$@" --out "$OUT/search-$name.json"
}
search free
search 240k --max-params 240000
for child in free 240k; do  # the from-scratch twins of the found children
  [[ -f $OUT/scratch-$child/child.ckpt ]] || "$BUILD/nas-train-supernet" --space configs/spaces/fmnist-mlp.yaml \
    --train configs/train/fmnist-mlp.yaml --arch "$OUT/search-$child.json" --out "$OUT/scratch-$child" \
    --threads "$THREADS" -q "${train_flags[@]}" > /dev/null
  ln -sf "scratch-$child/child.ckpt" "$OUT/child-scratch-$child.ckpt"
done
for child in free 240k max min scratch-free scratch-240k; do
  arch=$child; [[ $child == free || $child == 240k ]] && arch=$OUT/search-$child.json
  [[ -e $OUT/child-$child.ckpt ]] || "$BUILD/nas-slice" --supernet "$OUT/supernet/supernet.ckpt" --arch "$arch" \
    --out "$OUT/child-$child.ckpt" --threads "$THREADS" -q > /dev/null
  [[ -f $OUT/bench-$child.json ]] || "$BUILD/nas-benchmark" --model "$OUT/child-$child.ckpt" --threads "$THREADS" \
    --test-images "$TEST_IMAGES" --max-time "$MAX_TIME" -q --out "$OUT/bench-$child.json"
  /usr/bin/python3 - "$OUT/bench-$child.json" "$child" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
m = j["model"]
print(json.dumps({"child": sys.argv[2], "layers": ", ".join("%d %s" % (l["width"], l["act"]) for l in m["arch"]["layers"]),
                  "test_top1": j["accuracy"]["top1"], "params": m["params"], "mflops": round(m["mflops"], 3),
                  "latency_ms_b1": round(j["latency"]["median_ms"], 4)}))
PY
done
