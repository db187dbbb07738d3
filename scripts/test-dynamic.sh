#!/usr/bin/env bash
# Tests the dynamic build (tests/dynamic/main.rs): builds a plugin that declares another ABI
# number, the dynamic build itself, the static binary to compare with, then runs the tests.
#
#   scripts/test-dynamic.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The default build's binary, to compare training with (no dynamic flags).
cargo build --bin zoo
static_bin="$PWD/target/debug/zoo"

source scripts/dynamic-env.sh
out="target/$ZOO_TARGET/debug"
# 1. RLOO built with `test-abi-mismatch`, kept aside (the next build overwrites the file).
cargo build --target "$ZOO_TARGET" -p zoo-rloo --features test-abi-mismatch
mismatch=target/zoo-dynamic-test
rm -rf "$mismatch"
mkdir -p "$mismatch"
cp "$out/libzoo_rloo.so" "$mismatch/"
# 2. The dynamic build (plugins rebuilt as they should be).
scripts/build-dynamic.sh
# 3. The tests, built with the same flags so that they reuse the compiled dependencies.
ZOO_DYNAMIC_DIR="$PWD/target/zoo-dynamic" \
ZOO_STATIC_BIN="$static_bin" \
ZOO_MISMATCHED_PLUGIN="$PWD/$mismatch/libzoo_rloo.so" \
    cargo test --target "$ZOO_TARGET" -p zoo --no-default-features --features dynamic \
    --test dynamic
