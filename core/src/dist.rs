//! Data parallelism: the trainer's only view of other processes.
//!
//! One process per device (a GPU, or a share of a CPU machine), each a *rank* of a *world*.
//! The step's batch is defined globally and the work is shared out: every rank draws the same
//! prompts, samples its share of the groups with random streams keyed by each row's place in
//! the batch ([`crate::rng::row_stream`]), and the ranks exchange what they sampled and scored
//! so that every rank holds the whole batch. Credit then runs on the whole batch on every rank
//! (the same numbers, the same metrics); each rank computes the gradient of its share of every
//! mini-batch with the mini-batch's aggregation coefficients, the gradients are summed across
//! ranks once per optimizer step, and every rank applies the same AdamW step. With one rank
//! ([`Single`]) every exchange is the identity: one trainer code path for one or many ranks.
//!
//! Engines: [`Single`] (one process), [`ThreadCollective`] (ranks as threads of one process:
//! for tests of the trainer's logic), MPI and NCCL (crate `zoo-dist`, cargo features `mpi` and
//! `nccl` of the `zoo` binary).

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::policy::NamedTensors;
use crate::{Error, Result};

/// Values per exchange of [`Collective::broadcast_tensors`]: 16 Mi (64 MiB).
pub const BROADCAST_BUCKET: usize = 16 << 20;

/// How [`Collective::all_reduce_f64`] combines the ranks' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// The sum.
    Sum,
    /// The largest value.
    Max,
}

/// Exchanges between the ranks of a data-parallel run. Every rank calls the same collectives
/// in the same order; `what` names the call (e.g. `gradients, step 3`) in timeout and error
/// messages. An engine implements [`Collective::all_gather_bytes`] and [`Collective::abort`];
/// the rest have host implementations on top of it, which an engine may replace with its own
/// (MPI's all-reduce moves `2 (W-1)/W` of a buffer per rank where an all-gather moves `W-1`).
pub trait Collective: Send + Sync {
    /// This process's rank, `0..world`.
    fn rank(&self) -> usize;

    /// The number of ranks.
    fn world(&self) -> usize;

    /// Every rank's bytes, in rank order.
    fn all_gather_bytes(&self, mine: &[u8], what: &str) -> Result<Vec<Vec<u8>>>;

    /// Stops every rank now with `message` (printed by the caller before). Never returns.
    fn abort(&self, code: i32, message: &str) -> !;

    /// The engine's name for messages (`single`, `threads`, `mpi`, `nccl`).
    fn engine(&self) -> &'static str;

    /// Element-wise over ranks, in place; every rank gets the same result. Host
    /// implementation: rank order, `((v₀ ∘ v₁) ∘ v₂) …`.
    fn all_reduce_f64(&self, values: &mut [f64], op: Reduce, what: &str) -> Result<()> {
        let all = self.all_gather_bytes(&f64_bytes(values), what)?;
        reduce_in_rank_order(values, &all, what, f64_values, |a, b| match op {
            Reduce::Sum => a + b,
            Reduce::Max => a.max(b),
        })
    }

