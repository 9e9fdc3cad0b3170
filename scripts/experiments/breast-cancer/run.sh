#!/usr/bin/env bash
# The CSV example of the mlp family (issue 6): python3-sklearn's breast-cancer file
# (configs/train/breast-cancer.yaml), for split seeds 0..4 (each a different test set of 114 rows):
# trains the MLP supernet (configs/spaces/breast-cancer-mlp.yaml), searches it (evolution, 60
# evaluations on the 91 validation rows), slices the best child and tests it; trains the fixed
# baseline MLP (two hidden layers, 32 and 16 relu) from scratch with the same recipe and split,
# and tests it. Prints one JSON line per seed and one with the means. About 1 minute on 2 cores.
# Usage: scripts/experiments/breast-cancer/run.sh [OUT] (default runs/breast-cancer). Env: BUILD (build).
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=${1:-runs/breast-cancer}
BUILD=${BUILD:-build}
SPACE=configs/spaces/breast-cancer-mlp.yaml
mkdir -p "$OUT"
cat > "$OUT/baseline.json" <<'J'
{"kind": "nas.arch", "schema_version": 1, "space": "breast-cancer-mlp", "resolution": 1,
 "layers": [{"width": 32, "act": "relu"}, {"width": 16, "act": "relu"}]}
J
test_acc() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accuracy"]["top1"])' "$1"; }
for seed in 0 1 2 3 4; do
  d=$OUT/seed$seed
  mkdir -p "$d"
  sed "s/^  split_seed: .*/  split_seed: $seed/" configs/train/breast-cancer.yaml > "$d/train.yaml"
  "$BUILD/nas-train-supernet" --space $SPACE --train "$d/train.yaml" --out "$d/supernet" --threads 2 -q > /dev/null
  "$BUILD/nas-search" --supernet "$d/supernet/supernet.ckpt" --strategy evolution --budget 60 --val-images 91 \
    --calib-images 364 --threads 1 -q --out "$d/search.json"
  "$BUILD/nas-slice" --supernet "$d/supernet/supernet.ckpt" --arch "$d/search.json" --out "$d/child.ckpt" --threads 1 -q > /dev/null
  "$BUILD/nas-benchmark" --model "$d/child.ckpt" --threads 1 --test-images -1 --max-time 0.5 -q --out "$d/bench-child.json"
  "$BUILD/nas-train-supernet" --space $SPACE --train "$d/train.yaml" --arch "$OUT/baseline.json" --out "$d/baseline" \
    --threads 2 -q > /dev/null
  "$BUILD/nas-benchmark" --model "$d/baseline/child.ckpt" --threads 1 --test-images -1 --max-time 0.5 -q \
    --out "$d/bench-baseline.json"
  /usr/bin/python3 - "$d" "$seed" <<'PY'
import json, sys
d, seed = sys.argv[1], int(sys.argv[2])
c, b = json.load(open(d + "/bench-child.json")), json.load(open(d + "/bench-baseline.json"))
print(json.dumps({"split_seed": seed,
                  "found": ", ".join("%d %s" % (l["width"], l["act"]) for l in c["model"]["arch"]["layers"]),
                  "found_params": c["model"]["params"], "found_test": round(c["accuracy"]["top1"], 4),
                  "baseline_params": b["model"]["params"], "baseline_test": round(b["accuracy"]["top1"], 4)}))
PY
done | tee "$OUT/results.jsonl"
/usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
m = lambda k: round(sum(r[k] for r in rows) / len(rows), 4)
print(json.dumps({"seeds": len(rows), "found_test_mean": m("found_test"), "baseline_test_mean": m("baseline_test")}))' "$OUT/results.jsonl"
