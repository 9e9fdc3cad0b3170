# Shell helpers of the measurement scripts under scripts/bench and scripts/experiments; source it
# from the repository root with BUILD set.

# resumable_search OUT_FILE nas-search flags...: "$BUILD/nas-search" flags --out OUT_FILE, skipped
# when OUT_FILE records a finished search and continued with --resume when it records a stopped one.
resumable_search() {
  local f=$1 resume=()
  shift
  if [[ -f $f ]]; then
    grep -q '"interrupted": false' "$f" && return
    resume=(--resume)
  fi
  "$BUILD/nas-search" "$@" "${resume[@]}" --out "$f"
}

# machine_header DETAILS...: "# <UTC time> <CPU model>, <cores> cores, DETAILS" on stderr, the line a
# measurement starts with.
machine_header() {
  echo "# $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $*" >&2
}
