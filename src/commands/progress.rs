//! Progress on stderr: indicatif bars on a terminal, plain lines otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress goes.
#[derive(Debug, Clone)]
pub struct Progress {
    quiet: bool,
    terminal: bool,
}

impl Progress {
    /// Progress on stderr; `quiet` silences it.
    pub fn new(quiet: bool) -> Self {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Self { quiet, terminal }
    }

    /// Whether progress and reports are silenced.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// A bar of `len` steps (hidden when stderr is not a terminal or when quiet).
    pub fn bar(&self, len: u64, prefix: &str) -> ProgressBar {
        if self.quiet || !self.terminal {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {msg}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        bar.set_prefix(prefix.to_string());
        bar
    }

    /// One line of progress on stderr (above a bar when one is drawn).
    pub fn line(&self, text: &str) {
        if !self.quiet {
            // `ProgressBar::println` prints nothing when the bar is hidden: write directly; an
            // active bar is redrawn below on its next tick.
            if self.terminal {
                eprint!("\r\x1b[2K");
            }
            eprintln!("{text}");
        }
    }
}
