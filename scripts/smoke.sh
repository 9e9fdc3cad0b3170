#!/usr/bin/env bash
# The measurement scripts in a smoke mode (ctest entry `scripts`, label scripts): every script under
# scripts/bench and scripts/experiments runs with tiny step counts, budgets and image counts, and
# must exit 0 and print its figure line. What a script needs from an earlier run (a trained
# supernet, its searches) comes from a small run made here first. A script that is neither smoked
# nor listed in PENDING fails the check, so that a new script cannot rot unseen.
# The figures themselves mean nothing at these sizes; only that the scripts still run.
# Usage: scripts/smoke.sh [WORK] (default: a temporary directory, removed at the end).
#   Env: BUILD (build), ONLY (a regular expression: smoke only the matching scripts).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(cd "${BUILD:-build}" && pwd)  # absolute: some scripts run from elsewhere
export BUILD
failed=0
if [[ -n ${1:-} ]]; then
  WORK=$1
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d)
  trap '((failed)) && echo "smoke: the logs are kept in $WORK" >&2 || rm -rf "$WORK"' EXIT
fi
WORK=$(cd "$WORK" && pwd)
ONLY=${ONLY:-.}
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the source tree

# Not smoked yet (issue 22, item 8): none. A script that cannot be smoked goes here, with why.
PENDING=()

covered=()
skipped=()
# skip NAME WHY SCRIPT...: SCRIPT... cannot run on this machine; said on stderr and in the summary.
skip() {
  local name=$1 why=$2
  shift 2
  covered+=("$@")
  [[ $name =~ $ONLY ]] && skipped+=("$name ($why)")
  return 0
}
# smoke NAME FIGURE_REGEX SCRIPT... -- COMMAND...: runs COMMAND (the smoke of SCRIPT...) with its
# stdout in $WORK/NAME.out and stderr in $WORK/NAME.err; it must exit 0 and print a line matching
# FIGURE_REGEX on stdout.
smoke() {
  local name=$1 figure=$2
  shift 2
  while [[ $1 != -- ]]; do covered+=("$1"); shift; done
  shift
  [[ $name =~ $ONLY ]] || return 0
  local start=$SECONDS rc=0
  "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" || rc=$?
  if ((rc != 0)); then
    echo "smoke: $name: exited $rc; the end of its stderr:" >&2
    tail -n 5 "$WORK/$name.err" | sed 's/^/  /' >&2
    failed=1
  elif ! grep -Eq "$figure" "$WORK/$name.out"; then
    echo "smoke: $name: no figure line (expected one matching /$figure/ on stdout)" >&2
    failed=1
  else
    echo "smoke: $name ok ($((SECONDS - start)) s): $(grep -E "$figure" "$WORK/$name.out" | tail -n 1 | cut -c1-100)" >&2
  fi
}

# The earlier run that search.sh reads: a tiny supernet, trained briefly, and its two searches,
# named as the Fashion-MNIST experiment names them. (proxies/run.sh reads the supernet of the
# experiment's own smoke, below.)
run=$WORK/run
if [[ search =~ $ONLY ]] && [[ ! -f $run/search-100k.json ]]; then
  mkdir -p "$run"
  "$BUILD/nas-train-supernet" --space tests/data/tiny-space.yaml --train tests/data/tiny-train.yaml \
    --out "$run/supernet" --train-limit 512 --epochs 1 --threads 2 -q > /dev/null
  for bound in "" 100k; do
    flags=(--max-params 100000)
    [[ -z $bound ]] && flags=()
    "$BUILD/nas-search" --supernet "$run/supernet/supernet.ckpt" --strategy random --budget 12 --val-images 200 \
      --calib-images 64 --threads 2 -q "${flags[@]}" --out "$run/search${bound:+-$bound}.json"
  done
fi
lut_flags="--rounds 1 --op-max-time 0.02 --calib-archs 2"

