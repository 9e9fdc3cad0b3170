#!/bin/sh
# One child of the Fashion-MNIST experiment: slice it from the supernet (inherited weights, BN
# recalibrated) and train the same architecture from scratch. Benchmarks run afterwards, one at a
# time, so that latency is never measured next to a training process.
#   child.sh BUILD SPACE TRAIN SUPERNET EPOCHS THREADS TRAIN_LIMIT ARCH.json
set -eu
build=$1 space=$2 train=$3 supernet=$4 epochs=$5 threads=$6 limit=$7 arch=$8
dir=$(dirname "$arch")
h=$(basename "$arch" .json)
"$build/nas-slice" --supernet "$supernet" --arch "$arch" --out "$dir/$h.inherited.ckpt" \
  --threads "$threads" > /dev/null
mkdir -p "$dir/$h.scratch"
"$build/nas-train-supernet" --space "$space" --train "$train" --arch "$arch" --out "$dir/$h.scratch" \
  --epochs "$epochs" --threads "$threads" --train-limit "$limit" > "$dir/$h.scratch/train.json" \
  2> "$dir/$h.scratch/train.log"
echo "child $h: sliced and trained from scratch" >&2