    /// The element-wise sum over ranks, in place (gradients). Host implementation: rank order.
    fn all_reduce_f32(&self, values: &mut [f32], what: &str) -> Result<()> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let all = self.all_gather_bytes(&bytes, what)?;
        reduce_in_rank_order(
            values,
            &all,
            what,
            |bytes| {
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect()
            },
            |a, b| a + b,
        )
    }

    /// `root`'s bytes on every rank.
    fn broadcast_bytes(&self, bytes: &mut Vec<u8>, root: usize, what: &str) -> Result<()> {
        let mine = if self.rank() == root {
            bytes.clone()
        } else {
            Vec::new()
        };
        let mut all = self.all_gather_bytes(&mine, what)?;
        *bytes = std::mem::take(&mut all[root]);
        Ok(())
    }

    /// Returns when every rank has called it.
    fn barrier(&self, what: &str) -> Result<()> {
        self.all_gather_bytes(&[], what).map(|_| ())
    }

    /// The sum over ranks of same-named tensors, in place, as one flat f32 bucket in name
    /// order (every rank holds the same names: the trainer fills unreached parameters with
    /// zeros). Host implementation: one copy to the host and back.
    fn all_reduce_tensors(&self, tensors: &mut NamedTensors, what: &str) -> Result<()> {
        if self.world() == 1 {
            return Ok(());
        }
        let mut flat = flatten(tensors);
        self.all_reduce_f32(&mut flat, what)?;
        unflatten(tensors, &flat);
        Ok(())
    }

    /// `root`'s tensors on every rank (the initial weights), in place, in buckets of
    /// [`BROADCAST_BUCKET`] values (the host implementation gathers each bucket from every rank).
    fn broadcast_tensors(&self, tensors: &mut NamedTensors, root: usize, what: &str) -> Result<()> {
        if self.world() == 1 {
            return Ok(());
        }
        let mut flat = flatten(tensors);
        for (k, bucket) in flat.chunks_mut(BROADCAST_BUCKET).enumerate() {
            let mut bytes: Vec<u8> = bucket.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.broadcast_bytes(&mut bytes, root, &format!("{what}, bucket {k}"))?;
            if bytes.len() != bucket.len() * 4 {
                return Err(Error::Dist(format!(
                    "`{what}`: rank {root} sent another number of values than rank {} holds\nhint: every rank must load the same model",
                    self.rank()
                )));
            }
            for (v, c) in bucket.iter_mut().zip(bytes.chunks_exact(4)) {
                *v = f32::from_le_bytes(c.try_into().expect("4 bytes"));
            }
        }
        unflatten(tensors, &flat);
        Ok(())
    }
}

/// `values` combined with every rank's vector of `all` in rank order, with `combine`.
fn reduce_in_rank_order<T: Copy>(
    values: &mut [T],
    all: &[Vec<u8>],
    what: &str,
    decode: impl Fn(&[u8]) -> Vec<T>,
    combine: impl Fn(T, T) -> T,
) -> Result<()> {
    let mut ranks = all.iter().map(|bytes| decode(bytes));
    let mut total = ranks.next().unwrap_or_default();
    for (rank, other) in ranks.enumerate() {
        if other.len() != total.len() {
            return Err(Error::Dist(format!(
                "`{what}`: rank {} sent {} values, rank 0 {}\nhint: this is a bug in zoo's trainer: every rank must reduce the same number of values",
                rank + 1,
                other.len(),
                total.len()
            )));
        }
        for (t, o) in total.iter_mut().zip(other) {
            *t = combine(*t, o);
        }
    }
    values.copy_from_slice(&total);
    Ok(())
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f64_values(bytes: &[u8]) -> Vec<f64> {
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

/// Every tensor's values, in name order, as one f32 vector.
pub fn flatten(tensors: &NamedTensors) -> Vec<f32> {
    let mut flat = Vec::new();
    for t in tensors.values() {
        let data = t.value.clone().into_data().convert::<f32>();
        flat.extend(data.as_slice::<f32>().expect("f32 after convert"));
    }
    flat
}

/// Replaces every tensor's values with its part of `flat` (name order), on its device.
pub fn unflatten(tensors: &mut NamedTensors, flat: &[f32]) {
    let mut start = 0;
    for t in tensors.values_mut() {
        let n = t.value.dims()[0];
        let device = t.value.device();
        let values = TensorData::new(flat[start..start + n].to_vec(), [n]);
        t.value = Tensor::<1>::from_data(values, &device);
        start += n;
    }
}

/// One process: every collective is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn world(&self) -> usize {
        1
    }
    fn engine(&self) -> &'static str {
        "single"
    }
    fn all_gather_bytes(&self, mine: &[u8], _what: &str) -> Result<Vec<Vec<u8>>> {
        Ok(vec![mine.to_vec()])
    }
    fn all_reduce_f64(&self, _values: &mut [f64], _op: Reduce, _what: &str) -> Result<()> {
        Ok(())
    }
    fn all_reduce_f32(&self, _values: &mut [f32], _what: &str) -> Result<()> {
        Ok(())
    }
    fn abort(&self, code: i32, _message: &str) -> ! {
        std::process::exit(code)
    }
}

