//! `zoo new-algo NAME`: a new algorithm crate in `plugins/NAME`, copied from
//! `plugins/template` (a workspace member that compiles and passes its test, so the copy does
//! too), registered in the workspace, linked into the static `zoo` binary, and built as a plugin
//! file by the dynamic build (`scripts/build-dynamic.sh`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use zoo_core::registry;

use crate::cli::NewAlgoArgs;

/// `my_algo` → `MyAlgo`.
fn camel(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The workspace root: `start` or its closest ancestor with `plugins/template/Cargo.toml`.
fn workspace_root(start: &Path) -> Result<PathBuf> {
    let mut dir = start.to_path_buf();
    loop {
        if dir.join("plugins/template/Cargo.toml").is_file() && dir.join("Cargo.toml").is_file() {
            return Ok(dir);
        }
        if !dir.pop() {
            bail!(
                "no zoo workspace (with `plugins/template/`) at or above `{}`\nhint: run from the zoo repository or pass `--workspace DIR`",
                start.display()
            );
        }
    }
}

/// The template's text with every name replaced.
fn instantiate(text: &str, name: &str) -> String {
    text.replace("zoo-template", &format!("zoo-{name}"))
        .replace("zoo_template", &format!("zoo_{name}"))
        .replace("Template", &camel(name))
        .replace("template", name)
}

/// Inserts `line` right after the first line of `text` equal to `anchor`.
fn insert_after(text: &str, anchor: &str, line: &str) -> Option<String> {
    let at = text.find(&format!("\n{anchor}\n"))? + anchor.len() + 2;
    Some(format!("{}{line}\n{}", &text[..at], &text[at..]))
}

/// Runs `zoo new-algo`.
pub fn run(args: &NewAlgoArgs) -> Result<()> {
    let name = args.name.as_str();
    let valid = name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid || name == "template" {
        bail!(
            "`{name}` is not a usable algorithm name\nhint: lowercase letters, digits and `_`, starting with a letter (e.g. `gspo` or `my_rloo`)"
        );
    }
    if registry::algorithm(name).is_ok() {
        bail!("algorithm `{name}` exists already\nhint: `zoo list` shows the names taken");
    }
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let root = workspace_root(args.workspace.as_deref().unwrap_or(&cwd))?;
    let target = root.join("plugins").join(name);
    if target.exists() {
        bail!(
            "`{}` exists already\nhint: pick another name or remove it",
            target.display()
        );
    }

    // Edit the workspace first (nothing is written if an anchor is missing).
    let manifest_path = root.join("Cargo.toml");
    let manifest = fs_err::read_to_string(&manifest_path)?;
    let members_end = manifest
        .find("members = [")
        .and_then(|start| manifest[start..].find(']').map(|end| start + end))
        .context("the workspace `Cargo.toml` has no `members = [...]` list")?;
    let manifest = format!(
        "{}, \"plugins/{name}\"{}",
        &manifest[..members_end],
        &manifest[members_end..]
    );
    let manifest = insert_after(
        &manifest,
        "[dependencies]",
        &format!("zoo-{name} = {{ path = \"plugins/{name}\", optional = true }}"),
    )
    .context("the workspace `Cargo.toml` has no `[dependencies]` section")?;
    let manifest = insert_after(
        &manifest,
        "static-plugins = [",
        &format!("    \"dep:zoo-{name}\","),
    )
    .context("the workspace `Cargo.toml` has no `static-plugins = [...]` feature")?;
    let linked_path = root.join("plugins/linked.rs");
    let linked = fs_err::read_to_string(&linked_path)?;
    let close = linked
        .rfind('}')
        .context("`plugins/linked.rs` has no closing `}`")?;
    let linked = format!(
        "{}    zoo_{name}::link();\n{}",
        &linked[..close],
        &linked[close..]
    );

    let template = root.join("plugins/template");
    fs_err::create_dir_all(target.join("src"))?;
    let cargo = instantiate(&fs_err::read_to_string(template.join("Cargo.toml"))?, name).replace(
        "The skeleton `zoo new-algo` copies: a minimal objective as a zoo plugin",
        &format!("{name}: an RLVR objective as a zoo plugin"),
    );
    fs_err::write(target.join("Cargo.toml"), cargo)?;
    let lib = instantiate(&fs_err::read_to_string(template.join("src/lib.rs"))?, name).replace(
        &format!(
            "//! {name}: an objective skeleton. `zoo new-algo NAME` copies this crate to `plugins/NAME`\n//! with every `{name}` renamed; replace the math below with yours."
        ),
        &format!("//! {name}: an objective made by `zoo new-algo`; replace the math below with yours."),
    );
    fs_err::write(target.join("src/lib.rs"), lib)?;
    fs_err::write(
        target.join("README.md"),
        format!(
            "# zoo-{name}\n\nMade by `zoo new-algo {name}`. The math is in `src/lib.rs`; \
             `docs/writing-a-plugin.md` walks through the rest.\n\n\
             ```\n\
             cargo test -p zoo-{name}                      # its parity test\n\
             cargo run -- train --algo {name} --steps 1    # it trains, linked into zoo\n\
             ```\n\n\
             Statically, it is a workspace member, an optional dependency of `zoo` (feature \
             `static-plugins`) and a\n`zoo_{name}::link()` line in `plugins/linked.rs`.\n\n\
             As a plugin file loaded at run time (the dynamic build):\n\n\
             ```\n\
             scripts/build-dynamic.sh                      # target/zoo-dynamic/plugins/libzoo_{name}.so\n\
             target/zoo-dynamic/zoo plugins inspect target/zoo-dynamic/plugins/libzoo_{name}.so\n\
             target/zoo-dynamic/zoo train --algo {name} --steps 1\n\
             ```\n\n\
             The plugin file works only with the `zoo` binary of the same build (same toolchain, \
             `Cargo.lock`,\nfeatures and flags); the loader checks that before loading it.\n"
        ),
    )?;
    fs_err::write(&manifest_path, manifest)?;
    fs_err::write(&linked_path, linked)?;
    println!(
        "created `plugins/{name}` (crate `zoo-{name}`), added to the workspace and linked into `zoo`\nnext:\n  cargo test -p zoo-{name}\n  cargo run -- train --algo {name} --steps 1\nas a plugin file: scripts/build-dynamic.sh && target/zoo-dynamic/zoo train --algo {name} --steps 1"
    );
    Ok(())
}
