//! zoo: a zoo of RLVR objectives behind one trait interface.
//!
//! This crate is the `zoo` command-line tool and a thin facade over the workspace:
//! [`zoo_core`] (traits, registry, trainer), [`zoo_models`] (policies), [`zoo_verifiers`]
//! (tasks) and one crate per algorithm. The default build links every algorithm crate
//! (feature `static-plugins`); [`link_all`] references each so that the linker keeps their
//! `inventory` registrations. The dynamic build links none and loads them as plugin files
//! ([`load_plugins`], feature `dynamic`).
#![warn(missing_docs)]

pub mod base;
pub mod cli;
pub mod commands;
pub mod run_config;
pub mod stats;
pub mod svg;

pub use zoo_core;
pub use zoo_llm;
pub use zoo_models;
pub use zoo_verifiers;

/// References every statically linked plugin crate. A crate the binary never references is
/// dropped by the linker, and its registration with it.
pub fn link_all() {
    #[cfg(feature = "static-plugins")]
    link_algorithms();
    zoo_verifiers::arithmetic::link();
    zoo_verifiers::link();
}

#[cfg(feature = "static-plugins")]
fn link_algorithms() {
    zoo_grpo::link();
    zoo_gspo::link();
    zoo_cispo::link();
    zoo_sapo::link();
    zoo_gmpo::link();
    zoo_dppo::link();
    zoo_maxrl::link();
    zoo_dapo::link();
    zoo_disco::link();
    zoo_rlsd::link();
    zoo_cepo::link();
    zoo_rlcsd::link();
    zoo_opsd::link();
    zoo_sdpo::link();
    include!("../plugins/linked.rs");
}

/// Loads the plugin files named by `--plugin` (`given`), `ZOO_PLUGIN_PATH` and the `plugins/`
/// folder next to the binary, each after checking its declaration; returns how many were
/// loaded. Must run before any config is deserialized (typetag reads its registry once).
///
/// A build without the `dynamic` feature loads nothing and refuses explicit plugin paths.
pub fn load_plugins(given: &[std::path::PathBuf]) -> anyhow::Result<usize> {
    if !cfg!(feature = "dynamic") {
        let from_env = std::env::var_os(zoo_loader::PATH_VARIABLE).is_some_and(|v| !v.is_empty());
        if !given.is_empty() || from_env {
            anyhow::bail!(
                "this zoo binary is the static build: it cannot load plugin files\nhint: build the \
                 dynamic one with `scripts/build-dynamic.sh` and run `target/zoo-dynamic/zoo`"
            );
        }
        return Ok(0);
    }
    let files = zoo_loader::plugin_files(given)?;
    for file in &files {
        zoo_loader::load(file)?;
    }
    Ok(files.len())
}
