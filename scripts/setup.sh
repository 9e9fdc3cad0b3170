#!/usr/bin/env bash
# Set-up and build: installs the Debian packages the toolchain needs (when apt-get is
# available and we are root or have sudo), then configures and builds into build/.
# Usage: scripts/setup.sh [--no-install] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake pkg-config libtorch-dev libcli11-dev nlohmann-json3-dev libyaml-cpp-dev
      catch2 libgloo-dev zlib1g-dev libopenblas0-openmp dataset-fashion-mnist gnuplot-nox libonnx-dev libstb-dev
      python3 python3-sklearn time)  # python3: scripts/check/architecture.py (ctest); python3-sklearn: its
                                     # bundled CSV data sets (configs/train/breast-cancer.yaml); time:
                                     # /usr/bin/time, which scripts/bench/allocator.sh reads page faults with

install=1
if [[ "${1:-}" == "--no-install" ]]; then install=0; shift; fi

if (( install )) && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # Node.js and npm for ONNX Runtime (below), which the ONNX export test runs its model in: Debian's,
  # unless the machine already has an npm.
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
  if (( ${#missing[@]} )); then
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}" "$@"
cmake --build build -j "$jobs"

# ONNX Runtime for Node.js, for the ONNX export test (skipped without it). Its install script fetches
# GPU libraries from outside the npm registry, so it is skipped: the CPU runtime ships in the package.
if command -v npm >/dev/null 2>&1 && [[ ! -d build/ort/node_modules/onnxruntime-node ]]; then
  npm install --ignore-scripts --no-audit --no-fund --prefix build/ort onnxruntime-node >&2 ||
    echo "setup: npm install onnxruntime-node failed; the ONNX Runtime test will be skipped" >&2
fi
