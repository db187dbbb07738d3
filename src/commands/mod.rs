//! One file per subcommand.

pub mod bandit;
pub mod bench;
pub mod compare;
pub mod eval;
pub mod export;
pub mod generate;
pub mod list;
pub mod new_algo;
pub mod objective;
pub mod progress;
pub mod score;
pub mod sft;
pub mod train;
pub mod verify;

/// The input named by a `--input` argument: the file, or standard input for `-`.
pub fn open_input(path: &std::path::Path) -> anyhow::Result<Box<dyn std::io::Read>> {
    use anyhow::Context;
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    let file =
        fs_err::File::open(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    Ok(Box::new(file))
}
