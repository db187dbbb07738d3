//! One file per subcommand.

pub mod bandit;
pub mod bench;
pub mod eval;
pub mod generate;
pub mod list;
pub mod new_algo;
pub mod objective;
pub mod progress;
pub mod score;
pub mod sft;
pub mod train;
pub mod verify;
