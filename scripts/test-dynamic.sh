#!/usr/bin/env bash
# Tests the dynamic build (tests/dynamic/main.rs): builds a plugin that declares another ABI
# number, the dynamic build itself, the static binary to compare with (whose own plugin file,
# target/debug/libzoo_rloo.so, must be refused by the dynamic binary), then runs the tests.
#
#   scripts/test-dynamic.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The default build's binary, to compare training with (no dynamic flags). Built the way
# `cargo test --workspace` builds it (same feature unification), so after that command (as in
# .ci/run) this is a no-op.
source scripts/dynamic-env.sh
(unset RUSTFLAGS; cargo test --workspace --no-run)
static_bin="$ZOO_TARGET_DIR/debug/zoo"

out="$ZOO_TARGET_DIR/$ZOO_TARGET/debug"
# 1. RLOO built with `test-abi-mismatch`, kept aside (the next build overwrites the file).
cargo build --target "$ZOO_TARGET" -p zoo-rloo --features test-abi-mismatch
mismatch="$ZOO_TARGET_DIR/zoo-dynamic-test"
rm -rf "$mismatch"
mkdir -p "$mismatch"
cp "$out/libzoo_rloo.so" "$mismatch/"
# 2. The dynamic build (plugins rebuilt as they should be).
scripts/build-dynamic.sh
# 3. The tests, built with the same flags so that they reuse the compiled dependencies.
ZOO_DYNAMIC_DIR="$ZOO_DYNAMIC_DIR" \
ZOO_STATIC_BIN="$static_bin" \
ZOO_MISMATCHED_PLUGIN="$mismatch/libzoo_rloo.so" \
ZOO_DEFAULT_BUILD_PLUGIN="$ZOO_TARGET_DIR/debug/libzoo_rloo.so" \
    cargo test --target "$ZOO_TARGET" -p zoo --no-default-features --features dynamic \
    --test dynamic
