#!/usr/bin/env bash
# Training speed under load (issue 18), in one invocation: STEPS sandwich steps of the demo recipe
# (configs/spaces/fmnist-mbconv.yaml, configs/train/fmnist.yaml) under each load, for each setting:
#   loads:    idle; one busy core (a shell busy loop beside the training); a light load (a loop that
#             starts a short Python program every 0.1 s);
#   settings: the default (children on worker threads), --workers 1 (one child at a time on every
#             thread: the default before issue 18), --threads 1.
# Prints images/s (the mean over the 10-step metrics windows after the first), each run's ratio to
# the idle run of the same setting, and each setting's idle figure against --workers 1's.
# Usage: scripts/bench/under_load.sh [OUT] (default runs/bench-under-load; emptied first, and only
# when it is empty or an earlier run's). Env: BUILD (build), STEPS (40), SETTINGS (a |-separated list
# of flag sets; "default" is no flag), LOADS (idle busy light), TRAIN_FLAGS (more nas-train-supernet
# flags, e.g. --batch-size 16).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
STEPS=${STEPS:-40}
SETTINGS=${SETTINGS:-"default|--workers 1|--threads 1"}
LOADS=${LOADS:-"idle busy light"}
PY=/usr/bin/python3
cmake --build "$BUILD" --target nas-train-supernet > /dev/null
OUT=${1:-runs/bench-under-load}
read -r -a train_flags <<< "${TRAIN_FLAGS:-}"
if [[ -d $OUT && -n $(ls -A "$OUT") && ! -f $OUT/train.yaml ]]; then
  echo "under_load.sh: $OUT: not an earlier run of this script (no train.yaml); not emptying it" >&2
  exit 2
fi
rm -rf "$OUT"
mkdir -p "$OUT"
sed -e "s/^checkpoint_every_steps:.*/checkpoint_every_steps: 100000/" -e "s/^log_every_steps:.*/log_every_steps: 10/" \
  configs/train/fmnist.yaml > "$OUT/train.yaml"
load_pid=""
start_load() {
  case $1 in
    idle) load_pid="" ;;
    busy) bash -c 'while :; do :; done' & load_pid=$! ;;
    light) bash -c "while :; do $PY -c 'import json; json.dumps({})'; sleep 0.1; done" > /dev/null 2>&1 & load_pid=$! ;;
    *) echo "under_load.sh: unknown load $1 (idle, busy, light)" >&2; exit 2 ;;
  esac
  sleep 1  # the load running before the training starts
}
stop_load() {
  [[ -n "$load_pid" ]] && { kill "$load_pid" 2>/dev/null || true; wait "$load_pid" 2>/dev/null || true; }
  load_pid=""
}
trap stop_load EXIT
IFS='|' read -r -a settings <<< "$SETTINGS"
: > "$OUT/runs.tsv"
for load in $LOADS; do
  for i in "${!settings[@]}"; do
    flags=${settings[$i]}
    [[ $flags == default ]] && flags=""
    dir="$OUT/s$i-$load"
    start_load "$load"
    # shellcheck disable=SC2086
    "$BUILD/nas-train-supernet" --space configs/spaces/fmnist-mbconv.yaml --train "$OUT/train.yaml" --out "$dir" \
      --stop-after-steps "$STEPS" -q "${train_flags[@]}" $flags > /dev/null 2> "$dir.log"
    stop_load
    printf '%s\t%s\t%s\n' "${settings[$i]}" "$load" "$dir/metrics.jsonl" >> "$OUT/runs.tsv"
  done
done
$PY - "$OUT/runs.tsv" <<'PY'
import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
def rate(path):
    windows = [json.loads(l) for l in open(path)][1:]  # after the first (warm-up) window
    return sum(w["images_per_s"] for w in windows) / len(windows)
ips = {(s, load): rate(p) for s, load, p in rows}
settings = list(dict.fromkeys(s for s, _, _ in rows))
loads = list(dict.fromkeys(load for _, load, _ in rows))
print(f"{'setting':14s} " + " ".join(f"{l + ' images/s':>16s} {'vs idle':>8s}" for l in loads))
for s in settings:
    idle = ips.get((s, "idle"))
    cells = []
    for l in loads:
        v = ips[(s, l)]
        cells.append(f"{v:16.1f} {(v / idle if idle else float('nan')):8.2f}")
    print(f"{s:14s} " + " ".join(cells))
base = "--workers 1"
if (base, "idle") in ips:
    for s in settings:
        if s != base and (s, "idle") in ips:
            print(f"idle: {s} / {base} = {ips[(s, 'idle')] / ips[(base, 'idle')]:.2f}x")
PY
