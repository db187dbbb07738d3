//! The MPI engine (rsmpi over the system's MPI library): CPU ranks on one machine or many.
//!
//! Every collective is started non-blocking and polled against the run's timeout: MPI itself
//! never times out, and a rank that hangs would otherwise hang the others forever. On timeout
//! the rank prints which collective it waited in and aborts the job (`MPI_Abort`), which stops
//! every rank.

use std::time::{Duration, Instant};

use mpi::Count;
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::{Threading, Universe};
use mpi::request::{LocalScope, Request};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use zoo_core::dist::{Collective, Reduce};
use zoo_core::{Error, Result};

use crate::DistEnv;

/// Values per all-reduce call: MPI counts are 32-bit, and 16 Mi floats (64 MiB) keep the send
/// copy small.
const BUCKET: usize = 16 << 20;

/// The ranks of `MPI_COMM_WORLD`.
pub struct MpiCollective {
    // Dropped last: `MPI_Finalize`.
    world: SimpleCommunicator,
    _universe: Universe,
    rank: usize,
    size: usize,
    timeout: Duration,
}

// SAFETY: MPI is initialized with `MPI_THREAD_FUNNELED`, and zoo's trainer calls collectives
// from its main thread only (the worker threads of rayon and LibTorch never do).
unsafe impl Send for MpiCollective {}
unsafe impl Sync for MpiCollective {}

impl MpiCollective {
    /// Initializes MPI and checks that it agrees with the launcher's variables.
    pub fn init(env: &DistEnv, timeout: Duration) -> Result<Self> {
        let (universe, _threading) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| Error::Dist("MPI was already initialized in this process".into()))?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        if (rank, size) != (env.rank, env.world) {
            return Err(Error::Dist(format!(
                "MPI says rank {rank} of {size}, {} says rank {} of {}\nhint: the zoo binary and `mpirun` must come from the same MPI installation",
                env.launcher, env.rank, env.world
            )));
        }
        Ok(Self {
            world,
            _universe: universe,
            rank,
            size,
            timeout,
        })
    }

    /// Polls `request` until it completes; past the deadline, reports and aborts the job.
    fn finish<'a, D: ?Sized>(
        &self,
        mut request: Request<'a, D, &LocalScope<'a>>,
        what: &str,
        started: Instant,
    ) {
        let mut spins = 0u32;
        loop {
            match request.test() {
                Ok(_) => return,
                Err(pending) => request = pending,
            }
            if started.elapsed() > self.timeout {
                let message = format!(
                    "collective `{what}` timed out after {:.0} s on rank {}: another rank hangs or failed\nhint: each rank's last line names the collective it waited in; raise `--dist-timeout` if a rank is only slow",
                    self.timeout.as_secs_f64(),
                    self.rank
                );
                eprintln!("rank {}: error: distributed: {message}", self.rank);
                self.world.abort(3);
            }
            // Spin briefly, then sleep: a waiting rank must not take a core from the ranks
            // still computing.
            spins += 1;
            if spins < 200 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(500));
            }
        }
    }
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.size
    }

    fn engine(&self) -> &'static str {
        "mpi"
    }

    fn all_gather_bytes(&self, mine: &[u8], what: &str) -> Result<Vec<Vec<u8>>> {
        let started = Instant::now();
        let len = [Count::try_from(mine.len()).map_err(|_| {
            Error::Dist(format!(
                "`{what}`: {} bytes exceed MPI's 2 GiB count",
                mine.len()
            ))
        })?];
        let mut lens: Vec<Count> = vec![0; self.size];
        mpi::request::scope(|scope| {
            let request = self
                .world
                .immediate_all_gather_into(scope, &len[..], &mut lens[..]);
            self.finish(request, what, started);
        });
        let total: usize = lens.iter().map(|&n| n as usize).sum();
        if total > Count::MAX as usize {
            return Err(Error::Dist(format!(
                "`{what}`: {total} bytes from all ranks exceed MPI's 2 GiB count"
            )));
        }
        let displs: Vec<Count> = lens
            .iter()
            .scan(0, |at, &n| {
                let start = *at;
                *at += n;
                Some(start)
            })
            .collect();
        if total == 0 {
            // A barrier, or nothing to say: MPI refuses an empty receive buffer.
            return Ok(vec![Vec::new(); self.size]);
        }
        let mut buffer = vec![0u8; total];
        {
            let mut partition = PartitionMut::new(&mut buffer[..], lens.clone(), &displs[..]);
            mpi::request::scope(|scope| {
                let request =
                    self.world
                        .immediate_all_gather_varcount_into(scope, mine, &mut partition);
                self.finish(request, what, started);
            });
        }
        Ok(lens
            .iter()
            .zip(&displs)
            .map(|(&n, &at)| buffer[at as usize..(at + n) as usize].to_vec())
            .collect())
    }

    fn all_reduce_f64(&self, values: &mut [f64], op: Reduce, what: &str) -> Result<()> {
        let started = Instant::now();
        let send = values.to_vec();
        mpi::request::scope(|scope| {
            let op = match op {
                Reduce::Sum => SystemOperation::sum(),
                Reduce::Max => SystemOperation::max(),
            };
            let request =
                self.world
                    .immediate_all_reduce_into(scope, &send[..], &mut values[..], op);
            self.finish(request, what, started);
        });
        Ok(())
    }

    fn all_reduce_f32(&self, values: &mut [f32], what: &str) -> Result<()> {
        let started = Instant::now();
        for bucket in values.chunks_mut(BUCKET) {
            let send = bucket.to_vec();
            mpi::request::scope(|scope| {
                let request = self.world.immediate_all_reduce_into(
                    scope,
                    &send[..],
                    &mut bucket[..],
                    SystemOperation::sum(),
                );
                self.finish(request, what, started);
            });
        }
        Ok(())
    }

    fn abort(&self, code: i32, _message: &str) -> ! {
        self.world.abort(code)
    }
}
