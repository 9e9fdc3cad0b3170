#!/usr/bin/env bash
# Behaviour unchanged by a refactor: the same short training (100 sandwich steps, batch 32) and the
# same search (evolution, 10 children) per family, run with two builds; their metrics.jsonl losses
# and nas.search files must be identical but for timings and paths. Prints one line per family.
# Usage: scripts/check/same_behaviour.sh OLD_BUILD [NEW_BUILD] (NEW_BUILD: build). Build the old one
#   from a worktree, e.g. git worktree add /tmp/old <commit> && cmake -S /tmp/old -B /tmp/old/build
#   -DCMAKE_BUILD_TYPE=Release && cmake --build /tmp/old/build -j2 --target nas-train-supernet nas-search.
#   Env: WORK (a temporary directory), FAMILIES ("mbconv cell mlp"). Exit 1 when any family differs.
set -euo pipefail
cd "$(dirname "$0")/../.."
OLD=${1:?usage: scripts/check/same_behaviour.sh OLD_BUILD [NEW_BUILD]}
NEW=${2:-build}
if [[ -z ${WORK:-} ]]; then
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
fi
status=0
for fam in ${FAMILIES:-mbconv cell mlp}; do
  train=configs/train/fmnist-$fam.yaml
  [[ $fam == mbconv ]] && train=configs/train/fmnist.yaml
  for side in old new; do
    bin=$OLD
    [[ $side == new ]] && bin=$NEW
    out=$WORK/$side/$fam
    rm -rf "$out"
    mkdir -p "$out"
    "$bin/nas-train-supernet" --space "configs/spaces/fmnist-$fam.yaml" --train "$train" --out "$out/run" \
      --batch-size 32 --stop-after-steps 100 --threads 2 -q > /dev/null
    "$bin/nas-search" --supernet "$out/run/supernet.ckpt" --budget 10 --val-images 300 --calib-images 128 \
      --strategy evolution --seed 3 --threads 2 -q --out "$out/search.json" 2> "$out/search.err" \
      || { echo "same_behaviour.sh: $side $fam: nas-search failed: $(tail -n 1 "$out/search.err")" >&2; exit 1; }
  done
  /usr/bin/python3 - "$WORK/old/$fam" "$WORK/new/$fam" "$fam" <<'PY' || status=1
import json, sys
old, new, fam = sys.argv[1:]
def metrics(d):
    rows = [json.loads(l) for l in open(d + "/run/metrics.jsonl")]
    for r in rows:
        for k in ("elapsed_s", "images_per_s", "validation_s"):
            r.pop(k, None)
    return rows
def search(d):
    j = json.load(open(d + "/search.json"))
    for k in ("created", "commit", "timings", "supernet"):
        j.pop(k, None)
    for c in j["candidates"] + ([j["best"]] if j.get("best") else []):
        c.pop("eval_seconds", None)
    return j
same_metrics, same_search = metrics(old) == metrics(new), search(old) == search(new)
best = search(new)["best"]
print("%s: training losses %s, search %s (best %s, %.3f MFLOPs, %d params)" % (
    fam, "identical" if same_metrics else "DIFFER", "identical" if same_search else "DIFFERS",
    best["hash"], best["mflops"], best["params"]))
sys.exit(0 if same_metrics and same_search else 1)
PY
done
exit "$status"
