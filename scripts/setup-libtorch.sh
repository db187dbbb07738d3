#!/usr/bin/env bash
# Sets up LibTorch for zoo's `tch` feature: a Python virtual environment with the exact PyTorch
# that burn-tch 0.22.1 (tch 0.22, torch-sys) is built against, taken from PyPI. Idempotent:
# a second run only checks the version. Pip's download cache is reused when present.
#
#   source scripts/setup-libtorch.sh      # sets the variables below in your shell
#   cargo build --release --features tch
#   target/release/zoo train --algo cepo --device tch-cpu
#
# Variables it exports:
#   ZOO_LIBTORCH_VENV     the virtual environment (default: ~/.cache/zoo/libtorch-$ZOO_TORCH_VERSION)
#   LIBTORCH_USE_PYTORCH  1: torch-sys finds libtorch through that environment's python
#   PATH                  the environment's bin/ first, so `python` is its python
#   LD_LIBRARY_PATH       torch's lib/ first (libtorch_cpu.so, libc10.so, ...), for running
#
# The PyPI wheel is PyTorch's CUDA build: about 3.8 GB to download and 6.7 GB installed, and
# even CPU runs load its NVIDIA libraries. To build against another PyTorch (the GPU machine's,
# see docs/gpu.md) set ZOO_TORCH_VERSION; versions other than 2.9.0 also need
# LIBTORCH_BYPASS_VERSION_CHECK=1.

ZOO_TORCH_VERSION="${ZOO_TORCH_VERSION:-2.9.0}"
ZOO_LIBTORCH_VENV="${ZOO_LIBTORCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/zoo/libtorch-$ZOO_TORCH_VERSION}"

zoo_setup_libtorch() {
    local python="$ZOO_LIBTORCH_VENV/bin/python"
    local have=""
    if [[ -x "$python" ]]; then
        have=$("$python" -W ignore -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
    fi
    if [[ "$have" != "$ZOO_TORCH_VERSION" ]]; then
        echo "setup-libtorch: installing torch==$ZOO_TORCH_VERSION into $ZOO_LIBTORCH_VENV" >&2
        python3 -m venv "$ZOO_LIBTORCH_VENV" || return 1
        "$python" -m pip install --quiet "torch==$ZOO_TORCH_VERSION" || return 1
    fi
    local lib
    lib=$("$python" -W ignore -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') || return 1
    export ZOO_LIBTORCH_VENV LIBTORCH_USE_PYTORCH=1
    export PATH="$ZOO_LIBTORCH_VENV/bin:$PATH"
    export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # `--features nccl` loads NCCL as `libnccl.so` (cudarc never tries `libnccl.so.2`, the one
    # file the wheel ships): a link to the wheel's own file, so the process maps one NCCL.
    local nccl
    nccl=$(ls "$ZOO_LIBTORCH_VENV"/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2 2>/dev/null | head -1)
    if [[ -n "$nccl" ]]; then
        mkdir -p "$ZOO_LIBTORCH_VENV/nccl-lib"
        ln -sf "$nccl" "$ZOO_LIBTORCH_VENV/nccl-lib/libnccl.so"
        export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$ZOO_LIBTORCH_VENV/nccl-lib"
    fi
    if [[ "$ZOO_TORCH_VERSION" != "2.9.0" ]]; then
        export LIBTORCH_BYPASS_VERSION_CHECK=1
    fi
    echo "setup-libtorch: torch $ZOO_TORCH_VERSION ready ($lib)" >&2
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    # Run, not sourced: set up, then print the variables for `eval`.
    set -euo pipefail
    zoo_setup_libtorch
    echo "export LIBTORCH_USE_PYTORCH=1 PATH=\"$PATH\" LD_LIBRARY_PATH=\"$LD_LIBRARY_PATH\"${LIBTORCH_BYPASS_VERSION_CHECK:+ LIBTORCH_BYPASS_VERSION_CHECK=1}"
else
    zoo_setup_libtorch
fi