smoke hyperband '"what": "hyperband", "scored_on": "test"' scripts/bench/hyperband.sh scripts/bench/hyperband_report.py -- \
  env SEEDS=1 LF=256 VAL=200 MAX=2 ETA=2 RANDOM_BUDGET=2 HB_BUDGET=3 scripts/bench/hyperband.sh "$WORK/hyperband"
smoke search '"what": ?"inherited_estimator"' scripts/bench/search.sh -- \
  env SEEDS=1 scripts/bench/search.sh "$run"
smoke strategies '"objectives": ?\["accuracy", ?"latency_ms"\]' scripts/bench/strategies.sh -- \
  env SEEDS=1 CELL_EPOCHS=1 CELL_CHILDREN=12 CELL_TRAIN_FLAGS="--train-limit 256 --validation-images 200" \
  MBCONV_SPACE=tests/data/tiny-space.yaml MBCONV_TRAIN=tests/data/tiny-train.yaml MBCONV_EPOCHS=1 \
  MBCONV_TRAIN_FLAGS="--train-limit 512" MBCONV_CHILDREN=12 MBCONV_BOUND="--max-params 100000" \
  LUT_FLAGS="$lut_flags" scripts/bench/strategies.sh "$WORK/strategies"
smoke threads '"run": "default"' scripts/bench/threads.sh -- \
  env WORK="$WORK/threads" STEPS=3 BUDGET=2 scripts/bench/threads.sh
smoke latency_accuracy '"round2_vs_round1": ?\{' scripts/bench/latency_accuracy.sh -- \
  env SPACE=tests/data/tiny-space.yaml ARCHS=4 MODEL_ARCHS=4 ROUNDS=2 LUT_FLAGS="--op-max-time 0.02 --calib-archs 2" \
  scripts/bench/latency_accuracy.sh "$WORK/latency"
if [[ -x /usr/bin/time ]]; then
  smoke allocator '"malloc": "system", "round2_vs_round1_mape": [0-9]' scripts/bench/allocator.sh -- \
    env SPACE=tests/data/tiny-space.yaml WORK="$WORK/allocator" ARCHS=4 LUT_FLAGS="--op-max-time 0.02 --calib-archs 2" \
    scripts/bench/allocator.sh
else
  skip allocator "no /usr/bin/time: scripts/setup.sh installs it" scripts/bench/allocator.sh
fi

# The Fashion-MNIST recipe at tiny sizes: 16 images a batch, a few steps.
tiny_train="--batch-size 16 --train-limit 512 --validation-images 200"
tiny_bench="--test-images 300 --max-time 0.05 --ci 0"
smoke channels_last 'training images/s .* ratio' scripts/bench/channels_last.sh -- \
  env TRAIN_FLAGS="$tiny_train" THREADS=2 scripts/bench/channels_last.sh 20
smoke under_load '^idle: default / --workers 1' scripts/bench/under_load.sh -- \
  env STEPS=20 SETTINGS="default|--workers 1" LOADS="idle light" TRAIN_FLAGS="$tiny_train" \
  scripts/bench/under_load.sh "$WORK/under_load"
smoke distributed 'all-reduce of .* us' scripts/bench/distributed.sh -- \
  env STEPS=20 BATCH=16 scripts/bench/distributed.sh "$WORK/distributed"
if /usr/bin/python3 -c 'import torch, numpy, yaml' 2> /dev/null; then
  smoke train_step 'sandwich step: C\+\+' scripts/bench/train_step.sh scripts/bench/py_reference.py -- \
    env BATCH=16 THREADS=2 scripts/bench/train_step.sh 10
else
  skip train_step "its Python side needs python3-torch, -numpy and -yaml" scripts/bench/train_step.sh \
    scripts/bench/py_reference.py
