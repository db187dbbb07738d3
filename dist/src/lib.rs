//! zoo-dist: the engines behind `zoo train --dist`, and what the launchers tell a process.
//!
//! - [`DistEnv`]: rank, world size, local rank and the rendezvous address, read from the
//!   variables of torchrun (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`),
//!   OpenMPI's `mpirun` (`OMPI_COMM_WORLD_*`), MPICH / Intel MPI (`PMI_RANK`, `PMI_SIZE`,
//!   `MPI_LOCALRANKID`) and Slurm's `srun` (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`).
//! - [`connect`]: the [`Collective`] of an engine: MPI (feature `mpi`, [`mpi`]) for CPU ranks
//!   on one or many machines, NCCL (feature `nccl`, [`nccl`]) for GPUs.
//!
//! The default build has neither engine: it stays pure Rust, and `--dist` then says which
//! feature to build with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use zoo_core::dist::Collective;
use zoo_core::{Error, Result};

#[cfg(feature = "mpi")]
pub mod mpi;
#[cfg(feature = "nccl")]
pub mod nccl;

/// The engine a run's ranks talk through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// MPI (`mpirun`, `srun --mpi=pmix`): CPU ranks, one machine or many.
    Mpi,
    /// NCCL: one GPU per rank (`torchrun`, `srun`, `mpirun`).
    Nccl,
}

impl std::str::FromStr for Engine {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mpi" => Ok(Engine::Mpi),
            "nccl" => Ok(Engine::Nccl),
            other => Err(Error::Config(format!(
                "unknown `--dist` engine `{other}`\nhint: `--dist mpi` (CPU ranks under mpirun or srun) or `--dist nccl` (GPU ranks under torchrun, srun or mpirun)"
            ))),
        }
    }
}

/// What the launcher told this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistEnv {
    /// This process's rank.
    pub rank: usize,
    /// The number of processes.
    pub world: usize,
    /// The rank among the processes of this machine (picks the GPU).
    pub local_rank: usize,
    /// The number of processes on this machine, when the launcher says.
    pub local_world: Option<usize>,
    /// The launcher the variables came from (`torchrun`, `mpirun (OpenMPI)`, ...).
    pub launcher: &'static str,
    /// Where rank 0 listens for the others (NCCL's bootstrap), when known.
    pub master: Option<(String, u16)>,
}

/// One launcher's variables: rank, world size, local rank, local world size.
struct Family {
    launcher: &'static str,
    rank: &'static str,
    world: &'static str,
    local_rank: &'static str,
    local_world: &'static str,
    mpi: bool,
}

const FAMILIES: [Family; 4] = [
    Family {
        launcher: "torchrun",
        rank: "RANK",
        world: "WORLD_SIZE",
        local_rank: "LOCAL_RANK",
        local_world: "LOCAL_WORLD_SIZE",
        mpi: false,
    },
    Family {
        launcher: "mpirun (OpenMPI)",
        rank: "OMPI_COMM_WORLD_RANK",
        world: "OMPI_COMM_WORLD_SIZE",
        local_rank: "OMPI_COMM_WORLD_LOCAL_RANK",
        local_world: "OMPI_COMM_WORLD_LOCAL_SIZE",
        mpi: true,
    },
    Family {
        launcher: "mpiexec (MPICH / Intel MPI)",
        rank: "PMI_RANK",
        world: "PMI_SIZE",
        local_rank: "MPI_LOCALRANKID",
        local_world: "MPI_LOCALNRANKS",
        mpi: true,
    },
    Family {
        launcher: "srun (Slurm)",
        rank: "SLURM_PROCID",
        world: "SLURM_NTASKS",
        local_rank: "SLURM_LOCALID",
        local_world: "SLURM_NTASKS_PER_NODE",
        mpi: true,
    },
];

impl DistEnv {
    /// This process's launcher variables.
    pub fn from_process(engine: Engine) -> Result<DistEnv> {
        Self::from_vars(&std::env::vars().collect(), engine)
    }

