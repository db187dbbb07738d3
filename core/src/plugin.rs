//! The plugin declaration: what a separately built algorithm library must share with the
//! `zoo` binary that loads it, written so that the host can read and check it *before* running
//! any of the library's code.
//!
//! Rust has no stable ABI. A plugin and its host agree only when they come from the same
//! compiler, the same zoo-core sources, the same `Cargo.lock`, features and flags. Each plugin
//! crate states what it was built with by calling [`declare_plugin!`] once; the macro exports a
//! [`PluginDeclaration`], a `#[repr(C)]` block of fixed-size byte arrays and integers (no
//! pointers, hence no relocations), under the symbol [`SYMBOL_PREFIX`] + its crate name. The
//! loader (`zoo-loader`) reads that block straight from the file, compares it with the host's
//! own values ([`PluginDeclaration::host`]) and only then opens the library, which runs its
//! `inventory` registrations.
//!
//! Bump [`ABI_VERSION`] whenever this struct's layout changes.

/// The layout version of [`PluginDeclaration`].
pub const ABI_VERSION: u32 = 1;

/// The first bytes of every declaration.
pub const MAGIC: [u8; 16] = *b"zoo-plugin-decl\0";

/// The exported symbol's name is this prefix followed by the crate name (`zoo_cepo`), so that
/// the declarations of statically linked crates never collide.
pub const SYMBOL_PREFIX: &str = "zoo_plugin_declaration__";

/// The compiler that built this zoo-core (`rustc -V`).
pub const RUSTC_VERSION: &str = env!("ZOO_RUSTC_VERSION");

/// The version of this zoo-core.
pub const ZOO_CORE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A hash of the types that cross the plugin boundary: every zoo-core source file, its
/// manifest, the workspace lock file, the target and features (computed by `build.rs`).
pub const FINGERPRINT: &str = env!("ZOO_CORE_FINGERPRINT");

/// What a plugin was built with. Fixed-size, NUL-padded UTF-8 fields; 256 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginDeclaration {
    /// [`MAGIC`].
    pub magic: [u8; 16],
    /// [`ABI_VERSION`] of the zoo-core the plugin was built against.
    pub abi: u32,
    /// Zero.
    pub reserved: u32,
    /// [`FINGERPRINT`], as 16 hex digits.
    pub fingerprint: [u8; 16],
    /// [`RUSTC_VERSION`].
    pub rustc: [u8; 88],
    /// [`ZOO_CORE_VERSION`].
    pub zoo_core: [u8; 32],
    /// The plugin crate's name (`zoo-cepo`).
    pub name: [u8; 64],
    /// The plugin crate's version.
    pub version: [u8; 32],
}

/// The size of [`PluginDeclaration`] in bytes.
pub const DECLARATION_SIZE: usize = std::mem::size_of::<PluginDeclaration>();

const _: () = assert!(DECLARATION_SIZE == 256);

/// `text` as a NUL-padded array; a compile-time error when it does not fit.
pub const fn fixed<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    assert!(bytes.len() < N, "a plugin declaration field is too long");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < bytes.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// The text of a NUL-padded field (lossy on invalid UTF-8).
pub fn field(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl PluginDeclaration {
    /// The declaration of a plugin named `name` at `version`, built against this zoo-core.
    pub const fn new(name: &str, version: &str) -> Self {
        Self {
            magic: MAGIC,
            abi: ABI_VERSION,
            reserved: 0,
            fingerprint: fixed_exact(FINGERPRINT),
            rustc: fixed(RUSTC_VERSION),
            zoo_core: fixed(ZOO_CORE_VERSION),
            name: fixed(name),
            version: fixed(version),
        }
    }

    /// What a plugin loaded by this process must declare (its name and version aside).
    pub const fn host() -> Self {
        Self::new("zoo", ZOO_CORE_VERSION)
    }

    /// Decodes a declaration from its 256 bytes (as read from a plugin file); `None` when the
    /// bytes do not start with [`MAGIC`]. Fields after `abi` are meaningful only when `abi`
    /// equals [`ABI_VERSION`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != DECLARATION_SIZE || bytes[..16] != MAGIC {
            return None;
        }
        let take = |range: std::ops::Range<usize>| &bytes[range];
        let u32_at = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        Some(Self {
            magic: MAGIC,
            abi: u32_at(16),
            reserved: u32_at(20),
            fingerprint: take(24..40).try_into().expect("16 bytes"),
            rustc: take(40..128).try_into().expect("88 bytes"),
            zoo_core: take(128..160).try_into().expect("32 bytes"),
            name: take(160..224).try_into().expect("64 bytes"),
            version: take(224..256).try_into().expect("32 bytes"),
        })
    }

    /// The differences that make this plugin unusable by `host`, one line each (empty when it
    /// can be loaded). The ABI number is compared first: when it differs, nothing else can be
    /// read reliably.
    pub fn mismatches(&self, host: &Self) -> Vec<String> {
        if self.abi != host.abi {
            return vec![format!(
                "plugin ABI {} but this zoo expects ABI {}",
                self.abi, host.abi
            )];
        }
        let mut out = Vec::new();
        let mut compare = |what: &str, plugin: &[u8], ours: &[u8]| {
            if plugin != ours {
                out.push(format!(
                    "{what}: plugin `{}`, this zoo `{}`",
                    field(plugin),
                    field(ours)
                ));
            }
        };
        compare("rustc", &self.rustc, &host.rustc);
        compare("zoo-core", &self.zoo_core, &host.zoo_core);
        compare("type fingerprint", &self.fingerprint, &host.fingerprint);
        out
    }
}

