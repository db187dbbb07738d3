//! DAPO: GRPO advantages with clip-higher, token-mean, dynamic sampling and soft overlong
//! punishment.
//!
//! # What it computes (`algorithms.md` §2)
//! Reward: `R_i = R_acc + κ·R_length(|y_i|)` with the reference's accuracy reward
//! `R_acc = +1` for a correct response and `−1` otherwise, and the soft overlong punishment
//! (Eq. 13): 0 up to `L_max − L_cache` tokens, then falling linearly to −1 at `L_max`, −1
//! beyond.
//! Credit: GRPO's group advantage (§1) on the shaped reward, broadcast to every token.
//! Loss: the PPO-clip token loss (§0.3) with `ε_low = 0.2`, `ε_high = 0.28` (clip-higher) and
//! verl's dual clip, token-mean over the mini-batch, no KL.
//! Dynamic sampling: a group is kept iff `0 < #correct < G` (on accuracy, not the shaped
//! reward); the trainer samples more prompts, up to `max_gen_rounds` rounds, until the batch
//! is full.
//!
//! # Defaults and their source
//! Decision 6 of `algorithms.md`: clip 0.2/0.28, token-mean, no KL, dynamic sampling on
//! accuracy with refill, `L_max` = the response length cap. `L_cache` defaults to `L_max / 5`,
//! the paper's ratio (4,096 of 20,480); κ = 1 (verl `overlong_buffer.penalty_factor`);
//! `max_gen_rounds` = 10 (verl's example `max_num_gen_batches`).
//!
//! The ±1 accuracy reward matters once the overlong term is on: against a 0/1 score the same
//! length penalty weighs twice as much (`accuracy_reward = "score"` uses the verifier's score
//! as it is, zoo's earlier behaviour). With the default `L_cache = L_max / 5`, the correct
//! answers of the CPU task (`addition`, a 60-token cap, 48 tokens free) are spared up to 46
//! tokens (the median is 34); only sums with a carry out of every column (50 tokens, ~1.5% of
//! problems) lose 2/12 of a point (tested in `tests/it/objectives.rs`).
//!
//! # Differences from the reference
//! When the rounds run out verl stops with an error; zoo by default trains on the groups it
//! kept and reports the shortfall (`on_shortfall = "error"` restores verl's behaviour).
//!
//! # References
//! DAPO (arXiv 2503.14476) Eq. 7–13 and Algorithm 1; verl recipe `docs/algo/dapo.md`.

use serde::{Deserialize, Serialize};
use zoo_core::objective::BuildContext;
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, DynamicSampling, Error, LossInput, LossTerms, Needs,
    Objective, ObjectiveConfig, Result, Shortfall, TokenMatrix,
};
use zoo_grpo::{Clip, LossAgg, advantage_metrics, group_advantages, ppo_clip_loss};

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/// What to do when dynamic sampling cannot fill the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnShortfall {
    /// Stop with an error (verl).
    Error,
    /// Train on the kept groups and report `rollout/shortfall_groups`.
    Log,
}

/// The accuracy part of DAPO's reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccuracyReward {
    /// `+1` correct, `−1` otherwise (the reference, verl's `math_dapo.compute_score`).
    PlusMinusOne,
    /// The verifier's score as it is (0/1 for the exact verifiers).
    Score,
}

/// DAPO's configuration; defaults per decision 6.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DapoConfig {
    /// `ε_low`.
    pub clip_low: f32,
    /// `ε_high` (clip-higher).
    pub clip_high: f32,
    /// Dual-clip constant for negative advantages.
    pub clip_dual: f32,
    /// Aggregation mode (the paper: token-mean).
    pub loss_agg: LossAgg,
    /// The normalizer of `loss_agg = "constant"`; default: the response length cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f32>,
    /// Divide by the group std.
    pub norm_adv_by_std: bool,
    /// `eps` added to the group std.
    pub adv_eps: f32,
    /// The accuracy reward the overlong term is added to.
    pub accuracy_reward: AccuracyReward,
    /// Drop all-correct and all-wrong groups and refill the batch.
    pub dynamic_sampling: bool,
    /// The most generation rounds per step.
    pub max_gen_rounds: usize,
    /// What happens when the rounds run out.
    pub on_shortfall: OnShortfall,
    /// Soft overlong punishment on.
    pub overlong_buffer: bool,
    /// `L_cache` in tokens; default: a fifth of the response length cap (none under 5 tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlong_buffer_len: Option<usize>,
    /// `κ`, the weight of the length penalty.
    pub overlong_penalty_factor: f32,
}