/// Ranks as threads of one process, exchanging through shared memory: to test the trainer's
/// data-parallel logic in `cargo test` without MPI. Not for users (one process gains nothing
/// from it). A rank that errors calls [`Collective::abort`]-like [`ThreadCollective::fail`]
/// (the test harness does), and the others' next collective returns an error naming it; a
/// collective that waits longer than the timeout returns an error naming the ranks that did
/// not arrive.
#[derive(Clone)]
pub struct ThreadCollective {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    world: usize,
    timeout: Duration,
    state: Mutex<Exchange>,
    changed: Condvar,
}

#[derive(Default)]
struct Exchange {
    /// The collective being filled (counts up), its deposits by rank.
    generation: u64,
    deposits: Vec<Option<Vec<u8>>>,
    /// The last completed collective's result, and how many ranks have yet to read it.
    done: Option<(u64, Arc<Vec<Vec<u8>>>)>,
    unread: usize,
    /// A rank that stopped with an error, and its message.
    failed: Option<(usize, String)>,
}

impl ThreadCollective {
    /// `world` ranks that wait at most `timeout` in a collective.
    pub fn world(world: usize, timeout: Duration) -> Vec<ThreadCollective> {
        let shared = Arc::new(Shared {
            world,
            timeout,
            state: Mutex::new(Exchange {
                deposits: vec![None; world],
                ..Exchange::default()
            }),
            changed: Condvar::new(),
        });
        (0..world)
            .map(|rank| ThreadCollective {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }

    /// Marks this rank failed: the other ranks' collectives return an error naming it.
    pub fn fail(&self, message: &str) {
        let mut state = self.shared.state.lock().expect("not poisoned");
        state.failed.get_or_insert((self.rank, message.to_string()));
        self.shared.changed.notify_all();
    }
}

impl Collective for ThreadCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.shared.world
    }

    fn engine(&self) -> &'static str {
        "threads"
    }

    fn all_gather_bytes(&self, mine: &[u8], what: &str) -> Result<Vec<Vec<u8>>> {
        let shared = &self.shared;
        let deadline = Instant::now() + shared.timeout;
        let mut state = shared.state.lock().expect("not poisoned");
        let check_failed = |state: &Exchange| match &state.failed {
            Some((rank, message)) => Err(Error::Dist(format!(
                "rank {rank} failed while rank {} waited in `{what}`: {message}",
                self.rank
            ))),
            None => Ok(()),
        };
        // Wait until every rank has read the previous collective's result.
        while state.unread > 0 {
            check_failed(&state)?;
            state = wait(shared, state, deadline, what, self.rank)?;
        }
        let generation = state.generation;
        state.deposits[self.rank] = Some(mine.to_vec());
        if state.deposits.iter().all(Option::is_some) {
            let all: Vec<Vec<u8>> = state
                .deposits
                .iter_mut()
                .map(|d| d.take().expect("checked"))
                .collect();
            state.done = Some((generation, Arc::new(all)));
            state.unread = shared.world;
            state.generation += 1;
            shared.changed.notify_all();
        }
        loop {
            if let Some((g, all)) = &state.done
                && *g == generation
            {
                let all = all.as_ref().clone();
                state.unread -= 1;
                if state.unread == 0 {
                    state.done = None;
                    shared.changed.notify_all();
                }
                return Ok(all);
            }
            check_failed(&state)?;
            state = wait(shared, state, deadline, what, self.rank)?;
        }
    }

    fn abort(&self, code: i32, message: &str) -> ! {
        self.fail(message);
        std::process::exit(code)
    }
}

