#!/usr/bin/env bash
# One training run of the Fashion-MNIST experiment (the supernet, a from-scratch twin, a fine-tune)
# into OUT, rerunnable: a run that finished is skipped (OUT/train.json, the tool's summary, exists),
# one that was stopped (OUT/supernet.ckpt, no summary) continues with --resume, bit for bit.
# Progress goes to OUT/train.log, and to the terminal too unless QUIET=1; a failure prints the
# log's last line.
#   train.sh BUILD OUT THREADS [nas-train-supernet flags for a fresh run...]
set -euo pipefail
build=$1 out=$2 threads=$3
shift 3
mkdir -p "$out"
if [[ -f $out/train.json ]]; then
  echo "$out: already trained" >&2
  exit 0
fi
if [[ -f $out/supernet.ckpt ]]; then
  flags=(--resume)
else
  flags=("$@")
fi
rc=0
if [[ ${QUIET:-0} == 1 ]]; then
  "$build/nas-train-supernet" --out "$out" --threads "$threads" "${flags[@]}" > "$out/train.json.tmp" \
    2>> "$out/train.log" || rc=$?
else
  # tee ignores Ctrl-C, so that the trainer can still write its checkpoint message after one.
  "$build/nas-train-supernet" --out "$out" --threads "$threads" "${flags[@]}" > "$out/train.json.tmp" \
    2> >(trap '' INT TERM; exec tee -a "$out/train.log" >&2) || rc=$?
fi
if ((rc != 0)); then
  echo "train.sh: $out: nas-train-supernet exited $rc: $(tr '\r' '\n' < "$out/train.log" | grep -v '^$' | tail -n 1)" >&2
  exit "$rc"
fi
mv "$out/train.json.tmp" "$out/train.json"
