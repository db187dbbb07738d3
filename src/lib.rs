//! zoo: a zoo of RLVR objectives behind one trait interface.
//!
//! This crate is the `zoo` command-line tool and a thin facade over the workspace:
//! [`zoo_core`] (traits, registry, trainer), [`zoo_models`] (policies), [`zoo_verifiers`]
//! (tasks) and one crate per algorithm. The binary links every algorithm crate; [`link_all`]
//! references each so that the linker keeps their `inventory` registrations.
#![warn(missing_docs)]

pub mod base;
pub mod cli;
pub mod commands;
pub mod run_config;

pub use zoo_core;
pub use zoo_models;
pub use zoo_verifiers;

/// References every statically linked plugin crate. A crate the binary never references is
/// dropped by the linker, and its registration with it.
pub fn link_all() {
    zoo_grpo::link();
    zoo_dapo::link();
    zoo_disco::link();
    zoo_rlsd::link();
    zoo_cepo::link();
    zoo_opsd::link();
    zoo_sdpo::link();
    include!("../plugins/linked.rs");
    zoo_verifiers::arithmetic::link();
    zoo_verifiers::link();
}