/// Waits for a change until `deadline`; past it, an error naming the ranks that have not
/// deposited into the collective being filled.
fn wait<'a>(
    shared: &'a Shared,
    state: std::sync::MutexGuard<'a, Exchange>,
    deadline: Instant,
    what: &str,
    rank: usize,
) -> Result<std::sync::MutexGuard<'a, Exchange>> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        let missing: Vec<String> = state
            .deposits
            .iter()
            .enumerate()
            .filter(|(_, d)| d.is_none())
            .map(|(r, _)| r.to_string())
            .collect();
        return Err(Error::Dist(format!(
            "collective `{what}` timed out after {:.0} s on rank {rank}; ranks that did not arrive: {}\nhint: a rank hangs or is far slower than the others; raise `--dist-timeout` if it is only slow",
            shared.timeout.as_secs_f64(),
            missing.join(", ")
        )));
    }
    let (state, _) = shared
        .changed
        .wait_timeout(state, left)
        .expect("not poisoned");
    Ok(state)
}

/// A name received from another rank (a metric's, a response feature's) as a `'static` string:
/// each distinct name is leaked once (a run has a handful).
pub fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut names = NAMES.lock().expect("not poisoned");
    if let Some(&known) = names.iter().find(|&&n| n == name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(leaked);
    leaked
}

/// Checks that every rank starts from the same weights (each loaded the same files, or drew
/// the same seeded initialization): a fingerprint of every parameter's name, shape and bits,
/// compared across ranks. Cheaper than sending rank 0's weights (a 7B model would need its
/// 28 GB on the host of every rank), and it catches what a broadcast would hide: another model
/// file on another node.
pub fn check_same_weights(dist: &dyn Collective, policy: &dyn crate::Policy) -> Result<()> {
    if dist.world() == 1 {
        return Ok(());
    }
    let hash = weights_fingerprint(policy);
    let all = dist.all_gather_bytes(&hash.to_le_bytes(), "initial weights")?;
    if let Some(rank) = all.iter().position(|h| h != &all[0]) {
        return Err(Error::Dist(format!(
            "rank {rank} starts from other weights than rank 0\nhint: give every rank the same `--model` files (and `--set model.*`), or the same base-policy cache"
        )));
    }
    Ok(())
}

/// A 64-bit FNV-1a fingerprint of the policy's trainable parameters: every name, shape and
/// f32 bit pattern. (A LoRA policy's parameters are its adapters; the base is named by its
/// files.)
pub fn weights_fingerprint(policy: &dyn crate::Policy) -> u64 {
    let mut hash = crate::rng::fnv1a(b"weights");
    let mut mix = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= b as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (name, t) in policy.parameters() {
        mix(name.as_bytes());
        mix(&format!("{:?}", t.shape).into_bytes());
        let data = t.value.into_data().convert::<f32>();
        mix(data.as_bytes());
    }
    hash
}

/// Items `0..n` cut into `world` contiguous shares whose sizes differ by at most one: rank
/// `rank`'s share.
pub fn share(n: usize, world: usize, rank: usize) -> std::ops::Range<usize> {
    crate::trainer::split_even(n, world)[rank].clone()
}