impl Default for DapoConfig {
    fn default() -> Self {
        Self {
            clip_low: 0.2,
            clip_high: 0.28,
            clip_dual: 3.0,
            loss_agg: LossAgg::TokenMean,
            loss_scale: None,
            norm_adv_by_std: true,
            adv_eps: 1e-6,
            accuracy_reward: AccuracyReward::PlusMinusOne,
            dynamic_sampling: true,
            max_gen_rounds: 10,
            on_shortfall: OnShortfall::Log,
            overlong_buffer: true,
            overlong_buffer_len: None,
            overlong_penalty_factor: 1.0,
        }
    }
}

impl DapoConfig {
    fn clip(&self) -> Clip {
        Clip {
            low: self.clip_low,
            high: self.clip_high,
            dual: self.clip_dual,
        }
    }
}

#[typetag::serde(name = "dapo")]
impl ObjectiveConfig for DapoConfig {
    fn build(&self, context: &BuildContext) -> Result<Box<dyn Objective>> {
        self.clip().validate("dapo")?;
        let negative = |x: f32| x.is_nan() || x < 0.0;
        if negative(self.adv_eps) || negative(self.overlong_penalty_factor) {
            return Err(Error::Config(
                "dapo: `adv_eps` and `overlong_penalty_factor` must be non-negative".into(),
            ));
        }
        if self.dynamic_sampling && self.max_gen_rounds == 0 {
            return Err(Error::Config(
                "dapo: `max_gen_rounds` must be at least 1 (or set `dynamic_sampling = false`)"
                    .into(),
            ));
        }
        let max_len = context.max_new_tokens;
        // The default buffer is a fifth of the cap; under 5 tokens that is none (no shaping).
        let buffer = self.overlong_buffer_len.unwrap_or(max_len / 5);
        let explicit = self.overlong_buffer_len.is_some();
        if self.overlong_buffer
            && !context.evaluation
            && explicit
            && !(1..=max_len).contains(&buffer)
        {
            return Err(Error::Config(format!(
                "dapo: `overlong_buffer_len` must lie in 1..={max_len} (the response length cap), got {buffer}"
            )));
        }
        let aggregation = self
            .loss_agg
            .aggregation(self.loss_scale, max_len, "dapo")?;
        // `zoo objective eval` evaluates the loss on the rewards given: no filtering, no
        // shaping (unless asked for the training-time credit).
        let shaping =
            (self.overlong_buffer && !context.evaluation && buffer > 0).then_some(Overlong {
                max_len,
                buffer,
                factor: self.overlong_penalty_factor,
            });
        Ok(Box::new(Dapo {
            config: self.clone(),
            aggregation,
            plus_minus_one: self.accuracy_reward == AccuracyReward::PlusMinusOne
                && !context.evaluation,
            overlong: shaping,
            filter: self.dynamic_sampling && !context.evaluation,
        }))
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "dapo",
        summary: "clip-higher, token-mean, dynamic sampling, overlong shaping (DAPO; verl recipe)",
        default_config: || Box::new(DapoConfig::default()),
        origin: "zoo-dapo",
        run_defaults: "",
        llm_run_defaults: "",
    }
}

/// Makes the linker keep this crate's registration; the `zoo` binary calls it.
pub fn link() {}

// What a build of this crate as a plugin file declares to the loader.
zoo_core::declare_plugin!();

/// The soft overlong punishment's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overlong {
    /// `L_max`.
    pub max_len: usize,
    /// `L_cache`.
    pub buffer: usize,
    /// `κ`.
    pub factor: f32,
}

/// The DAPO objective.
#[derive(Debug, Clone)]
pub struct Dapo {
    config: DapoConfig,
    aggregation: Aggregation,
    /// The ±1 accuracy reward (off for `zoo objective eval`, which takes rewards as given).
    plus_minus_one: bool,
    overlong: Option<Overlong>,
    filter: bool,
}

