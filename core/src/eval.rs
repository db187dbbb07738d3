//! Held-out evaluation: pass@1 (greedy or sampled) and the unbiased pass@k estimator.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::Result;
use crate::policy::{Policy, SamplingConfig};
use crate::task::{Judged, Problem, Task, Verdict};

/// Evaluation results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Problems evaluated.
    pub problems: usize,
    /// Samples per problem.
    pub samples: usize,
    /// The mean fraction of correct samples (pass@1).
    pub pass_at_1: f64,
    /// Unbiased pass@k for each `k ≤ samples` asked for: `(k, value)`.
    pub pass_at_k: Vec<(usize, f64)>,
    /// The share of all responses with each of the task's response features
    /// ([`Task::response_features`]).
    pub features: BTreeMap<String, f64>,
    /// Every response, problem by problem (`samples` each).
    #[serde(skip)]
    pub responses: Vec<ScoredResponse>,
}

/// One evaluated response: its text, its verdict and its task features.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredResponse {
    /// The decoded response.
    pub text: String,
    /// The verifier's verdict.
    pub verdict: Verdict,
    /// The task's response features ([`Task::response_features`]).
    pub features: Vec<(&'static str, bool)>,
}

/// The unbiased pass@k estimate from `n` samples of which `c` are correct (Chen et al. 2021):
/// `1 - C(n-c, k) / C(n, k)`, computed as a stable product.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    assert!(k >= 1 && k <= n, "pass@k needs 1 <= k <= n");
    if n - c < k {
        return 1.0;
    }
    let mut fail = 1.0;
    for i in (n - c + 1)..=n {
        fail *= 1.0 - k as f64 / i as f64;
    }
    1.0 - fail
}

/// Evaluates `policy` on `problems`, `samples` responses each, in batches of `batch` prompts.
pub fn evaluate(
    policy: &dyn Policy,
    task: &dyn Task,
    problems: &[Problem],
    sampling: &SamplingConfig,
    samples: usize,
    ks: &[usize],
    seed: u64,
) -> Result<EvalReport> {
    let batch = 128usize.div_ceil(samples).max(1);
    let mut correct_counts = Vec::with_capacity(problems.len());
    let mut feature_counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut responses = Vec::with_capacity(problems.len() * samples);
    for (chunk_index, chunk) in problems.chunks(batch).enumerate() {
        let mut rows = Vec::new();
        for problem in chunk {
            let prompt = policy.tokenizer().encode_prompt(&problem.prompt)?;
            rows.extend(std::iter::repeat_n(prompt, samples));
        }
        let mut rng = crate::rng::stream(seed, chunk_index as u64, "eval");
        let outputs = policy.sample(&rows, sampling, &mut rng);
        let judged = crate::task::judge_all(
            task,
            policy.tokenizer(),
            &outputs
                .iter()
                .enumerate()
                .map(|(i, sample)| (sample.tokens.as_slice(), &chunk[i / samples]))
                .collect::<Vec<_>>(),
        );
        let mut judged = judged.into_iter();
        for _ in chunk {
            let mut correct = 0;
            for judged in judged.by_ref().take(samples) {
                let Judged {
                    text,
                    verdict,
                    features,
                } = judged;
                correct += usize::from(verdict.correct);
                for &(name, present) in &features {
                    *feature_counts.entry(name.to_string()).or_default() += usize::from(present);
                }
                responses.push(ScoredResponse {
                    text,
                    verdict,
                    features,
                });
            }
            correct_counts.push(correct);
        }
    }
    let n = problems.len().max(1) as f64;
    let pass_at_1 = correct_counts
        .iter()
        .map(|&c| c as f64 / samples as f64)
        .sum::<f64>()
        / n;
    let pass_at_k = ks
        .iter()
        .filter(|&&k| k >= 1 && k <= samples)
        .map(|&k| {
            let v = correct_counts
                .iter()
                .map(|&c| pass_at_k(samples, c, k))
                .sum::<f64>()
                / n;
            (k, v)
        })
        .collect();
    let total = (problems.len() * samples).max(1) as f64;
    Ok(EvalReport {
        problems: problems.len(),
        samples,
        pass_at_1,
        pass_at_k,
        features: feature_counts
            .into_iter()
            .map(|(name, count)| (name, count as f64 / total))
            .collect(),
        responses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn pass_at_k_matches_the_combinatorial_formula() {
        // n = 5, c = 2, k = 2: 1 - C(3,2)/C(5,2) = 1 - 3/10.
        assert_relative_eq!(pass_at_k(5, 2, 2), 0.7, epsilon = 1e-12);
        assert_relative_eq!(pass_at_k(5, 2, 1), 0.4, epsilon = 1e-12);
        assert_eq!(pass_at_k(5, 0, 3), 0.0);
        assert_eq!(pass_at_k(5, 3, 3), 1.0);
    }
}
