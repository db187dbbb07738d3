//! zoo-core: the traits, batch types, registry and the shared trainer that every zoo objective
//! plugs into.
//!
//! The trainer is algorithm-blind: an [`Objective`] declares what it needs (reference
//! log-probs, aggregation mode, ...), computes credit on plain numbers and returns unreduced
//! per-token loss terms; the trainer owns rollout, scoring, extra passes, aggregation over the
//! whole mini-batch, clipping, the optimizer and checkpoints. That split is what makes a
//! mini-batch give the same gradient however it is cut into micro-batches (see
//! [`aggregation`]).
//!
//! Algorithm crates reach Burn only through the re-export [`burn`]: this crate is also built as a
//! Rust `dylib`, the one shared library that the `zoo` binary of the dynamic build and every
//! dynamically loaded plugin link against (see [`plugin`]).
#![warn(missing_docs)]

pub use burn;
pub use inventory;
pub use typetag;

pub mod aggregation;
pub mod attention;
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod dist;
pub mod error;
pub mod eval;
pub mod metrics;
pub mod objective;
pub mod optim;
pub mod params;
pub mod plugin;
pub mod policy;
pub mod probe;
pub mod registry;
pub mod rng;
pub mod sft;
pub mod task;
pub mod teacher;
pub mod tensorboard;
pub mod testing;
pub mod trainer;

pub use aggregation::Aggregation;
pub use batch::{LogitArray, Rollout, RolloutBatch, TokenMatrix};
pub use error::{Error, Result};
pub use objective::{
    Credit, CreditInput, DynamicSampling, LossInput, LossTerms, Needs, Objective, ObjectiveConfig,
    Shortfall,
};
pub use policy::{Policy, SamplingConfig};
pub use registry::AlgorithmEntry;
pub use task::{Problem, Task, Verdict, Verifier};
pub use teacher::{
    ProbeInput, TeacherGroup, TeacherPass, TeacherRow, TeacherScores, TeacherWeights, py_strip,
    strip_think,
};
