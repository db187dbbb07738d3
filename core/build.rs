//! Computes what a dynamically loaded plugin must share with the host (see `src/plugin.rs`):
//! the compiler's version and a fingerprint of the types that cross the boundary.
//!
//! The fingerprint hashes every source file of this crate, its manifest, the workspace's
//! `Cargo.lock` (the exact Burn, serde, typetag and inventory builds zoo-core links), the
//! target and enabled features, and what makes two builds of the same sources incompatible:
//! the compiler flags (`-C prefer-dynamic` of the dynamic build, in
//! `CARGO_ENCODED_RUSTFLAGS`), the profile (`PROFILE`, `OPT_LEVEL`, `DEBUG`) and cargo's
//! metadata hash of this build unit (the hash in `OUT_DIR`, which cargo derives from the
//! package, its features, profile and target). It is conservative on purpose: any change to
//! zoo-core, a dependency version or the build's flags asks for plugins to be rebuilt,
//! because the Rust ABI between them is not stable.

use std::path::{Path, PathBuf};
use std::process::Command;

/// FNV-1a, 64-bit: stable across compiler versions (unlike `DefaultHasher`).
fn fnv1a(hash: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("zoo-core's src/ is readable")
        .map(|e| e.expect("a readable directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut files = Vec::new();
    sources(&manifest_dir.join("src"), &mut files);
    files.push(manifest_dir.join("Cargo.toml"));
    let lock = manifest_dir.join("../Cargo.lock");
    if lock.exists() {
        files.push(lock.clone());
        println!("cargo:rerun-if-changed={}", lock.display());
    }
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");

    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for path in &files {
        let relative = path.strip_prefix(&manifest_dir).unwrap_or(path);
        fnv1a(&mut hash, relative.to_string_lossy().as_bytes());
        fnv1a(
            &mut hash,
            &std::fs::read(path).expect("a readable source file"),
        );
    }
    let mut features: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("CARGO_FEATURE_"))
        .collect();
    features.sort();
    for key in [
        "TARGET",
        "CARGO_CFG_PANIC",
        "CARGO_ENCODED_RUSTFLAGS",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
    ] {
        features.push(std::env::var(key).unwrap_or_default());
    }
    // `.../build/zoo-core-<hash>/out`: the hash of this build unit, not the folder it is in.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let unit = out_dir.parent().and_then(Path::file_name);
    features.push(
        unit.map(|u| u.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    fnv1a(&mut hash, features.join(",").as_bytes());
    println!("cargo:rustc-env=ZOO_CORE_FINGERPRINT={hash:016x}");

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=ZOO_RUSTC_VERSION={version}");
}
