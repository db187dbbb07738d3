//! zoo-loader: finds, checks and loads algorithm plugins, the shared libraries that the
//! dynamic build makes of each algorithm crate (`libzoo_cepo.so`).
//!
//! Loading is two steps, and the first runs none of the plugin's code:
//! 1. [`inspect`] reads the file as ELF and takes the plugin's
//!    [`PluginDeclaration`](zoo_core::plugin::PluginDeclaration) (exported by
//!    `zoo_core::declare_plugin!()`) straight from its bytes, with the libraries it needs;
//!    [`check`] compares the declaration with this process's own (ABI number, rustc, zoo-core
//!    version, type fingerprint) and refuses any difference with what to rebuild.
//! 2. [`load`] opens the library (`dlopen`), which runs its `inventory` registrations: its
//!    algorithms appear in `zoo_core::registry` and its configs in typetag's registry. Call it
//!    before anything deserializes a config: typetag builds its registry once, on first use.
//!
//! A plugin shares zoo-core, Burn and std with the host through `libzoo_core.so` and
//! `libstd-*.so`; [`load`] refuses to run in a binary that linked zoo-core statically (it would
//! give the plugin a second, separate copy of Burn's autodiff graph). Plugins are never
//! unloaded: the registries point into them.
//!
//! Where plugins come from ([`plugin_files`]): `--plugin PATH` (a file or a folder), the folders
//! and files in `ZOO_PLUGIN_PATH`, and the `plugins/` folder next to the `zoo` binary. Nothing
//! else is searched.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use object::read::elf::{ElfFile64, FileHeader};
use object::{Object, ObjectSection, ObjectSymbol};
use zoo_core::plugin::{DECLARATION_SIZE, PluginDeclaration, SYMBOL_PREFIX, field};

/// How to make a host and plugins that agree.
const REBUILD_HINT: &str = "hint: build zoo and its plugins together, from one checkout with one toolchain: \
     `scripts/build-dynamic.sh`, then run `target/zoo-dynamic/zoo`";

/// The environment variable with extra plugin files and folders (`:`-separated).
pub const PATH_VARIABLE: &str = "ZOO_PLUGIN_PATH";

/// What [`inspect`] reads from a plugin file.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The file.
    pub path: PathBuf,
    /// Its declaration.
    pub declaration: PluginDeclaration,
    /// The shared libraries it needs (`DT_NEEDED`), in order.
    pub needed: Vec<String>,
}

impl Inspection {
    /// The plugin crate's name (`zoo-cepo`).
    pub fn name(&self) -> String {
        field(&self.declaration.name)
    }

    /// The plugin crate's version.
    pub fn version(&self) -> String {
        field(&self.declaration.version)
    }

    /// The other plugins this one links against (`libzoo_grpo.so` for CEPO).
    pub fn plugin_dependencies(&self) -> impl Iterator<Item = &str> {
        self.needed
            .iter()
            .map(String::as_str)
            .filter(|n| n.starts_with("libzoo_") && *n != "libzoo_core.so")
    }
}

