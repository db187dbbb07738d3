//! The registries: algorithms and tasks, filled at compile time with `inventory`.
//!
//! An algorithm crate registers itself with
//! `inventory::submit! { AlgorithmEntry { name: "grpo", .. } }`. The linker drops a crate that
//! the final binary never references, and its registration with it, so the `zoo` binary names
//! every algorithm crate it links.

use crate::objective::ObjectiveConfig;
use crate::task::{Task, Verifier};
use crate::{Error, Result};

/// One registered algorithm.
pub struct AlgorithmEntry {
    /// The registry key: lowercase, equal to the CLI value and the config tag.
    pub name: &'static str,
    /// One line for `zoo list`.
    pub summary: &'static str,
    /// The configuration with the reference defaults.
    pub default_config: fn() -> Box<dyn ObjectiveConfig>,
    /// Where it comes from (the crate name), to name both origins of a clash.
    pub origin: &'static str,
    /// Run settings this algorithm needs by default, as TOML (e.g. DisCO's several optimizer
    /// steps per rollout batch: `"[update]\nmini_batches = 4"`); applied over the generic
    /// defaults and under `--config`, flags and `--set`. Usually empty.
    pub run_defaults: &'static str,
    /// Run settings of its reference for real language models (`--model`), as TOML (e.g.
    /// CEPO's `lr = 5e-6`); applied after `run_defaults` when the policy is a real model.
    /// Usually empty.
    pub llm_run_defaults: &'static str,
}

inventory::collect!(AlgorithmEntry);

/// One registered task.
pub struct TaskEntry {
    /// The registry key.
    pub name: &'static str,
    /// One line for `zoo list`.
    pub summary: &'static str,
    /// Builds the task from the run's `[data]` settings (empty for the procedural tasks).
    pub build: fn(&toml::Table) -> Result<Box<dyn Task>>,
}

inventory::collect!(TaskEntry);

/// One registered verifier, usable on its own (`zoo verify`).
pub struct VerifierEntry {
    /// The registry key.
    pub name: &'static str,
    /// One line for `zoo list`.
    pub summary: &'static str,
    /// Builds the verifier.
    pub build: fn() -> Box<dyn Verifier>,
}

inventory::collect!(VerifierEntry);

/// All registered verifiers, sorted by name.
pub fn verifiers() -> Vec<&'static VerifierEntry> {
    let mut all: Vec<&VerifierEntry> = inventory::iter::<VerifierEntry>().collect();
    all.sort_by_key(|e| e.name);
    all
}

/// The verifier registered as `name`, or an error listing the known ones.
pub fn verifier(name: &str) -> Result<&'static VerifierEntry> {
    let all = verifiers();
    all.iter()
        .find(|e| e.name == name)
        .copied()
        .ok_or_else(|| Error::unknown("verifier", name, all.iter().map(|e| e.name)))
}

/// All registered algorithms, sorted by name; a name registered twice is an error that names
/// both origins.
pub fn algorithms() -> Result<Vec<&'static AlgorithmEntry>> {
    let mut all: Vec<&AlgorithmEntry> = inventory::iter::<AlgorithmEntry>().collect();
    all.sort_by_key(|e| e.name);
    for pair in all.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(Error::Config(format!(
                "algorithm `{}` is registered twice, by `{}` and by `{}`\nhint: rename one of them",
                pair[0].name, pair[0].origin, pair[1].origin
            )));
        }
    }
    Ok(all)
}

/// The algorithm registered as `name`, or an error listing the known ones.
pub fn algorithm(name: &str) -> Result<&'static AlgorithmEntry> {
    let all = algorithms()?;
    all.iter()
        .find(|e| e.name == name)
        .copied()
        .ok_or_else(|| Error::unknown("algorithm", name, all.iter().map(|e| e.name)))
}

/// All registered tasks, sorted by name.
pub fn tasks() -> Vec<&'static TaskEntry> {
    let mut all: Vec<&TaskEntry> = inventory::iter::<TaskEntry>().collect();
    all.sort_by_key(|e| e.name);
    all
}

/// The task registered as `name`, or an error listing the known ones.
pub fn task(name: &str) -> Result<&'static TaskEntry> {
    let all = tasks();
    all.iter()
        .find(|e| e.name == name)
        .copied()
        .ok_or_else(|| Error::unknown("task", name, all.iter().map(|e| e.name)))
}
