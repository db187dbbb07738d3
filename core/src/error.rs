//! The one error type of zoo-core: each variant says what is wrong and, where there is one, the fix.

use std::path::PathBuf;

/// Result with zoo-core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in zoo-core. Messages follow one style: backticks around values, the fix on
/// its own line after `hint:`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A registry lookup failed.
    #[error("unknown {kind} `{name}`{suggestion}\nhint: known {kind}s: {known}")]
    Unknown {
        /// What was looked up (`algorithm`, `task`, `device`).
        kind: &'static str,
        /// The name given.
        name: String,
        /// `, did you mean `x`?` or empty.
        suggestion: String,
        /// The names that exist, comma separated.
        known: String,
    },
    /// A configuration value is invalid.
    #[error("invalid config: {0}")]
    Config(String),
    /// Numbers given to an objective are missing, mis-shaped or not finite.
    #[error("invalid input: {0}")]
    Input(String),
    /// A file could not be read or written.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// `read`, `write`, `create`...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file was readable but its content is wrong.
    #[error("bad file `{path}`: {reason}\nhint: {hint}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// What to do.
        hint: String,
    },
    /// Text could not be tokenized.
    #[error("cannot tokenize {text:?}: character {ch:?} is not in the vocabulary")]
    Tokenize {
        /// The text.
        text: String,
        /// The offending character.
        ch: char,
    },
    /// Sizes disagree.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    Shape {
        /// Where.
        what: &'static str,
        /// The expected size.
        expected: String,
        /// The size found.
        got: String,
    },
    /// A data-parallel run could not start or a collective failed (another rank failed, or a
    /// collective timed out).
    #[error("distributed: {0}")]
    Dist(String),
    /// Training produced a non-finite number.
    #[error(
        "non-finite {what} at step {step}\nhint: lower the learning rate (`--set optim.lr=...`) or check the objective's inputs"
    )]
    NonFinite {
        /// Which quantity.
        what: String,
        /// The training step.
        step: usize,
    },
}

impl Error {
    /// A lookup failure with the closest known name as a suggestion.
    pub fn unknown<'a>(
        kind: &'static str,
        name: &str,
        known: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let known: Vec<&str> = known.into_iter().collect();
        let best = known
            .iter()
            // Optimal string alignment: a swapped pair of letters (`gpro`) is one edit.
            .map(|k| (strsim::osa_distance(name, k), *k))
            .filter(|(d, k)| *d <= 2.max(k.len() / 3))
            .min();
        Error::Unknown {
            kind,
            name: name.to_string(),
            suggestion: best
                .map(|(_, k)| format!(", did you mean `{k}`?"))
                .unwrap_or_default(),
            known: known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// An I/O error on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
