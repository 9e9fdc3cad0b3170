#!/usr/bin/env bash
# What --threads does to each tool's CPU use (issue 8: never oversubscribe). Runs the same small
# jobs (a 30-step supernet training, a 10-child search, a benchmark of the max child) with
# --threads 1, --threads 2, the default, the default under `taskset -c 0`, and the default with
# OMP_NUM_THREADS=1, in one invocation. Prints one JSON line per run from the tool's last log line
# (cli::usage_line): CPU seconds, wall seconds, cores used (CPU / wall), busy threads, LibTorch's
# thread count. Env: BUILD (build), WORK (runs/threads), STEPS (30), BUDGET (10).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
WORK=${WORK:-runs/threads}
STEPS=${STEPS:-30}
BUDGET=${BUDGET:-10}
cmake --build "$BUILD" --target nas-train-supernet nas-search nas-slice nas-benchmark > /dev/null
mkdir -p "$WORK"
SPACE=tests/data/tiny-space.yaml
TRAIN=tests/data/tiny-train.yaml
if [[ ! -f $WORK/child.ckpt ]]; then
  "$BUILD/nas-train-supernet" --space $SPACE --train $TRAIN --out "$WORK/sn" --stop-after-steps "$STEPS" -q > /dev/null
  "$BUILD/nas-slice" --supernet "$WORK/sn/supernet.ckpt" --arch max --out "$WORK/child.ckpt" -q > /dev/null
fi

run() {  # run LABEL TOOL PREFIX... -- FLAGS...: PREFIX runs the tool (env, taskset), FLAGS follow its own
  local label=$1 tool=$2
  shift 2
  rm -rf "$WORK/out"
  local prefix=() args=()
  while [[ $1 != -- ]]; do prefix+=("$1"); shift; done
  shift
  case $tool in
    train) args=("$BUILD/nas-train-supernet" --space $SPACE --train $TRAIN --out "$WORK/out" --stop-after-steps "$STEPS") ;;
    search) args=("$BUILD/nas-search" --supernet "$WORK/sn/supernet.ckpt" --strategy random --budget "$BUDGET" --val-images 500) ;;
    bench) args=("$BUILD/nas-benchmark" --model "$WORK/child.ckpt" --reps 20 --min-time 0.5 --throughput-batch 64) ;;
  esac
  "${prefix[@]}" "${args[@]}" "$@" > /dev/null 2> "$WORK/err.txt" || { echo "threads.sh: $label $tool failed" >&2; cat "$WORK/err.txt" >&2; exit 1; }
  /usr/bin/python3 - "$label" "$tool" "$WORK/err.txt" <<'PY'
import json, re, sys
label, tool, err = sys.argv[1:]
m = re.search(r"peak RSS ([0-9.]+) MiB; CPU ([0-9.]+) s in ([0-9.]+) s \(([0-9.]+) cores\); (\d+) busy of (\d+) threads; "
              r"--threads (\d+)", open(err).read())
print(json.dumps({"run": label, "tool": tool, "torch_threads": int(m.group(7)), "cpu_s": float(m.group(2)),
                  "wall_s": float(m.group(3)), "cores": float(m.group(4)), "busy_threads": int(m.group(5)),
                  "live_threads": int(m.group(6)), "peak_rss_mib": float(m.group(1))}))
PY
}

for tool in train search bench; do
  run "--threads 1" $tool env -u OMP_NUM_THREADS -- --threads 1
  run "--threads 2" $tool env -u OMP_NUM_THREADS -- --threads 2
  run "default" $tool env -u OMP_NUM_THREADS --
  run "default, taskset -c 0" $tool env -u OMP_NUM_THREADS taskset -c 0 --
  run "default, OMP_NUM_THREADS=1" $tool env OMP_NUM_THREADS=1 --
done
