#!/usr/bin/env bash
# The test suite, from a fresh checkout too: sets up and builds first when there is no build yet
# (scripts/ensure-build.sh), then runs every ctest entry, two at a time. Extra arguments go to ctest
# (e.g. scripts/test.sh -R train). Env: BUILD (build).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-build.sh
ctest --test-dir "$BUILD" --output-on-failure -j2 "$@"
