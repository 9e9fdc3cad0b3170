#!/usr/bin/env bash
# Zero-cost proxies against trained accuracy on Fashion-MNIST (issue 21): CHILDREN random children
# of configs/spaces/fmnist-mbconv.yaml, each trained briefly from scratch (the low-fidelity
# estimator: LF_EPOCHS epochs on LF_IMAGES training images, validation accuracy on VAL images),
# and the same children scored by every proxy on their initial weights (the weights that training
# starts from) and, with SUPERNET, on weights inherited from that supernet of the same space. The
# same --seed and the random strategy give every search the same children. report.py computes
# each proxy's Spearman rho and Kendall tau against the trained accuracy.
# Every step resumes or skips when done: rerun the same command. Run it alone on the machine.
# Usage: scripts/experiments/proxies/run.sh [OUT] (default runs/proxies).
# Env: BUILD (build), THREADS (2), CHILDREN (60), LF_EPOCHS (2), LF_IMAGES (4000), VAL (2000),
#   SUPERNET (runs/fmnist-quick/supernet/supernet.ckpt when it exists), PUBLISH (docs/results).
set -euo pipefail
cd "$(dirname "$0")/../../.."
source scripts/search-helpers.sh
OUT=${1:-runs/proxies}
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
CHILDREN=${CHILDREN:-60}
LF_EPOCHS=${LF_EPOCHS:-2}
LF_IMAGES=${LF_IMAGES:-4000}
VAL=${VAL:-2000}
SUPERNET=${SUPERNET:-runs/fmnist-quick/supernet/supernet.ckpt}
PUBLISH=${PUBLISH:-docs/results}
SPACE=configs/spaces/fmnist-mbconv.yaml
TRAIN=configs/train/fmnist.yaml
SEED=7
mkdir -p "$OUT"
cmake --build "$BUILD" --target nas-search > /dev/null
search() {  # out file, nas-search flags...
  local f=$1
  shift
  resumable_search "$f" --strategy random --budget "$CHILDREN" --seed "$SEED" --threads "$THREADS" -q "$@"
}
search "$OUT/trained.json" --space "$SPACE" --train "$TRAIN" --estimator low-fidelity --lf-epochs "$LF_EPOCHS" \
  --lf-images "$LF_IMAGES" --val-images "$VAL"
files=()
for p in synflow grad-norm snip jacov nwot; do
  search "$OUT/$p-init.json" --space "$SPACE" --train "$TRAIN" --estimator zero-cost --proxy "$p" --proxy-weights init
  files+=("$OUT/$p-init.json")
  if [[ -f $SUPERNET ]]; then
    search "$OUT/$p-inherited.json" --supernet "$SUPERNET" --estimator zero-cost --proxy "$p" --proxy-weights inherited
    files+=("$OUT/$p-inherited.json")
  fi
done
python3 scripts/experiments/proxies/report.py --trained "$OUT/trained.json" --out "$PUBLISH/proxies.json" "${files[@]}"