// ---------------------------------------------------------------------------------------------
// Reward shaping and the group filter
// ---------------------------------------------------------------------------------------------

/// `R_length(|y|)` of Eq. 13: 0 up to `L_max − L_cache`, then `((L_max − L_cache) − |y|)/L_cache`
/// down to −1 at `L_max`, and −1 beyond.
pub fn overlong_penalty(length: usize, max_len: usize, buffer: usize) -> f64 {
    let free = max_len.saturating_sub(buffer);
    if length <= free {
        0.0
    } else if length <= max_len {
        (free as f64 - length as f64) / buffer as f64
    } else {
        -1.0
    }
}

/// Eq. 11's constraint: at least one correct and one wrong response.
pub fn mixed_group(correct: &[bool]) -> bool {
    correct.iter().any(|&c| c) && correct.iter().any(|&c| !c)
}

impl Objective for Dapo {
    fn name(&self) -> &str {
        "dapo"
    }

    fn needs(&self) -> Needs {
        Needs {
            dynamic_sampling: self.filter.then_some(DynamicSampling {
                max_rounds: self.config.max_gen_rounds,
                on_shortfall: match self.config.on_shortfall {
                    OnShortfall::Error => Shortfall::Error,
                    OnShortfall::Log => Shortfall::Log,
                },
            }),
            // ℓ^old is read only by the loss.
            credit_without_old_logprobs: true,
            ..Needs::default()
        }
    }

    fn keep_group(&self, _rewards: &[f32], correct: &[bool]) -> bool {
        mixed_group(correct)
    }

    fn aggregation(&self) -> Aggregation {
        self.aggregation
    }

    // -----------------------------------------------------------------------------------------
    // Credit stage: shaped reward, then GRPO's group advantage
    // -----------------------------------------------------------------------------------------

    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit> {
        let mask = input.mask;
        let mut shaped: Vec<f32> = if self.plus_minus_one {
            input
                .correct
                .iter()
                .map(|&c| if c { 1.0 } else { -1.0 })
                .collect()
        } else {
            input.rewards.to_vec()
        };
        let mut penalized = 0usize;
        let mut penalty_sum = 0.0;
        if let Some(o) = self.overlong {
            for (i, r) in shaped.iter_mut().enumerate() {
                let length = mask.row(i).iter().filter(|&&m| m != 0.0).count();
                let penalty = o.factor as f64 * overlong_penalty(length, o.max_len, o.buffer);
                *r = (*r as f64 + penalty) as f32;
                penalized += usize::from(penalty < 0.0);
                penalty_sum += penalty;
            }
        }
        let advantages = group_advantages(
            &shaped,
            input.group_ids,
            self.config.norm_adv_by_std,
            self.config.adv_eps,
        );
        let n = shaped.len().max(1) as f64;
        let mut groups = input.group_ids.to_vec();
        groups.sort_unstable();
        groups.dedup();
        let mut metrics = advantage_metrics("dapo", &advantages);
        metrics.push(("dapo/kept_groups".into(), groups.len() as f64));
        metrics.push(("dapo/overlong_frac".into(), penalized as f64 / n));
        metrics.push(("dapo/overlong_penalty_mean".into(), penalty_sum / n));
        Ok(Credit {
            advantages: TokenMatrix::per_row(&advantages, mask),
            sequence_advantages: Some(advantages),
            metrics,
            ..Credit::default()
        })
    }

    // -----------------------------------------------------------------------------------------
    // Loss stage: PPO-clip with clip-higher
    // -----------------------------------------------------------------------------------------