    /// Reads `vars` for `engine`: the first launcher whose variables are present (torchrun,
    /// then OpenMPI, MPICH, Slurm). Refuses a launcher with only some of its variables, two
    /// launchers that disagree on the world, a rank outside the world, `--dist mpi` without an
    /// MPI launcher and `--dist nccl` without a rendezvous address; every message names the
    /// variables.
    pub fn from_vars(vars: &BTreeMap<String, String>, engine: Engine) -> Result<DistEnv> {
        let number = |name: &str| -> Result<Option<usize>> {
            vars.get(name)
                .map(|v| {
                    v.trim().parse::<usize>().map_err(|_| {
                        Error::Dist(format!(
                            "`{name}={v}` is not a whole number\nhint: the launcher sets it; unset it if you set it by hand"
                        ))
                    })
                })
                .transpose()
        };
        let mut found: Vec<DistEnv> = Vec::new();
        for family in &FAMILIES {
            // Slurm's task variables also exist in the batch script itself: only a step
            // started by `srun` is a launch.
            if family.launcher.starts_with("srun") && !vars.contains_key("SLURM_STEP_ID") {
                continue;
            }
            let (rank, world) = (number(family.rank)?, number(family.world)?);
            let (rank, world) = match (rank, world) {
                (None, None) => continue,
                (Some(rank), Some(world)) => (rank, world),
                (rank, _) => {
                    let missing = if rank.is_none() {
                        family.rank
                    } else {
                        family.world
                    };
                    return Err(Error::Dist(format!(
                        "`{}` is set but `{missing}` is not: {} sets both\nhint: start zoo with the launcher, or set both",
                        if rank.is_none() {
                            family.world
                        } else {
                            family.rank
                        },
                        family.launcher
                    )));
                }
            };
            if world == 0 || rank >= world {
                return Err(Error::Dist(format!(
                    "`{}={rank}` is not a rank of a world of `{}={world}`",
                    family.rank, family.world
                )));
            }
            if engine == Engine::Mpi && !family.mpi {
                continue;
            }
            found.push(DistEnv {
                rank,
                world,
                local_rank: number(family.local_rank)?.unwrap_or(0),
                // Slurm writes `8(x2)` for 8 tasks on each of 2 nodes: the leading count.
                local_world: vars.get(family.local_world).and_then(|v| {
                    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().ok()
                }),
                launcher: family.launcher,
                master: None,
            });
        }
        if let [first, rest @ ..] = found.as_slice()
            && let Some(other) = rest
                .iter()
                .find(|o| o.world != first.world || o.rank != first.rank)
        {
            return Err(Error::Dist(format!(
                "{} says rank {} of {}, {} says rank {} of {}\nhint: start zoo with one launcher (a stale `RANK`/`WORLD_SIZE` in the shell counts as one)",
                first.launcher, first.rank, first.world, other.launcher, other.rank, other.world
            )));
        }
        let Some(mut env) = found.into_iter().next() else {
            return Err(Error::Dist(match engine {
                Engine::Mpi => "`--dist mpi` but no MPI launcher variable is set (`OMPI_COMM_WORLD_RANK`, `PMI_RANK`, or `SLURM_PROCID` inside `srun`)\nhint: start it as `mpirun -np N zoo train ... --dist mpi` (or `srun` with MPI support)".to_string(),
                Engine::Nccl => "`--dist nccl` but no launcher variable is set (`RANK`/`WORLD_SIZE` of torchrun, `OMPI_COMM_WORLD_RANK`, `PMI_RANK` or `SLURM_PROCID` inside `srun`)\nhint: start it as `torchrun --nproc-per-node N --no-python zoo train ... --dist nccl`".to_string(),
            }));
        };
        env.master = master(vars, env.launcher)?;
        if engine == Engine::Nccl && env.master.is_none() {
            return Err(Error::Dist(format!(
                "`--dist nccl` under {} needs the address rank 0 listens on: `MASTER_ADDR` and `MASTER_PORT` are not set\nhint: export them to every rank (e.g. `mpirun -x MASTER_ADDR=host0 -x MASTER_PORT=29500 ...`)",
                env.launcher
            )));
        }
        Ok(env)
    }

