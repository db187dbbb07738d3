#!/usr/bin/env bash
# Tests the LibTorch backend on the CPU (docs/gpu.md): sets up libtorch (cached), builds the
# integration tests with feature `tch`, and runs those that involve LibTorch: the numerical
# agreement with flex, training on tch-cpu, the CUDA-device error (tests/it/tch.rs) and the
# objectives' parity fixtures, which run on every device of the build.
#
#   scripts/test-tch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-libtorch.sh
cargo test --features tch --test integration -- tch:: parity_fixtures
