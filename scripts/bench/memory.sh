#!/usr/bin/env bash
# Bounded memory on a big dataset (issue 8): nas-benchmark tests a child on a test set larger than
# the memory limit it runs under. The images are a plain IDX file (mapped in place) and the same
# file gzip-compressed (inflated once into a spill file under $TMPDIR, then mapped). Each run is
# timed against the same command without a limit, in this invocation.
# Prints one JSON line per run: data, limit, exit code, the tool's peak RSS, the cgroup's peak
# usage (page cache included), images per second and the ratio to the unlimited run.
# Needs root (a memory cgroup, v1 or v2). Env: BUILD (build), COPIES (copies of Fashion-MNIST's
# 10,000 test images: 100 = 1,000,000 images, 748 MiB), LIMIT_MIB (640), THREADS (2), WORK
# (runs/memory; the data need 1.5 GiB there, and $TMPDIR 750 MiB for the spill file), DROP_CACHES
# (1: drop the machine's page cache before each run, so that each starts cold; 0: leave it).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
COPIES=${COPIES:-100}
LIMIT_MIB=${LIMIT_MIB:-640}
THREADS=${THREADS:-2}
WORK=${WORK:-runs/memory}
FMNIST=/usr/share/datasets/fashion-mnist
cmake --build "$BUILD" --target nas-train-supernet nas-slice nas-benchmark > /dev/null
mkdir -p "$WORK/plain" "$WORK/packed"

# The child: a tiny supernet trained for 40 steps, its max child.
if [[ ! -f $WORK/child.ckpt ]]; then
  "$BUILD/nas-train-supernet" --space tests/data/tiny-space.yaml --train tests/data/tiny-train.yaml \
    --out "$WORK/sn" --stop-after-steps 40 --threads "$THREADS" -q > /dev/null
  "$BUILD/nas-slice" --supernet "$WORK/sn/supernet.ckpt" --arch max --out "$WORK/child.ckpt" -q > /dev/null
fi

# The data: COPIES x the real test set, as one IDX pair (the training files too, which --data's
# directory must hold; they are never read here).
if [[ ! -f $WORK/plain/t10k-images-idx3-ubyte || ! -f $WORK/packed/t10k-images-idx3-ubyte.gz ]]; then
  /usr/bin/python3 - "$FMNIST" "$WORK" "$COPIES" <<'PY'
import gzip, struct, sys, zlib
src, work, copies = sys.argv[1], sys.argv[2], int(sys.argv[3])
im = gzip.open(src + "/t10k-images-idx3-ubyte.gz").read()[16:]
lb = gzip.open(src + "/t10k-labels-idx1-ubyte.gz").read()[8:]
n = 10000 * copies
with open(work + "/plain/t10k-images-idx3-ubyte", "wb") as f:
    f.write(struct.pack(">IIII", 0x803, n, 28, 28))
    for _ in range(copies): f.write(im)
with gzip.open(work + "/packed/t10k-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
    f.write(struct.pack(">IIII", 0x803, n, 28, 28))
    for _ in range(copies): f.write(im)
for d in ("plain", "packed"):
    with open(work + "/" + d + "/t10k-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n))
        for _ in range(copies): f.write(lb)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        open(work + "/" + d + "/" + name, "wb").write(open(src + "/" + name, "rb").read())
PY
fi

# A fresh memory cgroup for each limited run (a v2 peak cannot be reset before Linux 6.12).
CG_ROOT=""
if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
  CG_ROOT=/sys/fs/cgroup
  echo +memory > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
elif [[ -d /sys/fs/cgroup/memory ]]; then
  CG_ROOT=/sys/fs/cgroup/memory
else
  echo "memory.sh: no memory cgroup here (needs root and cgroup v1 or v2)" >&2
  exit 2
fi
make_cgroup() {  # make_cgroup NAME: sets CG and PEAK
  CG=$CG_ROOT/$1
  mkdir -p "$CG"
  if [[ $CG_ROOT == /sys/fs/cgroup ]]; then
    echo $((LIMIT_MIB << 20)) > "$CG/memory.max"
    PEAK=$CG/memory.peak
  else
    echo $((LIMIT_MIB << 20)) > "$CG/memory.limit_in_bytes"
    PEAK=$CG/memory.max_usage_in_bytes
  fi
}
trap 'rmdir "$CG_ROOT"/nas-memory-bench-* 2>/dev/null || true' EXIT

base_rate=""
for data in plain packed; do
  for limited in 0 1; do
    cmd=("$BUILD/nas-benchmark" --model "$WORK/child.ckpt" --data "$WORK/$data" --test-images -1 --reps 1 --warmup 0
         --min-time 0 --ci 0 --throughput-batch 256 --threads "$THREADS" --out "$WORK/bench-$data-$limited.json")
    (( limited )) && make_cgroup "nas-memory-bench-$data"
    # Page cache from earlier runs would be charged to whoever touched it first: start cold.
    if [[ ${DROP_CACHES:-1} == 1 ]]; then
      sync
      echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    fi
    start=$(date +%s.%N)
    if (( limited )); then
      set +e
      bash -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' _ "$CG" "${cmd[@]}" 2> "$WORK/err-$data-$limited.txt"
      code=$?
      set -e
    else
      set +e
      "${cmd[@]}" 2> "$WORK/err-$data-$limited.txt"
      code=$?
      set -e
    fi
    end=$(date +%s.%N)
    cg_peak=null
    (( limited )) && cg_peak=$(( $(cat "$PEAK") >> 20 ))
    /usr/bin/python3 - "$data" "$limited" "$LIMIT_MIB" "$code" "$cg_peak" "$start" "$end" "$COPIES" \
      "$WORK/err-$data-$limited.txt" "${base_rate:-0}" <<'PY' | tee "$WORK/line.json"
import json, re, sys
data, limited, limit, code, cg_peak, start, end, copies, err, base = sys.argv[1:]
text = open(err).read()
m = re.search(r"peak RSS ([0-9.]+) MiB", text)
seconds = float(end) - float(start)
rate = 10000 * int(copies) / seconds
line = {"data": data, "images": 10000 * int(copies), "data_mib": round(10000 * int(copies) * 784 / 2**20),
        "memory_limit_mib": int(limit) if limited == "1" else None, "exit": int(code),
        "tool_peak_rss_mib": float(m.group(1)) if m else None,
        "cgroup_peak_mib": None if cg_peak == "null" else int(cg_peak),
        "seconds": round(seconds, 1), "images_per_s": round(rate)}
if limited == "1" and float(base) > 0: line["rate_vs_unlimited"] = round(rate / float(base), 3)
if int(code) != 0: line["error"] = text.strip().splitlines()[-1] if text.strip() else "killed"
print(json.dumps(line))
PY
    (( limited )) || base_rate=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["images_per_s"])' "$WORK/line.json")
  done
done
