#!/usr/bin/env bash
# Sourced by the README's commands (scripts/demo.sh, scripts/test.sh): a fresh checkout gets the
# whole set-up (scripts/setup.sh: Debian packages, configure, build); an existing build directory
# is brought up to date with the sources. BUILD (default build) names it; a BUILD other than build/
# must already be configured.
BUILD=${BUILD:-build}
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  if [[ "$BUILD" != build ]]; then
    echo "$(basename "$0"): $BUILD is not a configured build directory" >&2
    exit 2
  fi
  echo "$(basename "$0"): no build yet: running scripts/setup.sh" >&2
  scripts/setup.sh
else
  cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" > /dev/null
fi