/// Like [`fixed`] for a field that the text fills exactly (no NUL).
const fn fixed_exact<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    assert!(bytes.len() == N, "the fingerprint is 16 hex digits");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// Exports this crate's [`PluginDeclaration`] so that a build of it as a shared library can be
/// loaded by `zoo --plugin`. Call it once at the top level of a plugin crate's `lib.rs`:
///
/// ```
/// zoo_core::declare_plugin!();
/// # assert_eq!(zoo_core::plugin::field(&ZOO_PLUGIN_DECLARATION.name), "zoo-core");
/// ```
///
/// `declare_plugin!(abi = N)` declares another ABI number: only for the loader's own tests.
#[macro_export]
macro_rules! declare_plugin {
    () => {
        $crate::declare_plugin!(abi = $crate::plugin::ABI_VERSION);
    };
    (abi = $abi:expr) => {
        #[doc(hidden)]
        #[unsafe(export_name = concat!("zoo_plugin_declaration__", env!("CARGO_CRATE_NAME")))]
        #[used]
        pub static ZOO_PLUGIN_DECLARATION: $crate::plugin::PluginDeclaration =
            $crate::plugin::PluginDeclaration {
                abi: $abi,
                ..$crate::plugin::PluginDeclaration::new(
                    env!("CARGO_PKG_NAME"),
                    env!("CARGO_PKG_VERSION"),
                )
            };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declaration_round_trips_through_its_bytes() {
        let declaration = PluginDeclaration::new("zoo-example", "1.2.3");
        let bytes: [u8; DECLARATION_SIZE] = unsafe { std::mem::transmute(declaration) };
        let read = PluginDeclaration::from_bytes(&bytes).expect("the magic is there");
        assert_eq!(read, declaration);
        assert_eq!(field(&read.name), "zoo-example");
        assert_eq!(field(&read.rustc), RUSTC_VERSION);
        assert!(read.mismatches(&PluginDeclaration::host()).is_empty());
    }

    #[test]
    fn bytes_without_the_magic_are_not_a_declaration() {
        assert!(PluginDeclaration::from_bytes(&[0u8; DECLARATION_SIZE]).is_none());
        assert!(PluginDeclaration::from_bytes(&MAGIC).is_none());
    }

    #[test]
    fn another_abi_number_is_the_only_mismatch_reported() {
        let plugin = PluginDeclaration {
            abi: ABI_VERSION + 1,
            fingerprint: *b"0000000000000000",
            ..PluginDeclaration::new("zoo-x", "0.1.0")
        };
        let lines = plugin.mismatches(&PluginDeclaration::host());
        assert_eq!(lines.len(), 1);
        let expected = format!(
            "plugin ABI {} but this zoo expects ABI {ABI_VERSION}",
            ABI_VERSION + 1
        );
        assert_eq!(lines[0], expected);
    }

    #[test]
    fn each_differing_build_fact_is_named() {
        let plugin = PluginDeclaration {
            fingerprint: *b"0123456789abcdef",
            rustc: fixed("rustc 1.0.0 (old)"),
            ..PluginDeclaration::new("zoo-x", "0.1.0")
        };
        let lines = plugin.mismatches(&PluginDeclaration::host());
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("rustc: plugin `rustc 1.0.0 (old)`"));
        assert!(lines[1].starts_with("type fingerprint: plugin `0123456789abcdef`"));
    }
}