    /// The NCCL bootstrap address `host:port`: `MASTER_PORT + 1`, since torchrun's own store
    /// already listens on `MASTER_PORT`.
    pub fn nccl_address(&self) -> Option<String> {
        self.master
            .as_ref()
            .map(|(host, port)| format!("{host}:{}", port.wrapping_add(1)))
    }
}

/// `MASTER_ADDR:MASTER_PORT`, or under Slurm the first host of `SLURM_JOB_NODELIST` and a port
/// from the job id (as Lightning does: 15000 + its last four digits).
fn master(vars: &BTreeMap<String, String>, launcher: &str) -> Result<Option<(String, u16)>> {
    match (vars.get("MASTER_ADDR"), vars.get("MASTER_PORT")) {
        (Some(host), Some(port)) => {
            let port = port
                .trim()
                .parse::<u16>()
                .map_err(|_| Error::Dist(format!("`MASTER_PORT={port}` is not a port number")))?;
            return Ok(Some((host.trim().to_string(), port)));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::Dist(
                "only one of `MASTER_ADDR` and `MASTER_PORT` is set\nhint: set both, or neither"
                    .into(),
            ));
        }
        (None, None) => {}
    }
    if launcher.starts_with("srun")
        && let (Some(list), Some(job)) = (vars.get("SLURM_JOB_NODELIST"), vars.get("SLURM_JOB_ID"))
    {
        let job: u64 = job.trim().parse().unwrap_or(0);
        return Ok(Some((first_host(list), 15000 + (job % 10000) as u16)));
    }
    Ok(None)
}

/// The first host of a Slurm node list: `node[01-04,07],gpu5` → `node01`.
pub fn first_host(list: &str) -> String {
    let first = list.split(',').next().unwrap_or("").trim();
    match first.split_once('[') {
        Some((prefix, ranges)) => {
            let start = ranges.split(['-', ',', ']']).next().unwrap_or("");
            format!("{prefix}{start}")
        }
        None => first.to_string(),
    }
}

