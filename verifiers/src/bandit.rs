//! Toy bandit environments as tasks, for the tabular policy of `zoo_models::tabular`.
//!
//! So far the K-armed bandit (`algorithms.md` §9, E1): one question, `K` arms, a set of
//! correct arms; a response is one arm, rewarded 1 iff it is correct. With two arms and arm 0
//! correct it is E2.

use rand_chacha::ChaCha8Rng;
use zoo_core::task::SftExample;
use zoo_core::{Hint, Problem, Task, Verdict, Verifier};

/// Rewards the first action of a response by membership in the gold set (`"0 2"`: arms 0
/// and 2 are correct).
#[derive(Debug, Clone, Copy, Default)]
pub struct ArmVerifier;

impl Verifier for ArmVerifier {
    fn name(&self) -> &str {
        "arm"
    }

    fn verify(&self, response: &str, problem: &Problem) -> Verdict {
        let arm = response.split_whitespace().next().map(str::to_string);
        let correct = arm
            .as_deref()
            .is_some_and(|a| problem.answer.split_whitespace().any(|c| c == a));
        Verdict {
            score: if correct { 1.0 } else { 0.0 },
            correct,
            parsed: arm.is_some(),
            reason: match &arm {
                Some(a) => format!("arm {a} against correct arms {}", problem.answer),
                None => "no arm".into(),
            },
            extracted: arm,
        }
    }
}

/// The K-armed bandit E1 (E2 with `K = 2`, correct arm 0).
#[derive(Debug, Clone)]
pub struct KArmed {
    problem: Vec<Problem>,
    /// Number of arms.
    pub arms: usize,
}

impl KArmed {
    /// `arms` arms of which `correct` are rewarded.
    pub fn new(arms: usize, correct: &[usize]) -> Self {
        let answer = correct
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            problem: vec![Problem {
                prompt: "0".into(),
                answer,
                solution: String::new(),
            }],
            arms,
        }
    }
}

impl Task for KArmed {
    fn name(&self) -> &str {
        "k-armed"
    }

    /// Every draw is the one question.
    fn sample_problems(&self, _rng: &mut ChaCha8Rng, n: usize) -> Vec<Problem> {
        vec![self.problem[0].clone(); n]
    }

    fn heldout(&self) -> &[Problem] {
        &self.problem
    }

    fn verifier(&self) -> &dyn Verifier {
        &ArmVerifier
    }

    /// A hint is another context (state) of the tabular policy: the question followed by the
    /// hinted arm.
    fn hinted_prompt(&self, problem: &Problem, hint: &Hint) -> String {
        let hinted = match hint {
            Hint::Answer(a) | Hint::Solution(a) => a.split_whitespace().next().unwrap_or("0"),
        };
        format!("{} {hinted}", problem.prompt)
    }

    /// Bandits are not warm-started: the tabular policy starts from its given logits.
    fn sft_example(&self, _rng: &mut ChaCha8Rng) -> SftExample {
        SftExample {
            context: self.problem[0].prompt.clone(),
            target: self.problem[0].answer.clone(),
        }
    }

    fn max_new_tokens(&self) -> usize {
        1
    }
}
