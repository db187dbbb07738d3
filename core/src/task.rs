//! Tasks and verifiers: where prompts come from and how a response is scored.
//!
//! A [`Task`] is a task source (a procedural generator or a data set) with train and held-out
//! splits, the warm-start data for `zoo sft`, and its [`Verifier`]. Prompts carry an optional
//! hint slot so that objectives with teacher contexts (CEPO, RLSD, OPSD, SDPO) can condition on
//! the gold answer, a wrong answer or a reference solution.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One problem: a prompt with its gold answer and a reference solution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Problem {
    /// The prompt text the policy sees.
    pub prompt: String,
    /// The gold answer, as the verifier compares it.
    pub answer: String,
    /// A full reference solution (the target a perfect policy would write).
    pub solution: String,
}

/// Privileged information spliced into a teacher's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// An answer, gold or wrong.
    Answer(String),
    /// A full reference solution.
    Solution(String),
}

/// A verifier's structured judgement of one response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The reward, in `[0, 1]` for the binary verifiers.
    pub score: f32,
    /// Whether the extracted answer equals the gold answer.
    pub correct: bool,
    /// The answer text found in the response, if any.
    pub extracted: Option<String>,
    /// Whether the extracted answer could be parsed.
    pub parsed: bool,
    /// Why the verdict is what it is, for humans.
    pub reason: String,
}

/// Scores responses. Pure, thread-safe, and never panics: any input gets a verdict.
pub trait Verifier: Send + Sync {
    /// The registry name.
    fn name(&self) -> &str;
    /// Judges `response` (decoded text, without special tokens) against `problem`.
    fn verify(&self, response: &str, problem: &Problem) -> Verdict;
}

/// One supervised warm-start example: the context (prompt, possibly hinted) and its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftExample {
    /// What the policy is conditioned on.
    pub context: String,
    /// What it should write (without end-of-sequence; the trainer appends it).
    pub target: String,
}

/// A source of verifiable problems.
pub trait Task: Send + Sync {
    /// The registry name (`zoo list` shows it).
    fn name(&self) -> &str;
    /// `n` training problems drawn with `rng`; never one of the held-out problems.
    fn sample_problems(&self, rng: &mut ChaCha8Rng, n: usize) -> Vec<Problem>;
    /// The fixed held-out problems, the same for every seed.
    fn heldout(&self) -> &[Problem];
    /// The verifier that scores this task's responses.
    fn verifier(&self) -> &dyn Verifier;
    /// The prompt with `hint` spliced into its hint slot.
    fn hinted_prompt(&self, problem: &Problem, hint: &Hint) -> String;
    /// One warm-start example drawn with `rng` (noisy solutions, hinted prompts).
    fn sft_example(&self, rng: &mut ChaCha8Rng) -> SftExample;
    /// The longest response a policy needs, in tokens, end-of-sequence included.
    fn max_new_tokens(&self) -> usize;
    /// The version of this task's warm-start data (`sft_example`): bumped when the mix
    /// changes, so that base policies cached under the old mix are not reused. 0 by default.
    fn warm_start_version(&self) -> u32 {
        0
    }
    /// Named yes/no features of one response that diagnose *how* a policy answers (the
    /// arithmetic task's `chainless`: an answer written without its carry chain). The trainer
    /// logs each one's share of a step's responses as `task/<name>`, the held-out evaluation
    /// its share of the sampled responses. None by default.
    fn response_features(&self, _response: &str, _problem: &Problem) -> Vec<(&'static str, bool)> {
        Vec::new()
    }
}
