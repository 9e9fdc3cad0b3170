#!/usr/bin/env bash
# One child of the Fashion-MNIST experiment: slice it from the supernet (inherited weights, BN
# recalibrated), train the same architecture from scratch, and, when FINETUNE_EPOCHS > 0, fine-tune
# the inherited weights for that many epochs. Benchmarks run afterwards, one at a time, so that
# latency is never measured next to a training process.
# Rerunnable: what is done is skipped, and a stopped training continues bit for bit (train.sh).
#   twin.sh BUILD SPACE TRAIN SUPERNET EPOCHS THREADS TRAIN_LIMIT FINETUNE_EPOCHS ARCH.json
set -euo pipefail
build=$1 space=$2 train=$3 supernet=$4 epochs=$5 threads=$6 limit=$7 finetune=$8 arch=$9
here=$(dirname "$0")
dir=$(dirname "$arch")
h=$(basename "$arch" .json)
if [[ ! -f $dir/$h.inherited.ckpt ]]; then
  "$build/nas-slice" --supernet "$supernet" --arch "$arch" --out "$dir/$h.inherited.ckpt" --threads "$threads" > /dev/null
fi
# Quiet: several twins run at once; each one's progress is in its train.log, a failure's last line
# is printed.
QUIET=1 "$here/train.sh" "$build" "$dir/$h.scratch" "$threads" --space "$space" --train "$train" --arch "$arch" \
  --epochs "$epochs" --train-limit "$limit"
if ((finetune > 0)); then
  QUIET=1 "$here/train.sh" "$build" "$dir/$h.finetune" "$threads" --init-from "$supernet" --train "$train" \
    --arch "$arch" --epochs "$finetune" --train-limit "$limit"
fi
echo "child $h: sliced, trained from scratch$( ((finetune > 0)) && echo ', fine-tuned')" >&2