fi
# Whether memory.sh can make a memory cgroup here (root, a writable cgroup v2 with the memory
# controller, or v1's memory hierarchy): a probe group made and removed, as memory.sh makes its own.
can_limit_memory() {
  [[ $(id -u) == 0 ]] || return 1
  local root=/sys/fs/cgroup probe
  if [[ -f $root/cgroup.controllers ]]; then
    echo +memory > "$root/cgroup.subtree_control" 2> /dev/null || true
  else
    root=/sys/fs/cgroup/memory
  fi
  probe=$root/nas-smoke-probe-$$
  mkdir "$probe" 2> /dev/null || return 1
  local ok=1
  [[ -f $probe/memory.max || -f $probe/memory.limit_in_bytes ]] && ok=0
  rmdir "$probe"
  return "$ok"
}
if can_limit_memory; then
  smoke memory '"data": "packed", .*"memory_limit_mib": [0-9]+, "exit": 0' scripts/bench/memory.sh -- \
    env WORK="$WORK/memory" COPIES=2 DROP_CACHES=0 scripts/bench/memory.sh
else
  skip memory "needs root and a memory cgroup it may make" scripts/bench/memory.sh
fi
smoke csv '"found_test_mean"' scripts/experiments/csv/run.sh -- \
  env SEEDS=0 BUDGET=4 scripts/experiments/csv/run.sh breast-cancer "$WORK/csv"
smoke fmnist_experiment '^\| best <= 100K params \| [0-9a-f]{16} \|' scripts/experiments/fmnist/Makefile scripts/experiments/fmnist/train.sh \
  scripts/experiments/fmnist/twin.sh scripts/experiments/fmnist/report.py -- \
  make -s -f scripts/experiments/fmnist/Makefile BUDGET=quick OUT="$WORK/fmnist" BUILD="$BUILD" EPOCHS=1 PUBLISH= \
  SPACE="$PWD/configs/spaces/fmnist-mbconv.yaml" TRAIN="$PWD/configs/train/fmnist.yaml" \
  TRAIN_LIMIT=512 SEARCH_BUDGET=4 VAL_IMAGES=200 CHILDREN=2 FINETUNE_EPOCHS=1 THREADS=2 PY=/usr/bin/python3 \
  BENCH_FLAGS="$tiny_bench"
smoke fmnist_cell '"strategy": "darts"' scripts/experiments/fmnist-cell/run.sh -- \
  env SUPERNET_EPOCHS=1 CHILD_EPOCHS=1 DARTS_STEPS=2 BUDGET=3 VAL_IMAGES=200 TEST_IMAGES=300 MAX_TIME=0.05 \
  TRAIN_FLAGS="--train-limit 256 --validation-images 200" scripts/experiments/fmnist-cell/run.sh "$WORK/fmnist-cell"
smoke fmnist_mlp '"child": "scratch-240k"' scripts/experiments/fmnist-mlp/run.sh -- \
  env BUDGET=3 VAL_IMAGES=200 TEST_IMAGES=300 MAX_TIME=0.05 \
  TRAIN_FLAGS="--epochs 1 --train-limit 512 --validation-images 200" \
  scripts/experiments/fmnist-mlp/run.sh "$WORK/fmnist-mlp"
smoke proxies '^\| synflow \| init' scripts/experiments/proxies/run.sh scripts/experiments/proxies/report.py -- \
  env CHILDREN=4 LF_EPOCHS=1 LF_IMAGES=256 VAL=200 SUPERNET="$WORK/fmnist/supernet/supernet.ckpt" PUBLISH="$WORK/proxies" \
  scripts/experiments/proxies/run.sh "$WORK/proxies"

# Every script is smoked or pending, and nothing pending is smoked too.
while IFS= read -r f; do
  if ! printf '%s\n' "${covered[@]}" "${PENDING[@]}" | grep -xF "$f" > /dev/null; then
    echo "smoke: $f: neither smoked nor in PENDING (scripts/smoke.sh): give it a smoke run" >&2
    failed=1
  fi
done < <(find scripts/bench scripts/experiments -type f ! -name '*.md' | sort)
for f in "${PENDING[@]}"; do
  if printf '%s\n' "${covered[@]}" | grep -xF "$f" > /dev/null; then
    echo "smoke: $f: smoked now; remove it from PENDING" >&2
    failed=1
  fi
done
((${#skipped[@]} == 0)) || echo "smoke: skipped on this machine: $(IFS=';'; echo "${skipped[*]}")" >&2
exit "$failed"
