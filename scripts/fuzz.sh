#!/usr/bin/env bash
# Fuzzes the input readers with libFuzzer (Debian's clang), each target for SECONDS (default 600),
# instrumented with AddressSanitizer and UndefinedBehaviorSanitizer:
#   spec  the YAML/JSON document reader and every spec reader (spaces, train specs, archs, search
#         results, generic spaces, latency tables)
#   meta  the checkpoint metadata reader (with its embedded space, train spec and arch)
#   data  the IDX (raw and gzip), CIFAR binary and CSV readers
# Seeds: fuzz/corpus/<target>/ (checked in); the growing corpus, logs and any crash input go to
# runs/fuzz/<target>/. Prints, per target, the time, the executions and the crashes; exits 1 if a
# target crashed (a crash input becomes a regression test: tests/data/fuzz/).
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]. Env: JOBS (targets run side by side, default 1).
set -uo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -eq 0 ]] && TARGETS=(spec meta data)
JOBS=${JOBS:-1}
CXX=clang++ CC=clang cmake -S . -B build-fuzz -DNAS_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null || exit 1
cmake --build build-fuzz -j2 > /dev/null || exit 1
run_target() {
  local t=$1 work=runs/fuzz/$1
  mkdir -p "$work/corpus" "$work/artifacts"
  ./build-fuzz/fuzz_"$t" -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
    -artifact_prefix="$work/artifacts/" -print_final_stats=1 "$work/corpus" "fuzz/corpus/$t" > "$work/log.txt" 2>&1
}
pids=()
for t in "${TARGETS[@]}"; do
  run_target "$t" &
  pids+=($!)
  if (( ${#pids[@]} >= JOBS )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
wait
rc=0
for t in "${TARGETS[@]}"; do
  work=runs/fuzz/$t
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$work/log.txt")
  crashes=$(find "$work/artifacts" -type f | wc -l)
  corpus=$(find "$work/corpus" -type f | wc -l)
  secs=$(awk '/^Done [0-9]+ runs in/ {print $5}' "$work/log.txt")
  echo "$t: ${secs:-stopped early, of ${SECS}} s, ${execs:-?} executions, corpus $corpus inputs, $crashes crashes"
  if (( crashes > 0 )); then
    rc=1
    find "$work/artifacts" -type f | sed 's/^/  /'
    grep -m3 -E "ERROR|SUMMARY|terminate|what\(\)" "$work/log.txt" | sed 's/^/  /'
  fi
done
exit $rc
