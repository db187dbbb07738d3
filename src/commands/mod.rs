//! One file per subcommand.

pub mod eval;
pub mod list;
pub mod progress;
pub mod sft;
pub mod train;