/// Every rank's rows of a `[rows, cols]` matrix exchanged: each rank sends the rows `mine` it
/// computed, and every rank receives all of them, placed into `into` (`[n, cols]`).
pub fn all_gather_rows(
    dist: &dyn Collective,
    into: &mut crate::TokenMatrix,
    mine: &[usize],
    what: &str,
) -> Result<()> {
    if dist.world() == 1 {
        return Ok(());
    }
    let mut bytes = Vec::with_capacity(mine.len() * (8 + into.cols * 4));
    for &r in mine {
        bytes.extend((r as u64).to_le_bytes());
        for v in into.row(r) {
            bytes.extend(v.to_le_bytes());
        }
    }
    let cols = into.cols;
    for (rank, part) in dist.all_gather_bytes(&bytes, what)?.iter().enumerate() {
        if part.len() % (8 + cols * 4) != 0 {
            return Err(Error::Dist(format!(
                "`{what}`: rank {rank} sent rows of another width"
            )));
        }
        for row in part.chunks_exact(8 + cols * 4) {
            let r = u64::from_le_bytes(row[..8].try_into().expect("8 bytes")) as usize;
            for (t, v) in row[8..].chunks_exact(4).enumerate() {
                into.set(r, t, f32::from_le_bytes(v.try_into().expect("4 bytes")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `body(rank collective)` on `world` threads and returns their results in rank order.
    fn on_threads<T: Send + 'static>(
        world: usize,
        timeout: Duration,
        body: impl Fn(ThreadCollective) -> T + Send + Sync + 'static,
    ) -> Vec<T> {
        let body = Arc::new(body);
        let handles: Vec<_> = ThreadCollective::world(world, timeout)
            .into_iter()
            .map(|c| {
                let body = body.clone();
                std::thread::spawn(move || body(c))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn thread_ranks_reduce_gather_and_broadcast_like_one_process() {
        let results = on_threads(3, Duration::from_secs(10), |c| {
            let r = c.rank() as f64;
            let mut sums = [r, 10.0 * r];
            c.all_reduce_f64(&mut sums, Reduce::Sum, "sums").unwrap();
            let mut max = [r];
            c.all_reduce_f64(&mut max, Reduce::Max, "max").unwrap();
            let mut grads = [0.5f32 + c.rank() as f32, -1.0];
            c.all_reduce_f32(&mut grads, "grads").unwrap();
            let gathered = c.all_gather_bytes(&[c.rank() as u8; 2], "bytes").unwrap();
            let mut root = if c.rank() == 1 { vec![7, 8, 9] } else { vec![] };
            c.broadcast_bytes(&mut root, 1, "broadcast").unwrap();
            // Many collectives in a row: no rank reads another collective's deposits.
            for i in 0..50 {
                let mut v = [i as f64];
                c.all_reduce_f64(&mut v, Reduce::Sum, "loop").unwrap();
                assert_eq!(v[0], 3.0 * i as f64);
            }
            (sums, max, grads, gathered, root)
        });
        for (sums, max, grads, gathered, root) in results {
            assert_eq!(sums, [3.0, 30.0]);
            assert_eq!(max, [2.0]);
            assert_eq!(grads, [0.5 + 1.5 + 2.5, -3.0]);
            assert_eq!(gathered, vec![vec![0, 0], vec![1, 1], vec![2, 2]]);
            assert_eq!(root, vec![7, 8, 9]);
        }
    }

    #[test]
    fn a_rank_that_never_arrives_times_the_others_out_naming_it() {
        let results = on_threads(3, Duration::from_millis(300), |c| {
            if c.rank() == 2 {
                return Ok(());
            }
            c.barrier("gradients, step 2")
        });
        for (rank, result) in results.into_iter().enumerate().take(2) {
            let message = result.unwrap_err().to_string();
            assert!(
                message.contains("`gradients, step 2` timed out")
                    && message.contains("did not arrive: 2")
                    && message.contains(&format!("on rank {rank}")),
                "{message}"
            );
        }
    }

    #[test]
    fn a_failed_rank_stops_the_others_with_its_name_and_message() {
        let results = on_threads(2, Duration::from_secs(30), |c| {
            if c.rank() == 1 {
                c.fail("cannot read `data.jsonl`");
                return Ok(());
            }
            c.barrier("rollout, step 1")
        });
        let message = results[0].as_ref().unwrap_err().to_string();
        assert!(
            message.contains("rank 1 failed") && message.contains("data.jsonl"),
            "{message}"
        );
    }

    #[test]
    fn gathered_rows_land_in_place_on_every_rank() {
        let results = on_threads(2, Duration::from_secs(10), |c| {
            let mut m = crate::TokenMatrix::zeros(3, 2);
            let mine: Vec<usize> = share(3, 2, c.rank()).collect();
            for &r in &mine {
                m.set(r, 0, r as f32 + 0.5);
                m.set(r, 1, -(r as f32));
            }
            all_gather_rows(&c, &mut m, &mine, "rows").unwrap();
            m
        });
        for m in results {
            assert_eq!(m.data, vec![0.5, 0.0, 1.5, -1.0, 2.5, -2.0]);
        }
    }
}
