//! The `zoo` binary: parse, run one subcommand, map the result to an exit code
//! (0 success, 1 error, 2 usage error from clap).

use std::process::ExitCode;

use clap::Parser;
use zoo::cli::{Cli, Command, ObjectiveCommand, PluginsCommand};
use zoo::commands;

fn run(cli: Cli) -> anyhow::Result<()> {
    // Before anything deserializes a config: typetag reads its registry once. `inspect` reads
    // a file without loading anything.
    if !matches!(
        cli.command,
        Command::Plugins(PluginsCommand::Inspect { .. })
    ) {
        zoo::load_plugins(&cli.plugins)?;
    }
    match cli.command {
        Command::Train(args) => commands::train::run(&args).map(drop),
        Command::Sft(args) => commands::sft::run(&args).map(drop),
        Command::Eval(args) => commands::eval::run(&args).map(drop),
        Command::Generate(args) => commands::generate::run(&args),
        Command::Score(args) => commands::score::run(&args),
        Command::Objective(ObjectiveCommand::Eval(args)) => commands::objective::run(&args),
        Command::Bandit(args) => commands::bandit::run(&args),
        Command::Compare(args) => commands::compare::run(&args),
        Command::Verify(args) => commands::verify::run(&args),
        Command::Export(args) => commands::export::run(&args),
        Command::NewAlgo(args) => commands::new_algo::run(&args),
        Command::Plugins(PluginsCommand::List) => commands::list::plugins(),
        Command::Plugins(PluginsCommand::Inspect { path }) => commands::list::inspect(&path),
        Command::List => commands::list::run(),
        Command::Bench(args) if args.check_attention => commands::bench::check_attention(&args),
        Command::Bench(args) => commands::bench::run(&args),
    }
}

fn main() -> ExitCode {
    zoo::link_all();
    // Before LibTorch reads it (its first CUDA matrix product), and before any thread starts.
    zoo::zoo_core::device::allow_tf32_from_env();
    keep_freed_memory();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Tells glibc's allocator to keep freed memory for reuse instead of giving it back to the
/// system. Every tensor operation allocates its output; by default each buffer over 128 KiB
/// (a `[64, 42, 128]` activation is 1.3 MiB) is mapped fresh, page-faulted in and unmapped
/// again, and the heap's top is trimmed after each free. With buffers up to 32 MiB served
/// from the heap and no trimming below 1 GiB, the tiny model's update runs about 15% faster
/// on flex (`zoo bench`, docs/performance.md); the peak memory is the same.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it runs before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
