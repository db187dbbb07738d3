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
        let task = (entry.build)();
        println!(
            "  {:<10} {} (verifier `{}`)",
            entry.name,
            entry.summary,
            task.verifier().name()
        );
    }
    println!("verifiers:");
    let mut verifiers: Vec<String> = registry::tasks()
        .iter()
        .map(|e| (e.build)().verifier().name().to_string())
        .collect();
    verifiers.sort();
    verifiers.dedup();
    for name in verifiers {
        println!("  {name}");
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
