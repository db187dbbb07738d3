#!/usr/bin/env bash
# Builds zoo's dynamic mode: zoo-core as one shared library, every algorithm crate as a plugin
# file, and a `zoo` binary that links no algorithm and loads them at start.
#
#   scripts/build-dynamic.sh [--release]
#   target/zoo-dynamic/zoo train --algo cepo
#
# Result, in target/ or $CARGO_TARGET_DIR (no LD_LIBRARY_PATH needed: the binary's rpath is
# its own folder):
#   target/zoo-dynamic/zoo                 the binary (feature `dynamic`, no `static-plugins`)
#   target/zoo-dynamic/libzoo_core.so      zoo-core + Burn, shared by the binary and the plugins
#   target/zoo-dynamic/libstd-*.so         the Rust standard library of this toolchain
#   target/zoo-dynamic/plugins/*.so        one plugin file per algorithm crate (loaded by default)
#
# Everything is compiled with `-C prefer-dynamic` for an explicit `--target`, so build scripts
# and proc macros are shared with the default build and only the target crates are rebuilt
# (into target/<triple>/). Plugins and binary must come from the same build: same toolchain,
# Cargo.lock, features and flags; the loader checks it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/dynamic-env.sh

profile_flag=()
profile_dir=debug
if [[ "${1:-}" == "--release" ]]; then
    profile_flag=(--release)
    profile_dir=release
elif [[ -n "${1:-}" ]]; then
    echo "usage: scripts/build-dynamic.sh [--release]" >&2
    exit 2
fi

# The plugin files (every library crate with a dylib crate type), then the binary.
# Cargo's artifact messages name this build's files: a stale plugin of a removed crate in the
# output folder is never shipped.
messages=$(cargo build "${profile_flag[@]}" --target "$ZOO_TARGET" --workspace --lib \
    --message-format=json-render-diagnostics)
mapfile -t built < <(grep -o "\"[^\"]*/$ZOO_TARGET/[^\"]*/libzoo_[a-z0-9_]*\.so\"" <<<"$messages" |
    tr -d '"' | sort -u)
[[ ${#built[@]} -gt 0 ]] || { echo "build-dynamic: cargo built no plugin file" >&2; exit 1; }
cargo build "${profile_flag[@]}" --target "$ZOO_TARGET" -p zoo --bin zoo \
    --no-default-features --features dynamic

out="$ZOO_TARGET_DIR/$ZOO_TARGET/$profile_dir"
dist="$ZOO_DYNAMIC_DIR"
rm -rf "$dist"
mkdir -p "$dist/plugins"
cp "$out/zoo" "$out/libzoo_core.so" "$dist/"
cp "$(rustc --print sysroot)/lib/rustlib/$ZOO_TARGET/lib"/libstd-*.so "$dist/"
for plugin in "${built[@]}"; do
    case "$(basename "$plugin")" in
        libzoo_core.so | libzoo_template.so) ;; # the shared core; the `zoo new-algo` skeleton
        *) cp "$plugin" "$dist/plugins/" ;;
    esac
done
echo "dynamic build: $dist/zoo with $(ls "$dist/plugins" | wc -l) plugins in $dist/plugins/"
