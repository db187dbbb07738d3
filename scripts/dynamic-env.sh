# Sourced by the dynamic-build scripts: the flags every crate of that build shares.
# `-C prefer-dynamic` links zoo-core, std and plugin-to-plugin dependencies as shared libraries;
# the rpath lets `target/zoo-dynamic/zoo` find `libzoo_core.so` and `libstd-*.so` next to it.
ZOO_TARGET="$(rustc -vV | sed -n 's/^host: //p')"
export ZOO_TARGET
export RUSTFLAGS="-C prefer-dynamic -C link-arg=-Wl,-rpath,\$ORIGIN"
# Where cargo builds (honours CARGO_TARGET_DIR) and where the dynamic build is assembled.
ZOO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
ZOO_DYNAMIC_DIR="$ZOO_TARGET_DIR/zoo-dynamic"
