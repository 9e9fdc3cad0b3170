#!/bin/sh
# One child of the Fashion-MNIST experiment: slice it from the supernet (inherited weights, BN
# recalibrated) and train the same architecture from scratch. Benchmarks run afterwards, one at a
# time, so that latency is never measured next to a training process.
# Rerunnable: a child already sliced or trained is skipped, and a from-scratch run that was stopped
# (its checkpoint is there, not finished) continues with --resume, bit for bit.
#   twin.sh BUILD SPACE TRAIN SUPERNET EPOCHS THREADS TRAIN_LIMIT ARCH.json
set -eu
build=$1 space=$2 train=$3 supernet=$4 epochs=$5 threads=$6 limit=$7 arch=$8
dir=$(dirname "$arch")
h=$(basename "$arch" .json)
if [ ! -f "$dir/$h.inherited.ckpt" ]; then
  "$build/nas-slice" --supernet "$supernet" --arch "$arch" --out "$dir/$h.inherited.ckpt" \
    --threads "$threads" > /dev/null
fi
out="$dir/$h.scratch"
mkdir -p "$out"
if [ -f "$out/child.ckpt" ]; then
  echo "child $h: already trained from scratch" >&2
  exit 0
elif [ -f "$out/supernet.ckpt" ]; then
  "$build/nas-train-supernet" --out "$out" --resume --threads "$threads" > "$out/train.json" 2>> "$out/train.log"
else
  "$build/nas-train-supernet" --space "$space" --train "$train" --arch "$arch" --out "$out" \
    --epochs "$epochs" --threads "$threads" --train-limit "$limit" > "$out/train.json" 2> "$out/train.log"
fi
echo "child $h: sliced and trained from scratch" >&2
