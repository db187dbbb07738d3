//! DisCO: a discriminative objective over group scores with a squared-hinge trust region.
//!
//! # What it computes (`algorithms.md` §3)
//! Scores (length-normalized, differentiable): log-L `s_i = (1/L_i) Σ_t m·ℓ` or L-ratio
//! `s_i = (1/L_i) Σ_t m·exp(ℓ − ℓ^old)`. Per group q with positives P (reward ≥ threshold) and
//! negatives N, only if both are non-empty:
//! basic `J_q = mean_P s − mean_N s`; DRO `J_q = mean_P s − τ·log((1/|N|) Σ_N exp(s/τ))`.
//! `J = (1/Q) Σ_q J_q` with Q counting every group of the mini-batch, invalid ones included.
//! Trust region to the pre-update policy: `D` = token-mean of `ℓ^old − ℓ` (k1) or of
//! `ρ − 1 − (ℓ − ℓ^old)` (k3), and `loss = −J + sg(β·[D − δ]₊)·D`, whose gradient is that of
//! `−J + (β/2)[D − δ]₊²`. It is 0 at the first update of a rollout batch (θ = θ_old), so
//! DisCO takes several optimizer steps per batch (`update.mini_batches`).
//!
//! The log-mean-exp couples a group's responses, so DisCO declares `whole_mini_batch` and
//! returns `−J` as a scalar term; the trust-region term is per token and the trainer
//! aggregates it with token-mean.
//!
//! # Defaults and their source
//! Decision 5: DRO with log-L, τ = 10 (τ = 1 for L-ratio), δ = 1e-4, β = 1e3, k1
//! (`ppo_kl_type=kl` in every released script); positives are reward 1 for binary rewards.
//!
//! # Differences from the reference
//! The reference writes the DRO term as `τ·S/sg(S)`, whose value is ≈ τ; zoo computes the real
//! log-mean-exp (decision 1): same gradient, meaningful value. Groups may have unequal sizes.
//!
//! # References
//! DisCO (arXiv 2505.12366) §3; Optimization-AI/DisCO `verl/trainer/ppo/core_algos.py`
//! (`compute_policy_loss_disco_logL`, `_disco_Lratio`, `_discob_logL`, `_discob_Lratio`).

use serde::{Deserialize, Serialize};
use zoo_core::burn::prelude::*;
use zoo_core::burn::tensor::{Int, TensorData};
use zoo_core::objective::{BuildContext, groups};
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, Error, LossInput, LossTerms, Needs, Objective,
    ObjectiveConfig, Result, TokenMatrix,
};

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/// The per-response score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Score {
    /// Mean log-prob of the response's tokens.
    LogL,
    /// Mean likelihood ratio to the pre-update policy.
    LRatio,
}

/// How negatives are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// τ-log-mean-exp over the negatives (DisCO).
    Dro,
    /// Plain mean over the negatives (DisCO-b).
    Basic,
}

/// The trust-region divergence estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KlEstimator {
    /// `ℓ^old − ℓ` (`ppo_kl_type=kl`).
    K1,
    /// `ρ − 1 − (ℓ − ℓ^old)` (`low_var_kl`).
    K3,
}

/// DisCO's configuration; defaults per decision 5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoConfig {
    /// The score.
    pub score: Score,
    /// DRO or basic.
    pub variant: Variant,
    /// `τ` of the DRO term; default 10 for log-L, 1 for L-ratio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tau: Option<f32>,
    /// `δ`, the trust-region radius.
    pub delta: f32,
    /// `β`, the penalty weight.
    pub beta: f32,
    /// The divergence estimator.
    pub kl_estimator: KlEstimator,
    /// A response is positive iff its reward is at least this.
    pub positive_threshold: f32,
}

impl Default for DiscoConfig {
    fn default() -> Self {
        Self {
            score: Score::LogL,
            variant: Variant::Dro,
            tau: None,
            delta: 1e-4,
            beta: 1e3,
            kl_estimator: KlEstimator::K1,
            positive_threshold: 1.0,
        }
    }
}

