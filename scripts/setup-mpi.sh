#!/usr/bin/env bash
# Installs what `--features mpi` needs to build and run (docs/distributed.md): OpenMPI
# (`mpicc`, `mpirun`, libmpi) and libclang (rsmpi's bindgen reads mpi.h), from Debian's
# packages; does nothing when `mpicc` and libclang are already there. Source it to also get
# the variables OpenMPI needs when run as root in a container:
#
#   source scripts/setup-mpi.sh
# (Sourced: no `set -e`, which would stay on in the caller's shell.)
zoo_setup_mpi() {
    if ! command -v mpicc >/dev/null || ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
        local sudo=""
        [[ $(id -u) -eq 0 ]] || sudo="sudo"
        $sudo apt-get update -qq || return 1
        $sudo apt-get install -y -qq --no-install-recommends openmpi-bin libopenmpi-dev libclang-dev >/dev/null || return 1
    fi
    # OpenMPI refuses to start as root without both (open-mpi/ompi#6911); in a container
    # without CAP_SYS_PTRACE its shared-memory single-copy transfer fails (open-mpi/ompi#4948).
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export OMPI_MCA_btl_vader_single_copy_mechanism=none
    mpirun --version | head -1
}
zoo_setup_mpi || { echo "setup-mpi: could not install OpenMPI and libclang" >&2; return 1 2>/dev/null || exit 1; }
