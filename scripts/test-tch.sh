#!/usr/bin/env bash
# The tests of the optional engines, from one build with every feature (`tch,mpi,nccl`):
# - LibTorch on the CPU (docs/gpu.md): sets up libtorch (cached) and runs the tests that
#   involve it: the numerical agreement with flex, training on tch-cpu, the CUDA-device error
#   (tests/it/tch.rs) and the objectives' parity fixtures, which run on every device of the build;
# - MPI (docs/distributed.md): installs OpenMPI (scripts/setup-mpi.sh) and runs `zoo train
#   --dist mpi` under `mpirun` against one process (tests/it/mpi.rs);
# - NCCL: loads the wheel's libnccl and checks the bootstrap id (no GPU needed).
#
#   scripts/test-tch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-mpi.sh
source scripts/setup-libtorch.sh
cargo test -p zoo-dist --features mpi,nccl
cargo test --features tch,mpi,nccl --test integration -- tch:: parity_fixtures mpi::