    /// Shapes: every input `[b, t]`; returns `[b, t]` terms.
    fn loss(&self, input: LossInput) -> LossTerms {
        ppo_clip_loss(
            input.logprobs,
            input.old_logprobs,
            input.advantages,
            self.config.clip(),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Tests: properties D-1, D-3, D-4 of `algorithms.md` §9.2
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use zoo_core::burn::prelude::*;
    use zoo_core::probe::{ProbeBatch, probe};

    fn context(evaluation: bool) -> BuildContext {
        BuildContext {
            max_new_tokens: 20480,
            group_size: 4,
            steps: 1,
            temperature: 1.0,
            evaluation,
        }
    }

    fn dapo(config: DapoConfig) -> Box<dyn Objective> {
        config.build(&context(true)).unwrap()
    }

    fn matrix(rows: usize, cols: usize, data: Vec<f32>) -> TokenMatrix {
        TokenMatrix { rows, cols, data }
    }

    #[test]
    fn overlong_penalty_matches_eq_13_at_the_spec_points() {
        // D-4: L_max = 20480, L_cache = 4096.
        let p = |len| overlong_penalty(len, 20480, 4096);
        assert_eq!(p(16384), 0.0);
        assert_eq!(p(16385), -1.0 / 4096.0);
        assert_eq!(p(18432), -0.5);
        assert_eq!(p(20480), -1.0);
        assert_eq!(p(20481), -1.0);
        let mut last = 0.0;
        for len in (0..21000).step_by(7) {
            assert!(p(len) <= last, "not monotone at {len}");
            last = p(len);
        }
    }

    #[test]
    fn clip_higher_gradient_region_is_exactly_the_spec_one() {
        // D-1 with ε_high = 0.28: one token, ρ just inside or outside each boundary.
        let objective = dapo(DapoConfig::default());
        let cases: [(f32, f32, bool); 6] = [
            (1.0, 1.28 - 1e-3, true),
            (1.0, 1.28 + 1e-3, false),
            (-1.0, 0.8 + 1e-3, true),
            (-1.0, 0.8 - 1e-3, false),
            (-1.0, 3.0 - 1e-3, true),
            (-1.0, 3.0 + 1e-3, false),
        ];
        for (reward_sign, ratio, active) in cases {
            // A group of two with rewards (1, 0): A = ±0.7071; row 0 carries the probed token.
            let rewards = if reward_sign > 0.0 {
                vec![1.0, 0.0]
            } else {
                vec![0.0, 1.0]
            };
            let old = -1.0f32;
            let logprob = old + ratio.ln();
            let out = probe(
                objective.as_ref(),
                &ProbeBatch {
                    rewards,
                    group_ids: vec![0, 0],
                    mask: matrix(2, 1, vec![1.0, 0.0]),
                    logprobs: Some(matrix(2, 1, vec![logprob, -1.0])),
                    old_logprobs: Some(matrix(2, 1, vec![old, -1.0])),
                    ..ProbeBatch::default()
                },
                1,
                &Device::flex().autodiff(),
            )
            .unwrap();
            let a = out.advantages.get(0, 0);
            assert_relative_eq!(a.abs(), std::f32::consts::FRAC_1_SQRT_2, epsilon = 1e-5);
            if active {
                assert_relative_eq!(out.grad[0], -a * ratio, epsilon = 1e-5);
            } else {
                assert_eq!(out.grad[0], 0.0, "A={a} ρ={ratio}");
            }
        }
    }

    #[test]
    fn dropping_all_equal_groups_only_rescales_the_token_mean_gradient() {
        // D-3: a batch of a mixed group and an all-correct group; the filtered batch's
        // gradient is the full one times T_full / T_kept.
        let objective = dapo(DapoConfig::default());
        let device = Device::flex().autodiff();
        let full = ProbeBatch {
            rewards: vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
            group_ids: vec![0, 0, 0, 1, 1, 1],
            mask: matrix(6, 2, vec![1., 1., 1., 0., 1., 1., 1., 1., 1., 0., 1., 1.]),
            logprobs: Some(matrix(
                6,
                2,
                vec![
                    -1., -2., -0.5, 0., -0.3, -0.2, -4., -1., -2., 0., -0.1, -0.7,
                ],
            )),
            old_logprobs: Some(matrix(
                6,
                2,
                vec![
                    -1.1, -1.9, -0.6, 0., -0.2, -0.3, -4., -1., -2., 0., -0.1, -0.7,
                ],
            )),
            ..ProbeBatch::default()
        };
        let kept_rows = [0usize, 1, 2];
        let kept = ProbeBatch {
            rewards: full.rewards[..3].to_vec(),
            group_ids: full.group_ids[..3].to_vec(),
            mask: full.mask.select_rows(&kept_rows),
            logprobs: full.logprobs.as_ref().map(|m| m.select_rows(&kept_rows)),
            old_logprobs: full
                .old_logprobs
                .as_ref()
                .map(|m| m.select_rows(&kept_rows)),
            ..ProbeBatch::default()
        };
        assert!(mixed_group(&[true, false, false]) && !mixed_group(&[true, true, true]));
        let g_full = probe(objective.as_ref(), &full, 1, &device).unwrap().grad;
        let g_kept = probe(objective.as_ref(), &kept, 1, &device).unwrap().grad;
        let (t_full, t_kept) = (10.0f32, 5.0f32);
        for k in 0..6 {
            assert_relative_eq!(g_kept[k], g_full[k] * t_full / t_kept, epsilon = 1e-6);
        }
        assert!(
            g_full[6..].iter().all(|&g| g == 0.0),
            "the dropped group has A = 0"
        );
        assert!(g_kept.iter().any(|&g| g.abs() > 1e-3));
    }

    #[test]
    fn shaping_lowers_long_responses_before_the_advantage() {
        // With L_max = 10 and L_cache = 4, a correct 9-token response earns 1 − 0.75.
        let objective = DapoConfig {
            overlong_buffer_len: Some(4),
            ..DapoConfig::default()
        }
        .build(&BuildContext {
            max_new_tokens: 10,
            group_size: 2,
            steps: 1,
            temperature: 1.0,
            evaluation: false,
        })
        .unwrap();
        let mut mask = TokenMatrix::zeros(3, 10);
        for (i, len) in [(0, 9), (1, 3), (2, 3)] {
            for t in 0..len {
                mask.set(i, t, 1.0);
            }
        }
        let zeros = TokenMatrix::zeros(3, 10);
        let credit = objective
            .credit(&CreditInput {
                step: 1,
                rewards: &[1.0, 1.0, 0.0],
                correct: &[true, true, false],
                group_ids: &[0, 0, 0],
                mask: &mask,
                old_logprobs: &zeros,
                ref_logprobs: None,
                teachers: &[],
            })
            .unwrap();
        // Shaped rewards (1 − 0.75, 1, −1) on the ±1 accuracy reward: the long correct
        // response gets less credit.
        let expected = group_advantages(&[0.25, 1.0, -1.0], &[0, 0, 0], true, 1e-6);
        assert_relative_eq!(credit.advantages.get(0, 0), expected[0]);
        assert_relative_eq!(credit.advantages.get(1, 0), expected[1]);
        assert!(credit.advantages.get(0, 0) < credit.advantages.get(1, 0));
        assert!(objective.needs().dynamic_sampling.is_some());
    }

    #[test]
    fn the_accuracy_reward_is_plus_minus_one_unless_asked_for_the_score() {
        // One correct response cut at the cap (penalty −1) and one wrong short one: with ±1
        // the correct one still ranks higher (1 − 1 = 0 > −1); with the raw 0/1 score the
        // penalty erases the difference (1 − 1 = 0 = 0) and the advantages are 0.
        let build = |accuracy_reward| {
            DapoConfig {
                accuracy_reward,
                overlong_buffer_len: Some(4),
                ..DapoConfig::default()
            }
            .build(&BuildContext {
                max_new_tokens: 10,
                group_size: 2,
                steps: 1,
                temperature: 1.0,
                evaluation: false,
            })
            .unwrap()
        };
        let mut mask = TokenMatrix::zeros(2, 10);
        for t in 0..10 {
            mask.set(0, t, 1.0);
        }
        mask.set(1, 0, 1.0);
        let credit = |objective: &dyn Objective| {
            objective
                .credit(&CreditInput {
                    step: 1,
                    rewards: &[1.0, 0.0],
                    correct: &[true, false],
                    group_ids: &[0, 0],
                    mask: &mask,
                    old_logprobs: &TokenMatrix::zeros(2, 10),
                    ref_logprobs: None,
                    teachers: &[],
                })
                .unwrap()
                .advantages
        };
        let pm = credit(build(AccuracyReward::PlusMinusOne).as_ref());
        assert!(pm.get(0, 0) > 0.0 && pm.get(1, 0) < 0.0, "{pm:?}");
        let score = credit(build(AccuracyReward::Score).as_ref());
        assert_eq!((score.get(0, 0), score.get(1, 0)), (0.0, 0.0));
        assert_eq!(
            DapoConfig::default().accuracy_reward,
            AccuracyReward::PlusMinusOne
        );
    }
}
