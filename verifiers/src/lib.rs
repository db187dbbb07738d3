//! zoo-verifiers: verifiable tasks, each a task source plus an exact checker.
//!
//! For now the CPU world's procedural tasks: multi-digit addition written as a carry chain
//! (`addition`) and its easier one-digit modular cousin (`mod10`). Both are seeded, keep a
//! fixed held-out split, carry a hint slot for teacher contexts, and provide the noisy
//! warm-start data that makes a base policy worth training with RL.
#![warn(missing_docs)]

pub mod arithmetic;

pub use arithmetic::{Arithmetic, ArithmeticVerifier, Kind};
