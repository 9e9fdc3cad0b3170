#!/usr/bin/env bash
# The CSV examples of the mlp family (issue 6), on files that Debian's python3-sklearn ships:
# NAME breast-cancer (classification, test top-1) or boston (regression, test R^2). For split
# seeds 0..4 (each a different test set): trains the MLP supernet (configs/spaces/NAME-mlp.yaml,
# configs/train/NAME.yaml), searches it (evolution, 60 evaluations on the validation rows),
# slices the best child and tests it; trains the fixed baseline MLP (two hidden layers, 32 and 16
# relu) from scratch with the same recipe and split, and tests it. Prints one JSON line per seed
# and one with the means. About 1 minute on 2 cores.
# Usage: scripts/experiments/csv/run.sh NAME [OUT] (default runs/NAME). Env: BUILD (build), SEEDS
#   ("0 1 2 3 4"), BUDGET (60).
set -euo pipefail
cd "$(dirname "$0")/../../.."
NAME=${1:?usage: scripts/experiments/csv/run.sh breast-cancer|boston [OUT]}
OUT=${2:-runs/$NAME}
BUILD=${BUILD:-build}
SPACE=configs/spaces/$NAME-mlp.yaml
TRAIN=configs/train/$NAME.yaml
VAL=$(sed -n 's/^  validation_images: *//p' "$TRAIN")
mkdir -p "$OUT"
cat > "$OUT/baseline.json" <<J
{"kind": "nas.arch", "schema_version": 1, "space": "$NAME-mlp", "resolution": 1,
 "layers": [{"width": 32, "act": "relu"}, {"width": 16, "act": "relu"}]}
J
for seed in ${SEEDS:-0 1 2 3 4}; do
  d=$OUT/seed$seed
  mkdir -p "$d"
  sed "s/^  split_seed: .*/  split_seed: $seed/" "$TRAIN" > "$d/train.yaml"
  "$BUILD/nas-train-supernet" --space "$SPACE" --train "$d/train.yaml" --out "$d/supernet" --threads 2 -q > /dev/null
  "$BUILD/nas-search" --supernet "$d/supernet/supernet.ckpt" --strategy evolution --budget "${BUDGET:-60}" --val-images "$VAL" \
    --threads 1 -q --out "$d/search.json"
  "$BUILD/nas-slice" --supernet "$d/supernet/supernet.ckpt" --arch "$d/search.json" --out "$d/child.ckpt" --threads 1 -q > /dev/null
  "$BUILD/nas-benchmark" --model "$d/child.ckpt" --threads 1 --test-images -1 --max-time 0.5 -q --out "$d/bench-child.json"
  "$BUILD/nas-train-supernet" --space "$SPACE" --train "$d/train.yaml" --arch "$OUT/baseline.json" --out "$d/baseline" \
    --threads 2 -q > /dev/null
  "$BUILD/nas-benchmark" --model "$d/baseline/child.ckpt" --threads 1 --test-images -1 --max-time 0.5 -q \
    --out "$d/bench-baseline.json"
  /usr/bin/python3 - "$d" "$seed" <<'PY'
import json, sys
d, seed = sys.argv[1], int(sys.argv[2])
c, b = json.load(open(d + "/bench-child.json")), json.load(open(d + "/bench-baseline.json"))
score = lambda j: round(j["accuracy"].get("top1", j["accuracy"].get("r2")), 4)
print(json.dumps({"split_seed": seed, "metric": "top1" if "top1" in c["accuracy"] else "r2",
                  "found": ", ".join("%d %s" % (l["width"], l["act"]) for l in c["model"]["arch"]["layers"]),
                  "found_params": c["model"]["params"], "found_test": score(c),
                  "baseline_params": b["model"]["params"], "baseline_test": score(b)}))
PY
done | tee "$OUT/results.jsonl"
/usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
m = lambda k: round(sum(r[k] for r in rows) / len(rows), 4)
print(json.dumps({"seeds": len(rows), "metric": rows[0]["metric"], "found_test_mean": m("found_test"),
                  "baseline_test_mean": m("baseline_test")}))' "$OUT/results.jsonl"
