#!/usr/bin/env bash
# What glibc's malloc thresholds do to latency measurements (issue 5): the same 100 random children
# of the Fashion-MNIST space, each measured end to end in 3 rounds, once with the tools' tuned
# malloc (tune_allocator: fixed 32 MiB mmap threshold, no heap trim) and once with glibc's
# defaults (NAS_SYSTEM_MALLOC=1, like --system-malloc), in one invocation. Prints, for each, how
# well round 2 agrees with round 1 (MAPE, Kendall tau: the ceiling of any latency predictor), the
# median latency and the process's minor page faults.
# Usage: scripts/bench/allocator.sh [LUT] (default: builds one under WORK). Env: BUILD (build),
#   THREADS (1), ARCHS (100), SPACE (configs/spaces/fmnist-mbconv.yaml), WORK (runs/allocator),
#   LUT_FLAGS (more nas-benchmark --build-lut flags).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-1}
SPACE=${SPACE:-configs/spaces/fmnist-mbconv.yaml}
WORK=${WORK:-runs/allocator}
read -r -a lut_flags <<< "${LUT_FLAGS:-}"
cmake --build "$BUILD" --target nas-benchmark nas-bench-latency > /dev/null
LUT=${1:-}
mkdir -p "$WORK"
if [[ -z $LUT ]]; then
  LUT=$WORK/lut.json
  "$BUILD/nas-benchmark" --build-lut --space "$SPACE" --threads "$THREADS" --rounds 1 -q "${lut_flags[@]}" --out "$LUT"
fi
for setting in tuned system; do
  env=()
  [[ $setting == system ]] && env=(NAS_SYSTEM_MALLOC=1)
  /usr/bin/time -f '%R' -o "$WORK/faults" env "${env[@]}" "$BUILD/nas-bench-latency" --lut "$LUT" --space "$SPACE" \
    --threads "$THREADS" --archs "${ARCHS:-100}" --rounds 3 > "$WORK/latency.json"
  /usr/bin/python3 - "$setting" "$(tail -1 "$WORK/faults")" "$WORK/latency.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[3]))
a = j["round2_vs_round1"]
print(json.dumps({"malloc": sys.argv[1], "round2_vs_round1_mape": round(a["mape"], 4),
                  "round2_vs_round1_tau": round(a["kendall_tau"], 3), "measured_ms_median": round(j["measured_ms_median"], 4),
                  "minor_page_faults": int(sys.argv[2])}))
PY
done
