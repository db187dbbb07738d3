//! The NCCL engine (cudarc, NCCL loaded at run time): one GPU per rank.
//!
//! Rendezvous: `NCCL_COMM_ID=MASTER_ADDR:MASTER_PORT+1` (torchrun's own store holds
//! `MASTER_PORT`), so every rank's `ncclGetUniqueId` returns the same id and rank 0's
//! `ncclCommInitRank` opens NCCL's bootstrap there. Buffers are staged through the host: the
//! trainer hands over host values (flat buckets, one per optimizer step for the gradients);
//! the device-pointer path that skips the copies is left for when a multi-GPU machine can
//! measure it. Every collective is polled against the run's timeout; past it the rank prints
//! which collective it waited in and exits, aborting its communicator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::{CudaContext, CudaStream};
use cudarc::nccl::safe::{Comm, Id, ReduceOp};
use zoo_core::dist::{Collective, Reduce};
use zoo_core::{Error, Result};

use crate::DistEnv;

/// The ranks of one NCCL communicator.
pub struct NcclCollective {
    comm: Comm,
    stream: Arc<CudaStream>,
    rank: usize,
    world: usize,
    timeout: Duration,
}

// SAFETY: the trainer calls collectives from one thread at a time (its main thread).
unsafe impl Send for NcclCollective {}
unsafe impl Sync for NcclCollective {}

fn nccl_error(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::Dist(format!(
        "NCCL: {what}: {e:?}\nhint: `source scripts/setup-libtorch.sh` puts the wheel's libnccl on `LD_LIBRARY_PATH`; `NCCL_DEBUG=INFO` says more"
    ))
}

impl NcclCollective {
    /// Joins the communicator on CUDA device `gpu` (the one this rank trains on).
    pub fn init(env: &DistEnv, gpu: usize, timeout: Duration) -> Result<Self> {
        let address = env
            .nccl_address()
            .ok_or_else(|| Error::Dist("NCCL needs `MASTER_ADDR` and `MASTER_PORT`".into()))?;
        // SAFETY: set before NCCL reads it, from the thread that starts the run.
        unsafe { std::env::set_var("NCCL_COMM_ID", &address) };
        let ctx = CudaContext::new(gpu)
            .map_err(|e| nccl_error(&format!("cannot open CUDA device {gpu}"), e))?;
        let stream = ctx.default_stream();
        let id = Id::new().map_err(|e| nccl_error("ncclGetUniqueId", e))?;
        let comm = Comm::from_rank(stream.clone(), env.rank, env.world, id)
            .map_err(|e| nccl_error(&format!("joining the communicator at `{address}`"), e))?;
        Ok(Self {
            comm,
            stream,
            rank: env.rank,
            world: env.world,
            timeout,
        })
    }

    /// Waits for the stream's work, polling against the timeout.
    fn finish(&self, what: &str, started: Instant) -> Result<()> {
        let event = self
            .stream
            .record_event(None)
            .map_err(|e| nccl_error(what, e))?;
        while !event.is_complete() {
            if started.elapsed() > self.timeout {
                eprintln!(
                    "rank {}: error: distributed: collective `{what}` timed out after {:.0} s: another rank hangs or failed\nhint: each rank's last line names the collective it waited in",
                    self.rank,
                    self.timeout.as_secs_f64()
                );
                // The process's exit tears the communicator down; the launcher stops the
                // others (`srun --kill-on-bad-exit=1`, torchrun).
                std::process::exit(3);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    fn reduce<T>(&self, values: &mut [T], op: ReduceOp, what: &str) -> Result<()>
    where
        T: cudarc::driver::DeviceRepr + cudarc::nccl::safe::NcclType + Copy,
    {
        let started = Instant::now();
        let mut device = self
            .stream
            .clone_htod(values)
            .map_err(|e| nccl_error(what, e))?;
        self.comm
            .all_reduce_in_place(&mut device, &op)
            .map_err(|e| nccl_error(what, e))?;
        self.finish(what, started)?;
        let host = self
            .stream
            .clone_dtoh(&device)
            .map_err(|e| nccl_error(what, e))?;
        values.copy_from_slice(&host);
        Ok(())
    }
}

impl Collective for NcclCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn engine(&self) -> &'static str {
        "nccl"
    }

    fn all_gather_bytes(&self, mine: &[u8], what: &str) -> Result<Vec<Vec<u8>>> {
        // NCCL gathers equal counts: the lengths first, then every buffer padded to the longest.
        let mut lens = vec![0u64; self.world];
        lens[self.rank] = mine.len() as u64;
        self.reduce(&mut lens, ReduceOp::Sum, what)?;
        let longest = lens.iter().copied().max().unwrap_or(0) as usize;
        if longest == 0 {
            return Ok(vec![Vec::new(); self.world]);
        }
        let started = Instant::now();
        let mut padded = mine.to_vec();
        padded.resize(longest, 0);
        let send = self
            .stream
            .clone_htod(&padded)
            .map_err(|e| nccl_error(what, e))?;
        let mut all = self
            .stream
            .alloc_zeros::<u8>(longest * self.world)
            .map_err(|e| nccl_error(what, e))?;
        self.comm
            .all_gather(&send, &mut all)
            .map_err(|e| nccl_error(what, e))?;
        self.finish(what, started)?;
        let host = self
            .stream
            .clone_dtoh(&all)
            .map_err(|e| nccl_error(what, e))?;
        Ok(lens
            .iter()
            .enumerate()
            .map(|(r, &n)| host[r * longest..r * longest + n as usize].to_vec())
            .collect())
    }

    fn all_reduce_f64(&self, values: &mut [f64], op: Reduce, what: &str) -> Result<()> {
        let op = match op {
            Reduce::Sum => ReduceOp::Sum,
            Reduce::Max => ReduceOp::Max,
        };
        self.reduce(values, op, what)
    }

    fn all_reduce_f32(&self, values: &mut [f32], what: &str) -> Result<()> {
        self.reduce(values, ReduceOp::Sum, what)
    }

    fn abort(&self, code: i32, _message: &str) -> ! {
        // The process's exit tears the communicator down; the launcher stops the others.
        std::process::exit(code)
    }
}

/// Loads libnccl and returns its version (e.g. 22705 for 2.27.5): what a GPU-less machine can
/// check of the NCCL path.
pub fn nccl_version() -> Result<i32> {
    cudarc::nccl::result::get_nccl_version().map_err(|e| nccl_error("ncclGetVersion", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs the wheel's libnccl on `LD_LIBRARY_PATH` as `libnccl.so` (`source
    /// scripts/setup-libtorch.sh`); no GPU.
    #[test]
    fn nccl_loads_and_the_bootstrap_address_fixes_the_id_on_every_rank() {
        let version = nccl_version().unwrap();
        assert!(version >= 21800, "NCCL {version}");
        // SAFETY: this test alone sets it, before NCCL reads it.
        unsafe { std::env::set_var("NCCL_COMM_ID", "127.0.0.1:29517") };
        let (a, b) = (Id::new().unwrap(), Id::new().unwrap());
        assert_eq!(a.internal(), b.internal(), "the same id for every caller");
    }
}