/// The collective of `engine` for the process the launcher described as `env`, each
/// collective waiting at most `timeout`; NCCL's communicator is made on CUDA device `gpu` (the
/// one the rank trains on).
pub fn connect(
    env: &DistEnv,
    engine: Engine,
    timeout: Duration,
    gpu: usize,
) -> Result<Arc<dyn Collective>> {
    match engine {
        #[cfg(feature = "mpi")]
        Engine::Mpi => Ok(Arc::new(mpi::MpiCollective::init(env, timeout)?)),
        #[cfg(feature = "nccl")]
        Engine::Nccl => Ok(Arc::new(nccl::NcclCollective::init(env, gpu, timeout)?)),
        #[allow(unreachable_patterns)]
        _ => {
            let _ = (env, timeout, gpu);
            let feature = match engine {
                Engine::Mpi => "mpi",
                Engine::Nccl => "nccl",
            };
            Err(Error::Dist(format!(
                "this zoo was built without the `{feature}` feature\nhint: rebuild with `cargo build --release --features {feature}`{}",
                if feature == "mpi" {
                    " after `scripts/setup-mpi.sh`"
                } else {
                    ",tch after `source scripts/setup-libtorch.sh`"
                }
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_launcher_gives_rank_world_and_local_rank() {
        let torchrun = vars(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "2"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("MASTER_PORT", "29500"),
        ]);
        let env = DistEnv::from_vars(&torchrun, Engine::Nccl).unwrap();
        assert_eq!((env.rank, env.world, env.local_rank), (3, 8, 1));
        assert_eq!(env.local_world, Some(2));
        assert_eq!(env.nccl_address().as_deref(), Some("10.0.0.1:29501"));

        let openmpi = vars(&[
            ("OMPI_COMM_WORLD_RANK", "1"),
            ("OMPI_COMM_WORLD_SIZE", "2"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
        ]);
        let env = DistEnv::from_vars(&openmpi, Engine::Mpi).unwrap();
        assert_eq!(
            (env.rank, env.world, env.launcher),
            (1, 2, "mpirun (OpenMPI)")
        );

        let hydra = vars(&[
            ("PMI_RANK", "0"),
            ("PMI_SIZE", "4"),
            ("MPI_LOCALRANKID", "0"),
        ]);
        assert_eq!(DistEnv::from_vars(&hydra, Engine::Mpi).unwrap().world, 4);

        let slurm = vars(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "16"),
            ("SLURM_LOCALID", "5"),
            ("SLURM_STEP_ID", "0"),
            ("SLURM_JOB_NODELIST", "gpu[007-008],cpu1"),
            ("SLURM_JOB_ID", "4812345"),
            ("SLURM_NTASKS_PER_NODE", "8(x2)"),
        ]);
        let env = DistEnv::from_vars(&slurm, Engine::Nccl).unwrap();
        assert_eq!((env.rank, env.world, env.local_rank), (5, 16, 5));
        assert_eq!(env.master, Some(("gpu007".to_string(), 15000 + 2345)));
        assert_eq!(env.local_world, Some(8));
    }

    #[test]
    fn missing_or_contradicting_variables_are_refused_by_name() {
        let err = |pairs: &[(&str, &str)], engine| {
            DistEnv::from_vars(&vars(pairs), engine)
                .unwrap_err()
                .to_string()
        };
        let half = err(
            &[("RANK", "0"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1")],
            Engine::Nccl,
        );
        assert!(
            half.contains("`WORLD_SIZE`") && half.contains("torchrun"),
            "{half}"
        );
        let nothing = err(&[], Engine::Mpi);
        assert!(nothing.contains("mpirun -np N"), "{nothing}");
        // torchrun's variables do not make an MPI launch.
        let torchrun = err(&[("RANK", "0"), ("WORLD_SIZE", "2")], Engine::Mpi);
        assert!(torchrun.contains("no MPI launcher"), "{torchrun}");
        let no_master = err(&[("RANK", "0"), ("WORLD_SIZE", "2")], Engine::Nccl);
        assert!(no_master.contains("`MASTER_ADDR`"), "{no_master}");
        let outside = err(&[("PMI_RANK", "4"), ("PMI_SIZE", "4")], Engine::Mpi);
        assert!(outside.contains("`PMI_RANK=4`"), "{outside}");
        let disagree = err(
            &[
                ("OMPI_COMM_WORLD_RANK", "0"),
                ("OMPI_COMM_WORLD_SIZE", "2"),
                ("PMI_RANK", "0"),
                ("PMI_SIZE", "4"),
            ],
            Engine::Mpi,
        );
        assert!(
            disagree.contains("rank 0 of 2") && disagree.contains("rank 0 of 4"),
            "{disagree}"
        );
        let bad = err(
            &[("OMPI_COMM_WORLD_RANK", "x"), ("OMPI_COMM_WORLD_SIZE", "2")],
            Engine::Mpi,
        );
        assert!(bad.contains("not a whole number"), "{bad}");
        // Slurm's variables in a batch script (no step) are not a launch.
        let script = err(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "4")], Engine::Mpi);
        assert!(script.contains("no MPI launcher"), "{script}");
        assert!(
            "gloo"
                .parse::<Engine>()
                .unwrap_err()
                .to_string()
                .contains("--dist mpi")
        );
    }

    #[test]
    fn slurm_node_lists_give_their_first_host() {
        assert_eq!(first_host("node[01-04,07],gpu5"), "node01");
        assert_eq!(first_host("gpu5,node[1-2]"), "gpu5");
        assert_eq!(first_host("single"), "single");
    }

    #[test]
    #[cfg(not(feature = "mpi"))]
    fn an_engine_left_out_of_the_build_says_which_feature_to_build_with() {
        let env = DistEnv::from_vars(
            &vars(&[("OMPI_COMM_WORLD_RANK", "0"), ("OMPI_COMM_WORLD_SIZE", "2")]),
            Engine::Mpi,
        )
        .unwrap();
        let message = connect(&env, Engine::Mpi, Duration::from_secs(1), 0)
            .err()
            .unwrap()
            .to_string();
        assert!(message.contains("--features mpi"), "{message}");
    }
}
