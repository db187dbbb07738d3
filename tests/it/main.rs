//! End-to-end tests of the zoo package, in one binary (each test binary links Burn).

mod bandits;
mod cli;
mod compare;
mod contexts;
mod dist;
mod llm;
mod lora;
mod micro_batch;
#[cfg(feature = "mpi")]
mod mpi;
mod objectives;
mod reproducibility;
mod resume;
mod rl;
mod skips;
#[cfg(feature = "tch")]
mod tch;
mod teachers;
mod verify;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `zoo` binary with an isolated cache folder.
pub fn zoo(cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zoo"));
    command
        .env("ZOO_CACHE_DIR", cache)
        .env_remove("RUST_BACKTRACE");
    command
}

/// Runs `zoo` and returns its output, with stderr echoed for failing tests.
pub fn run(cache: &Path, args: &[&str]) -> Output {
    let output = zoo(cache).args(args).output().expect("the zoo binary runs");
    eprintln!(
        "$ zoo {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Warm-start settings small enough for tests: a quick mod10 base policy.
pub const TEST_WARM_START: &[&str] = &[
    "--task",
    "mod10",
    "--set",
    "warm_start.sft.steps=150",
    "--set",
    "warm_start.sft.batch_size=64",
    "--set",
    "warm_start.sft.optim.warmup_steps=10",
];

/// A cache folder holding the test's mod10 base policy, made once per test binary by
/// `zoo sft`.
pub fn mod10_cache() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("zoo-it-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut args = vec!["sft", "--quiet", "--set", "eval.problems=50"];
        args.extend_from_slice(TEST_WARM_START);
        let output = run(&dir, &args);
        assert!(output.status.success(), "zoo sft failed");
        dir
    })
}

/// A fixed GRPO update batch for gradient comparisons: eight responses of unequal lengths to
/// four prompts of unequal lengths, sampled from a policy with a fixed seed, advantages +1.3 /
/// −0.7, and a stale ℓ^old (+0.3 / −0.05) so that some ratios leave the clip range.
pub struct FixedBatch {
    pub contexts: Vec<Vec<u32>>,
    pub responses: Vec<Vec<u32>>,
    pub mask: zoo::zoo_core::TokenMatrix,
    pub advantages: zoo::zoo_core::TokenMatrix,
    pub old: zoo::zoo_core::TokenMatrix,
}

impl FixedBatch {
    /// Samples the responses and computes ℓ^old with `policy`.
    pub fn sample(policy: &dyn zoo::zoo_core::Policy) -> Self {
        use zoo::zoo_core::policy::Tokenizer;
        use zoo::zoo_core::{SamplingConfig, TokenMatrix, rng};
        let prompts = ["1+2=", "345+6789=", "12+34=", "9+99="];
        let contexts: Vec<Vec<u32>> = prompts
            .iter()
            .flat_map(|p| {
                std::iter::repeat_n(zoo::zoo_models::CharTokenizer.encode_prompt(p).unwrap(), 2)
            })
            .collect();
        let samples = policy.sample(
            &contexts,
            &SamplingConfig {
                temperature: 1.0,
                max_new_tokens: 9,
                min_new_tokens: 0,
            },
            &mut rng::stream(5, 0, "s"),
        );
        let responses: Vec<Vec<u32>> = samples.iter().map(|s| s.tokens.clone()).collect();
        let cols = responses.iter().map(Vec::len).max().unwrap();
        let mut mask = TokenMatrix::zeros(8, cols);
        let mut advantages = TokenMatrix::zeros(8, cols);
        for (i, r) in responses.iter().enumerate() {
            for t in 0..r.len() {
                mask.set(i, t, 1.0);
                advantages.set(i, t, if i % 3 == 0 { 1.3 } else { -0.7 });
            }
        }
        let mut old =
            TokenMatrix::from_tensor(policy.token_logprobs(&contexts, &responses, 1.0, false));
        for (k, v) in old.data.iter_mut().enumerate() {
            *v += if k % 2 == 0 { 0.3 } else { -0.05 };
        }
        Self {
            contexts,
            responses,
            mask,
            advantages,
            old,
        }
    }

    /// The update batch (groups of two).
    pub fn update(&self) -> zoo::zoo_core::trainer::UpdateBatch<'_> {
        zoo::zoo_core::trainer::UpdateBatch {
            contexts: &self.contexts,
            responses: &self.responses,
            mask: &self.mask,
            old_logprobs: &self.old,
            old_is_current: false,
            ref_logprobs: None,
            advantages: &self.advantages,
            selected: None,
            teacher: None,
            rewards: &[0.0; 8],
            group_ids: &[0, 0, 1, 1, 2, 2, 3, 3],
        }
    }
}
