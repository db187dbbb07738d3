//! `zoo list`: what this build has.

use anyhow::Result;
use zoo_core::device::DEVICE_NAMES;
use zoo_core::registry;

/// Prints the registered algorithms, tasks, verifiers and devices.
pub fn run() -> Result<()> {
    println!("algorithms:");
    for entry in registry::algorithms()? {
        println!("  {:<10} {}", entry.name, entry.summary);
    }
    println!("tasks:");
    for entry in registry::tasks() {
        let verifier = match (entry.build)(&Default::default()) {
            Ok(task) => format!(" (verifier `{}`)", task.verifier().name()),
            Err(_) => String::new(), // configured by `[data]`
        };
        println!("  {:<10} {}{verifier}", entry.name, entry.summary);
    }
    println!("verifiers:");
    for entry in registry::verifiers() {
        println!("  {:<10} {}", entry.name, entry.summary);
    }
    println!("devices:");
    for name in DEVICE_NAMES {
        let note = if *name == "flex" {
            "pure-Rust CPU backend (default)"
        } else {
            "LibTorch backend (not in this build)"
        };
        println!("  {name:<10} {note}");
    }
    Ok(())
}

/// Prints every registered algorithm plugin. All are linked statically in this build (the
/// run-time loading route is not built yet).
pub fn plugins() -> Result<()> {
    println!("{:<8} {:<12} {:<8} version", "name", "origin", "linked");
    for entry in registry::algorithms()? {
        println!(
            "{:<8} {:<12} {:<8} {}",
            entry.name,
            entry.origin,
            "static",
            env!("CARGO_PKG_VERSION")
        );
    }
    Ok(())
}