#[typetag::serde(name = "disco")]
impl ObjectiveConfig for DiscoConfig {
    fn build(&self, _context: &BuildContext) -> Result<Box<dyn Objective>> {
        let tau = self.tau.unwrap_or(match self.score {
            Score::LogL => 10.0,
            Score::LRatio => 1.0,
        });
        if !(tau > 0.0 && tau.is_finite()) {
            return Err(Error::Config(format!(
                "disco: `tau` must be positive and finite, got {tau}"
            )));
        }
        let negative = |x: f32| x.is_nan() || x < 0.0;
        if negative(self.delta) || negative(self.beta) {
            return Err(Error::Config(format!(
                "disco: `delta` and `beta` must be non-negative, got {} and {}",
                self.delta, self.beta
            )));
        }
        Ok(Box::new(Disco {
            config: self.clone(),
            tau,
        }))
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "disco",
        summary: "discriminative group-score objective with a KL trust region (DisCO)",
        default_config: || Box::new(DiscoConfig::default()),
        origin: "zoo-disco",
        run_defaults: "[update]\nmini_batches = 4",
        llm_run_defaults: "",
    }
}

/// Makes the linker keep this crate's registration; the `zoo` binary calls it.
pub fn link() {}

// What a build of this crate as a plugin file declares to the loader.
zoo_core::declare_plugin!();

/// The DisCO objective.
#[derive(Debug, Clone)]
pub struct Disco {
    config: DiscoConfig,
    tau: f32,
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor")
}

fn rows(indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let data: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(data, [indices.len()]), device)
}

impl Objective for Disco {
    fn name(&self) -> &str {
        "disco"
    }

    fn needs(&self) -> Needs {
        Needs {
            whole_mini_batch: true,
            // ℓ^old is read only by the loss.
            credit_without_old_logprobs: true,
            ..Needs::default()
        }
    }

    /// The trust-region term is per token, reduced by token-mean.
    fn aggregation(&self) -> Aggregation {
        Aggregation::TokenMean
    }

    // -----------------------------------------------------------------------------------------
    // Credit stage: DisCO has no advantage; it reports how many groups can contribute
    // -----------------------------------------------------------------------------------------

    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit> {
        let members = groups(input.group_ids);
        let threshold = self.config.positive_threshold;
        let valid = members
            .iter()
            .filter(|g| {
                g.iter().any(|&i| input.rewards[i] >= threshold)
                    && g.iter().any(|&i| input.rewards[i] < threshold)
            })
            .count();
        Ok(Credit {
            advantages: TokenMatrix::zeros(input.mask.rows, input.mask.cols),
            sequence_advantages: None,
            metrics: vec![(
                "disco/valid_group_frac".into(),
                valid as f64 / members.len().max(1) as f64,
            )],
            ..Credit::default()
        })
    }

    // -----------------------------------------------------------------------------------------
    // Loss stage
    // -----------------------------------------------------------------------------------------