/// Reads a plugin file's declaration and needed libraries without loading it.
pub fn inspect(path: &Path) -> Result<Inspection> {
    let data =
        std::fs::read(path).with_context(|| format!("cannot read plugin `{}`", path.display()))?;
    let not_a_plugin = |why: &str| {
        anyhow::anyhow!(
            "`{}` is not a zoo plugin: {why}\nhint: plugins are the `lib<crate>.so` files of the \
             dynamic build (`scripts/build-dynamic.sh`), made from crates that call \
             `zoo_core::declare_plugin!()`",
            path.display()
        )
    };
    let file = ElfFile64::<object::Endianness>::parse(&*data)
        .map_err(|e| not_a_plugin(&format!("not a 64-bit ELF shared library ({e})")))?;

    let declarations: Vec<_> = file
        .dynamic_symbols()
        .filter(|s| s.is_definition())
        .filter(|s| s.name().is_ok_and(|n| n.starts_with(SYMBOL_PREFIX)))
        .collect();
    let symbol = match declarations.as_slice() {
        [] => return Err(not_a_plugin("it exports no plugin declaration")),
        [one] => one,
        several => {
            let names: Vec<&str> = several.iter().filter_map(|s| s.name().ok()).collect();
            bail!(
                "`{}` exports {} plugin declarations ({}): it contains other plugin crates \
                 statically\nhint: give every plugin crate `crate-type = [\"rlib\", \"dylib\"]` \
                 so that plugins link each other dynamically",
                path.display(),
                names.len(),
                names.join(", ")
            );
        }
    };
    let bytes = symbol
        .section_index()
        .and_then(|index| file.section_by_index(index).ok())
        .and_then(|section| {
            section
                .data_range(symbol.address(), DECLARATION_SIZE as u64)
                .ok()
                .flatten()
        })
        .ok_or_else(|| not_a_plugin("its declaration's bytes are not in the file"))?;
    let declaration = PluginDeclaration::from_bytes(bytes)
        .ok_or_else(|| not_a_plugin("its declaration does not start with the zoo magic"))?;

    let endian = file.endian();
    let dynamic = file
        .elf_header()
        .sections(endian, &*data)
        .and_then(|sections| sections.dynamic_table(endian, &*data))
        .map_err(|e| not_a_plugin(&format!("unreadable dynamic section ({e})")))?;
    let mut needed = Vec::new();
    for entry in dynamic.iter() {
        if entry.tag == object::elf::DT_NEEDED {
            let name = dynamic
                .string(entry)
                .map_err(|e| not_a_plugin(&format!("unreadable needed library ({e})")))?;
            needed.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    Ok(Inspection {
        path: path.to_path_buf(),
        declaration,
        needed,
    })
}

/// Refuses a plugin whose declaration differs from this process's in anything that the Rust
/// ABI depends on; the error lists each difference.
pub fn check(inspection: &Inspection) -> Result<()> {
    let mismatches = inspection
        .declaration
        .mismatches(&PluginDeclaration::host());
    if mismatches.is_empty() {
        return Ok(());
    }
    bail!(
        "refusing plugin `{}` ({} {}): it was built differently from this zoo\n  - {}\n{REBUILD_HINT}",
        inspection.path.display(),
        inspection.name(),
        inspection.version(),
        mismatches.join("\n  - ")
    )
}

/// A plugin this process has loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// What was read from its file (the path is canonical).
    pub inspection: Inspection,
    /// False when it was loaded only because another plugin links against it.
    pub requested: bool,
}

static LOADED: Mutex<Vec<Loaded>> = Mutex::new(Vec::new());

/// The plugins loaded so far.
pub fn loaded() -> Vec<Loaded> {
    LOADED
        .lock()
        .expect("the plugin list is never poisoned")
        .clone()
}

/// Whether this process uses zoo-core as a shared library, as plugins need.
#[cfg(target_os = "linux")]
pub fn host_shares_zoo_core() -> bool {
    const RTLD_NOLOAD: std::os::raw::c_int = 0x4; // glibc and musl
    let flags = libloading::os::unix::RTLD_NOW | RTLD_NOLOAD;
    // SAFETY: RTLD_NOLOAD only looks the name up among libraries already loaded; nothing is
    // loaded and no initializer runs.
    unsafe { libloading::os::unix::Library::open(Some("libzoo_core.so"), flags) }.is_ok()
}

/// Whether this process uses zoo-core as a shared library, as plugins need.
#[cfg(not(target_os = "linux"))]
pub fn host_shares_zoo_core() -> bool {
    false
}

/// Checks and loads the plugin at `path`, after the plugins it links against (which must lie
/// next to it). Loading the same file twice is a no-op; two files declaring the same plugin
/// is an error.
pub fn load(path: &Path) -> Result<()> {
    load_one(path, true)
}

fn load_one(path: &Path, requested: bool) -> Result<()> {
    let path = path
        .canonicalize()
        .with_context(|| format!("cannot find plugin `{}`", path.display()))?;
    {
        let mut loaded = LOADED.lock().expect("the plugin list is never poisoned");
        if let Some(done) = loaded.iter_mut().find(|l| l.inspection.path == path) {
            done.requested |= requested;
            return Ok(());
        }
    }
    if !host_shares_zoo_core() {
        bail!(
            "cannot load plugin `{}`: this zoo binary links zoo-core statically, so the plugin \
             would run against a second copy of zoo-core and Burn\n{REBUILD_HINT}",
            path.display()
        );
    }
    let inspection = inspect(&path)?;
    check(&inspection)?;
    if let Some(other) = loaded()
        .iter()
        .find(|l| l.inspection.name() == inspection.name())
    {
        bail!(
            "plugin `{}` is given twice: `{}` and `{}`\nhint: keep one of the two files on the \
             plugin path",
            inspection.name(),
            other.inspection.path.display(),
            path.display()
        );
    }
    let folder = path.parent().unwrap_or(Path::new("."));
    for dependency in inspection.plugin_dependencies() {
        let sibling = folder.join(dependency);
        if !sibling.exists() {
            bail!(
                "plugin `{}` links against `{dependency}`, which is not next to it in `{}`\n\
                 hint: keep the plugin files of one build together",
                path.display(),
                folder.display()
            );
        }
        load_one(&sibling, false)?;
    }
    // SAFETY: the declaration says the library was built by this compiler against this exact
    // zoo-core (sources, lock file, features), which this process shares as a shared library;
    // its initializers only append to zoo-core's registries.
    let library = unsafe {
        libloading::os::unix::Library::open(
            Some(&path),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
        )
    }
    .with_context(|| format!("cannot load plugin `{}`", path.display()))?;
    // Never unloaded: the registries hold pointers into it.
    std::mem::forget(library);
    LOADED
        .lock()
        .expect("the plugin list is never poisoned")
        .push(Loaded {
            inspection,
            requested,
        });
    Ok(())
}

/// The plugin files to load, in order: each `--plugin` value, then each `ZOO_PLUGIN_PATH`
/// entry, then the `plugins/` folder next to the running binary (if it exists). A folder
/// stands for its `*.so` files, sorted by name; a path given that does not exist is an error.
pub fn plugin_files(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<(PathBuf, bool)> = given.iter().map(|p| (p.clone(), true)).collect();
    if let Some(value) = std::env::var_os(PATH_VARIABLE) {
        entries.extend(
            std::env::split_paths(&value)
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| (p, true)),
        );
    }
    if let Some(folder) = default_folder() {
        entries.push((folder, false));
    }
    let mut files = Vec::new();
    for (entry, must_exist) in entries {
        if entry.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&entry)
                .with_context(|| format!("cannot list plugin folder `{}`", entry.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "so"))
                .collect();
            found.sort();
            files.extend(found);
        } else if entry.exists() {
            files.push(entry);
        } else if must_exist {
            bail!(
                "plugin path `{}` does not exist\nhint: give a plugin file (`lib<crate>.so`) or a \
                 folder of them, with `--plugin` or in `{PATH_VARIABLE}`",
                entry.display()
            );
        }
    }
    Ok(files)
}

