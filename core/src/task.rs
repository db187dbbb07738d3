//! Tasks and verifiers: where prompts come from and how a response is scored.
//!
//! A [`Task`] is a task source (a procedural generator or a data set) with train and held-out
//! splits, the warm-start data for `zoo sft`, and its [`Verifier`]. Objectives with teachers
//! build the teachers' contexts themselves ([`crate::teacher`]); a task whose policies learned
//! to read privileged text in a slot of their own (the CPU world's `[h:936]`) offers it through
//! [`Task::hint_slot`].

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One problem: a prompt with its gold answer and a reference solution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Problem {
    /// The prompt text the policy sees: the user message, before any chat template.
    pub prompt: String,
    /// The problem statement alone, before the task's prompt template (what teacher templates
    /// such as OPSD's quote); the prompt itself for a task without a template.
    #[serde(default)]
    pub question: String,
    /// The gold answer, as the verifier compares it.
    pub answer: String,
    /// A full reference solution (the target a perfect policy would write).
    pub solution: String,
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

/// One response judged: its decoded text, the verdict and the task's response features.
#[derive(Debug, Clone)]
pub struct Judged {
    /// The response decoded without special tokens.
    pub text: String,
    /// The verifier's verdict.
    pub verdict: Verdict,
    /// [`Task::response_features`] of the text.
    pub features: Vec<(&'static str, bool)>,
}

/// Decodes and judges each response `(tokens, problem)`, in order, on every core (verifiers
/// are pure and thread-safe; a math verifier's normalization is the costly part of a step's
/// host work at real response lengths).
pub fn judge_all(
    task: &dyn Task,
    tokenizer: &dyn crate::policy::Tokenizer,
    responses: &[(&[u32], &Problem)],
) -> Vec<Judged> {
    use rayon::prelude::*;
    responses
        .par_iter()
        .map(|&(tokens, problem)| {
            let text = tokenizer.decode(tokens);
            let verdict = task.verifier().verify(&text, problem);
            let features = task.response_features(&text, problem);
            Judged {
                text,
                verdict,
                features,
            }
        })
        .collect()
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
    /// The prompt with `text` written in the task's own hint slot named `slot`, for a task whose
    /// policies learned to read privileged text there (the CPU world's `[h:936]`); `None` when
    /// the task has no such slot. Slots are the task's to name and document; by convention
    /// `"answer"` holds an answer, gold or wrong, and `"solution"` a worked solution. Objectives
    /// use a slot where a task offers one and build their reference's context otherwise
    /// ([`crate::teacher`]). Default: no slot.
    fn hint_slot(&self, _problem: &Problem, _slot: &str, _text: &str) -> Option<String> {
        None
    }
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
