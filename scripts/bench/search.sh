#!/usr/bin/env bash
# The search engine's targets (issue 4), in one invocation of build/nas-bench-search
# (bench/search_bench.cpp says how each is measured):
#   sample efficiency of evolution and Bayesian optimization against random search's 500-evaluation
#   best (median over SEEDS seeds, on a surrogate fitted to a real run's inherited-weight scores),
#   strategy overhead per proposal, predictor throughput, and the inherited estimator's time on a
#   median-size child.
# Usage: scripts/bench/search.sh [RUN] (default runs/fmnist-full: the output of
#   make -f scripts/experiments/fmnist/Makefile BUDGET=full; needs supernet/supernet.ckpt,
#   search.json and search-100k.json there). Env: BUILD (build), SEEDS (20), THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/search-helpers.sh
RUN=${1:-runs/fmnist-full}
BUILD=${BUILD:-build}
for f in "$RUN/supernet/supernet.ckpt" "$RUN/search.json" "$RUN/search-100k.json"; do
  [[ -f $f ]] || { echo "search.sh: $f: not found (run the Fashion-MNIST experiment first)" >&2; exit 2; }
done
cmake --build "$BUILD" --target nas-bench-search > /dev/null
machine_header "threads ${THREADS:-2}"
"$BUILD/nas-bench-search" --supernet "$RUN/supernet/supernet.ckpt" --search "$RUN/search.json" \
  --search "$RUN/search-100k.json" --seeds "${SEEDS:-20}" --threads "${THREADS:-2}"