/// The `plugins/` folder next to the running binary.
pub fn default_folder() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join("plugins")).filter(|p| p.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_elf_is_not_a_plugin() {
        let path = std::env::temp_dir().join(format!("zoo-loader-test-{}.so", std::process::id()));
        std::fs::write(&path, "not a library").unwrap();
        let error = inspect(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(error.contains("is not a zoo plugin: not a 64-bit ELF shared library"));
        assert!(error.contains("hint:"));
    }

    #[test]
    fn an_elf_file_without_a_declaration_is_not_a_plugin() {
        // The test binary itself is ELF and declares no plugin.
        let exe = std::env::current_exe().unwrap();
        let error = inspect(&exe).unwrap_err().to_string();
        assert!(error.contains("exports no plugin declaration"), "{error}");
    }

    #[test]
    fn a_statically_linked_host_refuses_to_load() {
        // This test binary links zoo-core statically, like the default `zoo`.
        assert!(!host_shares_zoo_core());
        let exe = std::env::current_exe().unwrap();
        let error = load(&exe).unwrap_err().to_string();
        assert!(error.contains("links zoo-core statically"), "{error}");
    }

    #[test]
    fn a_missing_plugin_path_is_an_error() {
        let error = plugin_files(&[PathBuf::from("/no/such/plugin.so")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("plugin path `/no/such/plugin.so` does not exist"));
    }
}
