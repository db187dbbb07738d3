# Sourced by the dynamic-build scripts: the flags every crate of that build shares.
# `-C prefer-dynamic` links zoo-core, std and plugin-to-plugin dependencies as shared libraries;
# the rpath lets `target/zoo-dynamic/zoo` find `libzoo_core.so` and `libstd-*.so` next to it.
ZOO_TARGET="$(rustc -vV | sed -n 's/^host: //p')"
export ZOO_TARGET
export RUSTFLAGS="-C prefer-dynamic -C link-arg=-Wl,-rpath,\$ORIGIN"
