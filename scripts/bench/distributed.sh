#!/usr/bin/env bash
# Scaling of data-parallel supernet training (issue 7) on this machine, in one invocation: the same
# run (the Fashion-MNIST mbconv space, global batch BATCH, STEPS sandwich steps) on 1 process with
# 1 thread (the baseline), on PROCS processes with 1 thread each over 127.0.0.1 (Gloo), with and
# without synchronized BN, and on 1 process with PROCS threads, as one OpenMP team (--workers 1) and
# as PROCS shard workers (the default since issue 18); and, as the ceiling of any way of sharing
# the cores, PROCS independent 1-thread runs side by side (no communication; their images/s summed). Prints images/s (steady state: the metrics windows after the first), the speedup and
# scaling efficiency against the baseline, and the gradient all-reduce time per step, separately;
# then the latency of one all-reduce between PROCS processes (bench/allreduce_bench.cpp).
# Usage: scripts/bench/distributed.sh [OUT] (default runs/bench-distributed; emptied first, and only
#   when it is empty or an earlier run's). Env: BUILD (build), PROCS (2), STEPS (60), BATCH (128),
#   SPACE (configs/spaces/fmnist-mbconv.yaml).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PROCS=${PROCS:-2}
STEPS=${STEPS:-60}
BATCH=${BATCH:-128}
SPACE=${SPACE:-configs/spaces/fmnist-mbconv.yaml}
cmake --build "$BUILD" --target nas-train-supernet nas-bench-allreduce > /dev/null
OUT=${1:-runs/bench-distributed}
if [[ -d $OUT && -n $(ls -A "$OUT") && ! -f $OUT/train-false.yaml ]]; then
  echo "distributed.sh: $OUT: not an earlier run of this script (no train-false.yaml); not emptying it" >&2
  exit 2
fi
rm -rf "$OUT"
mkdir -p "$OUT"
for bn in false true; do
  sed -e "s/^checkpoint_every_steps:.*/checkpoint_every_steps: 100000/" -e "s/^log_every_steps:.*/log_every_steps: 10/" \
    -e "s/^sync_bn:.*/sync_bn: $bn/" configs/train/fmnist.yaml > "$OUT/train-$bn.yaml"
  grep -q "^sync_bn: $bn" "$OUT/train-$bn.yaml" || { echo "distributed.sh: no sync_bn key in configs/train/fmnist.yaml" >&2; exit 2; }
done
# Enough images for STEPS steps in one epoch.
common=(--space "$SPACE" --batch-size "$BATCH" --epochs 1 --train-limit $((STEPS * BATCH)) --validation-images 1000 -q)
run1() {  # name threads spec [flags...]
  local name=$1 threads=$2 spec=$3
  shift 3
  "$BUILD/nas-train-supernet" "${common[@]}" --train "$OUT/train-$spec.yaml" --threads "$threads" --out "$OUT/$name" "$@" > /dev/null
}
runp() {  # name spec
  local port=$((29700 + RANDOM % 2000)) pids=() r
  for ((r = 1; r < PROCS; r++)); do
    MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=$PROCS RANK=$r LOCAL_RANK=$r LOCAL_WORLD_SIZE=$PROCS \
      "$BUILD/nas-train-supernet" "${common[@]}" --train "$OUT/train-$2.yaml" --threads 1 --out "$OUT/$1" > /dev/null &
    pids+=($!)
  done
  MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=$PROCS RANK=0 LOCAL_RANK=0 LOCAL_WORLD_SIZE=$PROCS \
    "$BUILD/nas-train-supernet" "${common[@]}" --train "$OUT/train-$2.yaml" --threads 1 --out "$OUT/$1" > /dev/null
  wait "${pids[@]}"
}
run1 base 1 false
runp procs false
runp procs-syncbn true
run1 threads "$PROCS" false --workers 1
run1 workers "$PROCS" false
pids=()
for ((r = 0; r < PROCS; r++)); do
  run1 "independent-$r" 1 false &
  pids+=($!)
done
wait "${pids[@]}"
/usr/bin/python3 - "$OUT" "$PROCS" <<'PY'
import json, sys
out, procs = sys.argv[1], int(sys.argv[2])
def stats(name):
    rows = [json.loads(l) for l in open(f"{out}/{name}/metrics.jsonl")][1:]  # after the first window
    ips = sum(r["images_per_s"] for r in rows) / len(rows)
    ar = sum(r.get("allreduce_s_per_step", 0) for r in rows) / len(rows)
    return ips, ar
def independent():  # the side-by-side runs' images/s, summed
    return sum(stats(f"independent-{r}")[0] for r in range(procs)), 0.0
base, _ = stats("base")
print(f"{'run':44s} {'images/s':>9s} {'speedup':>8s} {'efficiency':>10s} {'all-reduce ms/step':>18s}")
for name, what in [("base", "1 process, 1 thread (baseline)"),
                   ("procs", f"{procs} processes x 1 thread, BN per process"),
                   ("procs-syncbn", f"{procs} processes x 1 thread, synchronized BN"),
                   ("threads", f"1 process, {procs} threads, --workers 1"),
                   ("workers", f"1 process, {procs} shard workers (default)"),
                   ("independent", f"ceiling: {procs} independent 1-thread runs")]:
    ips, ar = independent() if name == "independent" else stats(name)
    n = procs if name != "base" else 1
    print(f"{what:44s} {ips:9.1f} {ips / base:8.2f} {ips / base / n:10.2f} {1000 * ar:18.1f}")
PY
port=$((29700 + RANDOM % 2000))
for ((r = 1; r < PROCS; r++)); do
  MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=$PROCS RANK=$r "$BUILD/nas-bench-allreduce" &
done
MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=$PROCS RANK=0 "$BUILD/nas-bench-allreduce"
wait