    /// Shapes: `logprobs`, `old_logprobs`, `mask` `[b, t]` for a whole mini-batch; returns
    /// `−J` as the scalar term and the trust-region term `[b, t]`.
    fn loss(&self, input: LossInput) -> LossTerms {
        let c = &self.config;
        let device = input.logprobs.device();
        let [b, _] = input.logprobs.dims();
        let mask = input.mask;
        let log_ratio = input.logprobs.clone().sub(input.old_logprobs.clone());

        // Scores s_i [b]: the masked mean over each response's tokens.
        let lengths = mask.clone().sum_dim(1).clamp_min(1.0); // [b, 1]
        let per_token = match c.score {
            Score::LogL => input.logprobs.clone(),
            Score::LRatio => log_ratio.clone().exp(),
        };
        let scores = per_token
            .mul(mask.clone())
            .sum_dim(1)
            .div(lengths)
            .reshape([b]);

        // J = (1/Q) Σ_valid J_q, Q = every group in the mini-batch.
        let members = groups(&input.group_ids);
        let q = members.len() as f32;
        let score_values = host(scores.clone().detach().reshape([1, b]));
        let mut objective: Option<Tensor<1>> = None;
        let (mut valid, mut pos_sum, mut neg_sum, mut pos_n, mut neg_n) = (0usize, 0.0, 0.0, 0, 0);
        for group in &members {
            let (pos, neg): (Vec<usize>, Vec<usize>) = group
                .iter()
                .partition(|&&i| input.rewards[i] >= c.positive_threshold);
            if pos.is_empty() || neg.is_empty() {
                continue; // contributes 0 but counts in Q
            }
            valid += 1;
            pos_sum += pos.iter().map(|&i| score_values[i] as f64).sum::<f64>();
            neg_sum += neg.iter().map(|&i| score_values[i] as f64).sum::<f64>();
            pos_n += pos.len();
            neg_n += neg.len();
            let s_pos = scores.clone().select(0, rows(&pos, &device));
            let s_neg = scores.clone().select(0, rows(&neg, &device));
            let negative_term = match c.variant {
                Variant::Basic => s_neg.mean(),
                Variant::Dro => {
                    // τ·log((1/|N|) Σ exp(s/τ)), stabilized by the (constant) max.
                    let z = s_neg.div_scalar(self.tau);
                    let max = neg
                        .iter()
                        .map(|&i| score_values[i] / self.tau)
                        .fold(f32::NEG_INFINITY, f32::max);
                    z.sub_scalar(max)
                        .exp()
                        .mean()
                        .log()
                        .add_scalar(max)
                        .mul_scalar(self.tau)
                }
            };
            let j_q = s_pos.mean().sub(negative_term);
            objective = Some(match objective {
                None => j_q,
                Some(total) => total.add(j_q),
            });
        }
        let scalar = objective
            .map(|j| j.div_scalar(q).neg())
            .unwrap_or_else(|| Tensor::zeros([1], &device));

        // Trust region: D = token-mean of the estimator; coefficient sg(β·[D − δ]₊).
        let kl = match c.kl_estimator {
            KlEstimator::K1 => log_ratio.neg(),
            KlEstimator::K3 => {
                let r = log_ratio.clamp(-20.0, 20.0);
                r.clone().exp().sub_scalar(1.0).sub(r)
            }
        };
        let tokens = host(mask.clone().sum().reshape([1, 1]))[0].max(1.0) as f64;
        let divergence =
            host(kl.clone().detach().mul(mask).sum().reshape([1, 1]))[0] as f64 / tokens;
        let coefficient = (c.beta as f64 * (divergence - c.delta as f64)).max(0.0);
        let mean = |sum: f64, n: usize| if n == 0 { 0.0 } else { sum / n as f64 };
        let pg_loss = scalar.clone().detach().into_scalar::<f64>();
        let penalty = kl.mul_scalar(coefficient as f32);
        LossTerms {
            per_token: penalty.clone(),
            scalar: Some(scalar),
            parts: vec![("disco/penalty_loss", penalty)],
            token_metrics: Vec::new(),
            metrics: vec![
                ("actor/pg_loss", pg_loss),
                ("disco/kl", divergence),
                (
                    "disco/penalty_active",
                    f64::from(u8::from(coefficient > 0.0)),
                ),
                (
                    "disco/valid_group_frac",
                    valid as f64 / members.len().max(1) as f64,
                ),
                ("disco/score_pos_mean", mean(pos_sum, pos_n)),
                ("disco/score_neg_mean", mean(neg_sum, neg_n)),
            ],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests: properties C-1..C-5 of `algorithms.md` §9.3
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use zoo_core::probe::{ProbeBatch, ProbeOutput, probe};

    fn disco(config: DiscoConfig) -> Box<dyn Objective> {
        config
            .build(&BuildContext {
                max_new_tokens: 3,
                group_size: 4,
                steps: 1,
                temperature: 1.0,
                evaluation: true,
            })
            .unwrap()
    }

    fn m(rows: usize, data: &[f32]) -> TokenMatrix {
        TokenMatrix {
            rows,
            cols: data.len() / rows,
            data: data.to_vec(),
        }
    }

    /// One-token responses: `logprobs` are the scores themselves.
    fn run(
        config: DiscoConfig,
        rewards: &[f32],
        groups: &[usize],
        lp: &[f32],
        old: &[f32],
    ) -> ProbeOutput {
        let n = rewards.len();
        probe(
            disco(config).as_ref(),
            &ProbeBatch {
                rewards: rewards.to_vec(),
                group_ids: groups.to_vec(),
                mask: m(n, &vec![1.0; n]),
                logprobs: Some(m(n, lp)),
                old_logprobs: Some(m(n, old)),
                ..ProbeBatch::default()
            },
            1,
            &Device::flex().autodiff(),
        )
        .unwrap()
    }

    fn basic() -> DiscoConfig {
        DiscoConfig {
            variant: Variant::Basic,
            ..DiscoConfig::default()
        }
    }

    #[test]
    fn c1_basic_weights_do_not_depend_on_the_number_of_positives() {
        // Mixed groups of 4 with k = 1, 2, 3 positives; on-policy (D = 0). The gradient on each
        // score is 1/|P| per positive and −1/|N| per negative: the group's total push is
        // always +1 / −1, whatever k.
        for k in 1..4 {
            let rewards: Vec<f32> = (0..4).map(|i| if i < k { 1.0 } else { 0.0 }).collect();
            let lp = [-0.5, -1.0, -1.5, -2.0];
            let out = run(basic(), &rewards, &[0; 4], &lp, &lp);
            let pos: f32 = out.grad[..k].iter().sum();
            let neg: f32 = out.grad[k..].iter().sum();
            assert_relative_eq!(pos, -1.0, epsilon = 1e-6);
            assert_relative_eq!(neg, 1.0, epsilon = 1e-6);
        }
        // The E2 closed form: P(mixed group) = 1 − p^G − (1 − p)^G (G = 6, p = 0.05, 0.5).
        let mixed = |p: f64, g: i32| 1.0 - p.powi(g) - (1.0 - p).powi(g);
        let expected_mixed = |p: f64| -> f64 {
            (1..6)
                .map(|k| binomial(6, k) * p.powi(k as i32) * (1.0 - p).powi(6 - k as i32))
                .sum()
        };
        assert_relative_eq!(mixed(0.05, 6), 0.2649081, epsilon = 1e-7);
        assert_relative_eq!(mixed(0.5, 6), 0.96875, epsilon = 1e-12);
        assert_relative_eq!(expected_mixed(0.05), mixed(0.05, 6), epsilon = 1e-12);
    }

    fn binomial(n: u64, k: u64) -> f64 {
        (1..=k).fold(1.0, |acc, i| acc * (n - k + i) as f64 / i as f64)
    }

    #[test]
    fn c2_dro_weights_are_the_softmax_of_negative_scores() {
        let lp = [-0.5f32, -1.0, -1.3, -2.0];
        let rewards = [1.0, 0.0, 0.0, 0.0];
        for tau in [1.0f32, 0.3, 10.0] {
            let config = DiscoConfig {
                tau: Some(tau),
                ..DiscoConfig::default()
            };
            let out = run(config, &rewards, &[0; 4], &lp, &lp);
            let z: Vec<f64> = lp[1..].iter().map(|&s| (s / tau) as f64).collect();
            let total: f64 = z.iter().map(|v| v.exp()).sum();
            for (j, zj) in z.iter().enumerate() {
                assert_relative_eq!(out.grad[1 + j] as f64, zj.exp() / total, epsilon = 1e-6);
            }
            assert_relative_eq!(out.grad[0], -1.0, epsilon = 1e-6);
            // The value is the real log-mean-exp, not the reference's τ·S/sg(S) ≈ τ.
            let lme = tau as f64 * (total / 3.0).ln();
            assert_relative_eq!(out.loss, -(-0.5 - lme), epsilon = 1e-5);
        }
        // τ → ∞: uniform weights (DisCO ≈ DisCO-b); τ → 0: the largest negative takes it all.
        let wide = run(
            DiscoConfig {
                tau: Some(1e6),
                ..DiscoConfig::default()
            },
            &rewards,
            &[0; 4],
            &lp,
            &lp,
        );
        for j in 1..4 {
            assert_relative_eq!(wide.grad[j], 1.0 / 3.0, epsilon = 1e-6);
        }
        let sharp = run(
            DiscoConfig {
                tau: Some(1e-3),
                ..DiscoConfig::default()
            },
            &rewards,
            &[0; 4],
            &lp,
            &lp,
        );
        assert!(sharp.grad[1] >= 0.999, "{:?}", sharp.grad);
    }

    #[test]
    fn c3_invalid_groups_count_in_q_but_contribute_nothing() {
        let lp = [-0.5f32, -1.0, -0.7, -0.9];
        let one = run(basic(), &[1.0, 0.0], &[0, 0], &lp[..2], &lp[..2]);
        let two = run(basic(), &[1.0, 0.0, 1.0, 1.0], &[0, 0, 1, 1], &lp, &lp);
        for k in 0..2 {
            assert_relative_eq!(two.grad[k], one.grad[k] * 0.5, epsilon = 1e-7);
        }
        assert_eq!(&two.grad[2..], &[0.0, 0.0]);
    }

    #[test]
    fn c4_penalty_acts_only_beyond_delta_with_gradient_beta_excess() {
        let rewards = [1.0, 0.0];
        let old = [-1.0f32, -1.0];
        // On-policy: D = 0 exactly for both estimators, no penalty.
        for est in [KlEstimator::K1, KlEstimator::K3] {
            let config = DiscoConfig {
                kl_estimator: est,
                ..basic()
            };
            let out = run(config, &rewards, &[0, 0], &old, &old);
            assert_eq!(out.metrics["disco/kl"], 0.0);
            assert_eq!(out.metrics["disco/penalty_active"], 0.0);
        }
        // Inside δ: D = 5e-5 < 1e-4, no penalty gradient.
        let lp = [-1.0f32 - 1e-4, -1.0];
        let inside = run(basic(), &rewards, &[0, 0], &lp, &old);
        assert_relative_eq!(inside.grad[0], -1.0, epsilon = 1e-5);
        // Outside: D = (0.1 + 0.02)/2 = 0.06 (k1); extra gradient β(D − δ)·∂D/∂ℓ = β(D − δ)·(−1/2).
        let lp = [-1.1f32, -1.02];
        let out = run(basic(), &rewards, &[0, 0], &lp, &old);
        let d = 0.06f64;
        let extra = 1e3 * (d - 1e-4) * -0.5;
        assert_relative_eq!(out.metrics["disco/kl"], d, epsilon = 1e-6);
        assert_relative_eq!(out.grad[0] as f64, -1.0 + extra, max_relative = 1e-4);
        assert_relative_eq!(out.grad[1] as f64, 1.0 + extra, max_relative = 1e-4);
    }

    #[test]
    fn c5_log_l_and_l_ratio_scores_agree_on_policy_only() {
        let lp = [-0.5f32, -1.0, -1.3, -2.0];
        let rewards = [1.0, 1.0, 0.0, 0.0];
        let with = |score, old: &[f32]| {
            run(
                DiscoConfig { score, ..basic() },
                &rewards,
                &[0; 4],
                &lp,
                old,
            )
            .grad
        };
        let (a, b) = (with(Score::LogL, &lp), with(Score::LRatio, &lp));
        for k in 0..4 {
            assert_relative_eq!(a[k], b[k], epsilon = 1e-7);
        }
        let stale = [-0.4f32, -1.2, -1.3, -1.8];
        let (a, b) = (with(Score::LogL, &stale), with(Score::LRatio, &stale));
        assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-2));
    }

    #[test]
    fn unequal_group_sizes_work() {
        let lp = [-0.5f32, -1.0, -0.7, -0.9, -1.1];
        let out = run(
            basic(),
            &[1.0, 0.0, 0.0, 1.0, 0.0],
            &[3, 3, 3, 8, 8],
            &lp,
            &lp,
        );
        // Group 3: P = {0}, N = {1, 2}; group 8: P = {3}, N = {4}; Q = 2.
        let expected = [-0.5, 0.25, 0.25, -0.5, 0.5];
        for k in 0..5 {
            assert_relative_eq!(out.grad[k], expected[k], epsilon = 1e-6);
        }
    }
}
