//! `zoo list`: what this build has.

use std::path::Path;

use anyhow::Result;
use zoo_core::device::{DEVICE_NAMES, HAS_LIBTORCH};
use zoo_core::plugin::{ABI_VERSION, PluginDeclaration, field};
use zoo_core::registry;

/// Prints the registered algorithms, tasks, verifiers and devices.
pub fn run() -> Result<()> {
    println!("algorithms:");
    for entry in registry::algorithms()? {
        println!("  {:<14} {}", entry.name, entry.summary);
    }
    println!("tasks:");
    for entry in registry::tasks() {
        let verifier = match (entry.build)(&Default::default()) {
            Ok(task) => format!(" (verifier `{}`)", task.verifier().name()),
            Err(_) => String::new(), // configured by `[data]`
        };
        println!("  {:<14} {}{verifier}", entry.name, entry.summary);
    }
    println!("verifiers:");
    for entry in registry::verifiers() {
        println!("  {:<14} {}", entry.name, entry.summary);
    }
    println!("devices:");
    for name in DEVICE_NAMES {
        let note = match (*name, HAS_LIBTORCH) {
            ("flex", _) => "pure-Rust CPU backend (default)",
            (_, true) => "LibTorch backend",
            (_, false) => "LibTorch backend (not in this build: feature `tch`)",
        };
        println!("  {name:<14} {note}");
    }
    Ok(())
}

/// Prints every registered algorithm: its name, whether it was linked into the binary
/// (`static`) or loaded from a plugin file (`dynamic`), the file, and its versions.
pub fn plugins() -> Result<()> {
    let loaded = zoo_loader::loaded();
    println!(
        "{:<10} {:<8} {:<14} {:<8} file",
        "name", "origin", "crate", "version"
    );
    for entry in registry::algorithms()? {
        let file = loaded.iter().find(|l| l.inspection.name() == entry.origin);
        match file {
            Some(plugin) => {
                let via = if plugin.requested {
                    String::new()
                } else {
                    " (needed by another plugin)".to_string()
                };
                println!(
                    "{:<10} {:<8} {:<14} {:<8} {}{via}",
                    entry.name,
                    "dynamic",
                    entry.origin,
                    plugin.inspection.version(),
                    plugin.inspection.path.display()
                );
            }
            None => println!(
                "{:<10} {:<8} {:<14} {:<8} (in the zoo binary)",
                entry.name,
                "static",
                entry.origin,
                env!("CARGO_PKG_VERSION")
            ),
        }
    }
    let host = PluginDeclaration::host();
    println!(
        "this zoo: zoo-core {}, {}, type fingerprint {}, {}",
        field(&host.zoo_core),
        field(&host.rustc),
        field(&host.fingerprint),
        if zoo_loader::host_shares_zoo_core() {
            "dynamic build (zoo-core shared)"
        } else {
            "static build"
        }
    );
    Ok(())
}

/// Prints a plugin file's declaration and needed libraries without loading it, then whether
/// this zoo would accept it; an error for a file that is not a zoo plugin or does not match.
pub fn inspect(path: &Path) -> Result<()> {
    let inspection = zoo_loader::inspect(path)?;
    let d = &inspection.declaration;
    println!("file:        {}", inspection.path.display());
    println!(
        "plugin:      {} {}",
        inspection.name(),
        inspection.version()
    );
    println!("abi:         {}", d.abi);
    if d.abi == ABI_VERSION {
        println!("rustc:       {}", field(&d.rustc));
        println!("zoo-core:    {}", field(&d.zoo_core));
        println!("fingerprint: {}", field(&d.fingerprint));
    }
    println!("needs:       {}", inspection.needed.join(", "));
    zoo_loader::check(&inspection)?;
    println!("compatible with this zoo: yes");
    Ok(())
}
