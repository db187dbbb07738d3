//! RLCSD: GRPO credit modulated per token by the contrast between a teacher shown a correct
//! sibling's response and teachers shown wrong siblings' responses.
//!
//! # What it computes (RLCSD, arXiv 2606.11709)
//! Credit: the GRPO advantage `A_i` (§1 of `algorithms.md`), then on every response token
//! - `e_t = ℓ^{T+}_t − log((1/K) Σ_k exp ℓ^{T−,k}_t)`: the log-prob of the sampled token under
//!   the teacher reading a correct sibling, minus the log of its mean probability under the
//!   teachers reading `K` wrong siblings (the shared style of the two contexts cancels);
//! - `r_t = clip(β·λ·tanh(e_t/τ), r_low, r_high)`, selected iff `|r_t| > δ`;
//! - `Â_t = A_i` on unselected tokens; on selected ones `A_i + r_t`, clamped to keep the sign
//!   of `A_i` (`max(·, 0)` for `A_i > 0`, `min(·, 0)` for `A_i < 0`, 0 for `A_i = 0`): the
//!   verifier decides the direction.
//!
//! Loss: the PPO-clip token loss (§0.3, no dual clip) on `Â`, aggregated on two paths, each a
//! token-mean of its own over the mini-batch: `L = mean_{unselected} + η·mean_{selected}`
//! ([`Aggregation::SplitTokenMean`]).
//!
//! # The teachers and their contexts
//! Per group, positives are responses with reward > 0, negatives the others; a negative is a
//! hint only if the verifier extracted an answer from it (the reference: a `\boxed{}`
//! answer), and an empty response is never a hint (the reference raises on one). For each response `i`: one correct
//! sibling drawn uniformly from the positives other than `i` (always excluding `i`), and
//! `K = min(k_max, pool)` distinct wrong siblings drawn uniformly from the hint negatives
//! (excluding `i` when `i` is itself wrong). A response without a correct or a wrong sibling,
//! and every response of a group without a positive or a hint negative, has no hint pair:
//! the reference drops it from the update (`_compute_rlcsd_teacher_inputs` L564-846,
//! `batch.select_idxs(valid_mask)`), zoo masks it out of the loss, which is the same. So in a
//! group with one correct response, that response is not trained on. A step where no
//! response has a hint pair takes no optimizer step (the reference's `skip_actor_update`).
//!
//! Each teacher reads a new user message through the chat template with the generation
//! prompt (`src/opsd_format.py::build_teacher_messages` L197-235 with the neutral wrapper of
//! L64-67 and `build_teacher_privileged_text`, `solution_answer` mode, THU-BPM/RLCSD@7eeff3c;
//! `self_distill_main.py::_materialize_teacher_context`):
//! `Problem: {problem}\n\nHere is a reference solution to this problem:\n=== Reference Solution
//! Begin ===\n{solution}\n\nCorrect final answer: {answer}\n=== Reference Solution End ===\n\n
//! After reading the reference solution above, make sure you understand the reasoning behind
//! each step.\n\nPlease reason step by step, and put your final answer within \boxed{}.`,
//! `problem` the problem statement alone, `solution` the sibling's decoded response, `answer`
//! its extracted answer (a positive without one: the gold answer), each stripped. With
//! `correct_hint = "gt-cot"` the correct teacher reads the data set's solution and gold answer
//! instead (`correct_privileged_hint_source=gt_cot`). A task with a solution slot of its own
//! (the CPU world's `[s:…]`) gets the sibling's response there.
//!
//! The teacher's weights: a snapshot of the policy refreshed every 10 optimizer steps
//! (`teacher_mode: snapshot`, `teacher_sync_interval: 10` in every shipped config;
//! `dp_actor.py::_update_teacher_shadow`).
//!
//! # Defaults and their source
//! The shipped configs (`configs/*/*_rlcsd.yaml`): τ = 0.02, β = 1, λ = 0.5, δ = 0.02, η = 1,
//! residual clip ±2, `k_max` = 4, PPO clip ε = 0.2 both ways, GRPO advantage with the std
//! (Bessel, eps 1e-6), no KL, lr 1e-6. (The loss function's fallbacks differ: τ 0.03, β 0.2,
//! residual clip ±0.5.)
//!
//! # Differences from the reference
//! - The two token-means are over the whole optimizer mini-batch; the reference takes them per
//!   device micro-batch (`_sd_token_mean` in `compute_policy_loss_rlcsd`), so its loss depends
//!   on the micro-batching.
//! - Teacher log-probs are scored once per rollout step, before the update; the reference
//!   scores them in each micro-batch of the update, so a snapshot refreshed within a step is
//!   seen by its later mini-batches. Equal with one optimizer step per rollout batch. The
//!   snapshot counts the optimizer steps taken; the reference counts skipped (non-finite) ones
//!   too.
//! - With several mini-batches per step, zoo cuts them by whole groups and then masks the
//!   responses without a hint pair (a mini-batch left with none takes no optimizer step); the
//!   reference drops those responses first and cuts the rest by count. Equal with one
//!   mini-batch, the default.
//! - Random choices come from the run's seeded streams (per step and group), not Python's
//!   global `random`.
//! - `e_t` is NaN-guarded (`−∞ − (−∞)` is agreement, 0), as CEPO's `Δ` is.
//! - Out-of-range settings are refused; the reference clamps `τ`, `δ`, `η` and swaps the
//!   residual clip bounds.
//! - zoo samples and scores with the same weights, so the reference's token-level rollout
//!   importance correction (`rollout_is: token`, threshold 2) is 1 and not applied.
//! - The teacher's chat-template options are the run's (`model.chat`); the reference passes
//!   `enable_thinking=teacher_enable_thinking` (true in its configs) for the teacher alone.
//!
//! # References
//! "Reinforcement Learning with Contrastive On-Policy Self-Distillation" (arXiv 2606.11709);
//! THU-BPM/RLCSD@7eeff3c `third_party/verl/verl/trainer/ppo/core_algos.py::
//! compute_policy_loss_rlcsd` L2900-2998, `src/self_distill_main.py`, `src/opsd_format.py`.

use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use zoo_core::objective::{BuildContext, groups};
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, Error, LossInput, LossTerms, Needs, Objective,
    ObjectiveConfig, ProbeInput, Result, TeacherGroup, TeacherPass, TeacherRow, TeacherWeights,
    TokenMatrix, py_strip,
};
use zoo_grpo::{Clip, advantage_metrics, group_advantages, ppo_clip_loss};

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/// What the correct-hint teacher reads (`correct_privileged_hint_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CorrectHint {
    /// A correct sibling's response (`self_rollout`, the default).
    SelfRollout,
    /// The data set's worked solution and gold answer (`gt_cot`).
    GtCot,
}

/// Which weights score the teachers (`teacher_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RlcsdTeacher {
    /// A copy of the policy refreshed every `teacher_sync_interval` optimizer steps.
    Snapshot,
    /// The policy that generated the batch.
    Current,
    /// The frozen initial policy (`fixed`).
    Initial,
}

/// RLCSD's configuration; defaults are the shipped configs'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RlcsdConfig {
    /// `τ`, the temperature of the `tanh` squash of `e_t`.
    pub tau: f32,
    /// `β`, the scale of the residual.
    pub beta: f32,
    /// `λ`, the second scale of the residual.
    pub lam: f32,
    /// `δ`: a token is modulated iff `|r_t| > δ`.
    pub delta: f32,
    /// `η`, the weight of the modulated tokens' mean in the loss.
    pub eta: f32,
    /// Lower clip of the residual `r_t`.
    pub residual_clip_low: f32,
    /// Upper clip of the residual `r_t`.
    pub residual_clip_high: f32,
    /// The most wrong-hint teachers per response (`K ≤ k_max`).
    pub k_max: usize,
    /// `ε_low` of the PPO clip.
    pub clip_low: f32,
    /// `ε_high` of the PPO clip.
    pub clip_high: f32,
    /// Divide the GRPO advantage by the group std.
    pub norm_adv_by_std: bool,
    /// `eps` added to the group std.
    pub adv_eps: f32,
    /// What the correct-hint teacher reads.
    pub correct_hint: CorrectHint,
    /// Which weights score the teachers.
    pub teacher: RlcsdTeacher,
    /// Optimizer steps between refreshes of the snapshot teacher.
    pub teacher_sync_interval: usize,
}

impl Default for RlcsdConfig {
    fn default() -> Self {
        Self {
            tau: 0.02,
            beta: 1.0,
            lam: 0.5,
            delta: 0.02,
            eta: 1.0,
            residual_clip_low: -2.0,
            residual_clip_high: 2.0,
            k_max: 4,
            clip_low: 0.2,
            clip_high: 0.2,
            norm_adv_by_std: true,
            adv_eps: 1e-6,
            correct_hint: CorrectHint::SelfRollout,
            teacher: RlcsdTeacher::Snapshot,
            teacher_sync_interval: 10,
        }
    }
}

#[typetag::serde(name = "rlcsd")]
impl ObjectiveConfig for RlcsdConfig {
    fn build(&self, _context: &BuildContext) -> Result<Box<dyn Objective>> {
        let finite = [
            self.tau,
            self.beta,
            self.lam,
            self.delta,
            self.eta,
            self.residual_clip_low,
            self.residual_clip_high,
        ]
        .iter()
        .all(|x| x.is_finite());
        if !finite || self.tau <= 0.0 || self.delta < 0.0 || self.eta < 0.0 {
            return Err(Error::Config(format!(
                "rlcsd: need finite settings with `tau` > 0, `delta` ≥ 0 and `eta` ≥ 0, got tau {}, delta {}, eta {}",
                self.tau, self.delta, self.eta
            )));
        }
        if self.residual_clip_low > self.residual_clip_high {
            return Err(Error::Config(format!(
                "rlcsd: `residual_clip_low` ({}) exceeds `residual_clip_high` ({})\nhint: give the lower bound first",
                self.residual_clip_low, self.residual_clip_high
            )));
        }
        if self.k_max == 0 {
            return Err(Error::Config(
                "rlcsd: `k_max` must be at least 1 (one wrong-hint teacher)".into(),
            ));
        }
        if self.teacher == RlcsdTeacher::Snapshot && self.teacher_sync_interval == 0 {
            return Err(Error::Config(
                "rlcsd: `teacher_sync_interval` must be at least 1 optimizer step".into(),
            ));
        }
        let clip = Clip {
            low: self.clip_low,
            high: self.clip_high,
            // The reference's loss is the plain `max(u1, u2)`: no dual clip.
            dual: f32::INFINITY,
        };
        clip.validate("rlcsd")?;
        Ok(Box::new(Rlcsd {
            config: self.clone(),
            clip,
        }))
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "rlcsd",
        summary: "GRPO credit modulated by correct- vs wrong-sibling teacher contrast (RLCSD)",
        default_config: || Box::new(RlcsdConfig::default()),
        origin: "zoo-rlcsd",
        run_defaults: "",
        llm_run_defaults: "[optim]\nlr = 1e-6\nweight_decay = 0.01",
    }
}

/// Makes the linker keep this crate's registration; the `zoo` binary calls it.
pub fn link() {}

// What a build of this crate as a plugin file declares to the loader.
zoo_core::declare_plugin!();

/// The RLCSD objective.
#[derive(Debug, Clone)]
pub struct Rlcsd {
    config: RlcsdConfig,
    clip: Clip,
}

// ---------------------------------------------------------------------------------------------
// The teachers' contexts
// ---------------------------------------------------------------------------------------------

/// The teacher's user message for a reference solution and its answer
/// (`build_teacher_messages`, neutral wrapper, `solution_answer` mode).
pub fn teacher_message(problem: &str, solution: &str, answer: &str) -> String {
    format!(
        "Problem: {}\n\nHere is a reference solution to this problem:\n=== Reference Solution Begin ===\n{}\n=== Reference Solution End ===\n\nAfter reading the reference solution above, make sure you understand the reasoning behind each step.\n\nPlease reason step by step, and put your final answer within \\boxed{{}}.",
        py_strip(problem),
        privileged_text(solution, answer)
    )
}

/// What the teacher reads beyond the problem (`build_teacher_privileged_text`).
pub fn privileged_text(solution: &str, answer: &str) -> String {
    format!(
        "{}\n\nCorrect final answer: {}",
        py_strip(solution),
        py_strip(answer)
    )
}

/// A teacher row reading `solution` with `answer`: the task's solution slot where it has one,
/// else [`teacher_message`] through the chat template.
fn hint_row(group: &TeacherGroup<'_>, solution: &str, answer: &str) -> Result<TeacherRow> {
    Ok(match group.task_hint("solution", solution)? {
        Some(context) => TeacherRow::hinted(context, solution),
        None => TeacherRow::hinted(
            group.user_message(&teacher_message(&group.problem.question, solution, answer))?,
            privileged_text(solution, answer),
        ),
    })
}

impl Rlcsd {
    /// The hint pair of every response of `group`: `(correct sibling, wrong siblings)` as
    /// indices (`None` for the correct one with `correct_hint = "gt-cot"`), or `None` for a
    /// response without one.
    fn hint_pairs(&self, group: &TeacherGroup<'_>) -> Vec<Option<(Option<usize>, Vec<usize>)>> {
        let n = group.len();
        let rewards = group.rewards();
        let self_rollout = self.config.correct_hint == CorrectHint::SelfRollout;
        // An empty response shows nothing (the reference raises on an empty solution).
        let shows = |i: usize| !py_strip(&group.responses[i]).is_empty();
        let positives: Vec<usize> = (0..n).filter(|&i| rewards[i] > 0.0 && shows(i)).collect();
        // A wrong sibling is a hint only with an answer to show.
        let negatives: Vec<usize> = (0..n)
            .filter(|&i| rewards[i] <= 0.0 && group.verdicts[i].extracted.is_some() && shows(i))
            .collect();
        if negatives.is_empty() || (self_rollout && positives.is_empty()) {
            return vec![None; n];
        }
        let mut rng = group.rng();
        (0..n)
            .map(|i| {
                let correct = if self_rollout {
                    let pool: Vec<usize> = positives.iter().copied().filter(|&j| j != i).collect();
                    if pool.is_empty() {
                        return None;
                    }
                    Some(pool[rng.random_range(0..pool.len())])
                } else {
                    None
                };
                // A wrong response never reads itself; a correct one may read any wrong one.
                let mut pool: Vec<usize> = negatives
                    .iter()
                    .copied()
                    .filter(|&j| rewards[i] > 0.0 || j != i)
                    .collect();
                if pool.is_empty() {
                    return None;
                }
                pool.shuffle(&mut rng);
                pool.truncate(self.config.k_max);
                Some((correct, pool))
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The credit rule
// ---------------------------------------------------------------------------------------------

/// The settings of [`token_credit`].
#[derive(Debug, Clone, Copy)]
pub struct Modulation {
    /// `τ`.
    pub tau: f64,
    /// `β·λ`.
    pub scale: f64,
    /// Residual clip bounds.
    pub clip: (f64, f64),
    /// `δ`.
    pub delta: f64,
}

/// `log((1/K) Σ_k exp(x_k))`, stable; −∞ when every `x_k` is −∞.
pub fn log_mean_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    let sum: f64 = values.iter().map(|&x| (x - max).exp()).sum();
    max + sum.ln() - (values.len() as f64).ln()
}

/// One token's credit: `(Â, selected, e)` for advantage `a`, the correct teacher's log-prob
/// `positive` and the wrong teachers' `negatives` (at least one).
pub fn token_credit(a: f64, positive: f64, negatives: &[f64], m: Modulation) -> (f64, bool, f64) {
    let e = positive - log_mean_exp(negatives);
    // A token every teacher rules out (−∞ − (−∞)) counts as agreement.
    let e = if e.is_nan() { 0.0 } else { e };
    let residual = (m.scale * (e / m.tau).tanh()).clamp(m.clip.0, m.clip.1);
    if residual.abs() <= m.delta {
        return (a, false, e);
    }
    let raw = a + residual;
    let modulated = if a > 0.0 {
        raw.max(0.0)
    } else if a < 0.0 {
        raw.min(0.0)
    } else {
        0.0
    };
    (modulated, true, e)
}

// ---------------------------------------------------------------------------------------------
// The objective
// ---------------------------------------------------------------------------------------------

impl Objective for Rlcsd {
    fn name(&self) -> &str {
        "rlcsd"
    }

    fn needs(&self) -> Needs {
        let c = &self.config;
        let weights = match c.teacher {
            RlcsdTeacher::Snapshot => TeacherWeights::Snapshot {
                every: c.teacher_sync_interval,
            },
            RlcsdTeacher::Current => TeacherWeights::Current,
            RlcsdTeacher::Initial => TeacherWeights::Initial,
        };
        let pass = |name: String, probe_input| TeacherPass {
            name,
            weights,
            logits: false,
            probe_input,
        };
        let mut teachers = vec![pass("correct-hint".into(), ProbeInput::Positive)];
        teachers.extend((0..c.k_max).map(|k| {
            pass(
                format!("wrong-hint-{}", k + 1),
                ProbeInput::Negative { slot: k },
            )
        }));
        Needs {
            teachers,
            // ℓ^old is read only by the loss.
            credit_without_old_logprobs: true,
            ..Needs::default()
        }
    }

    /// Pass `correct-hint` reads the response's correct sibling, pass `wrong-hint-k` its k-th
    /// wrong sibling; a response without a hint pair (or without a k-th wrong sibling) gets no
    /// context in that pass. Each sibling's context is built once per group.
    fn teacher_rows(&self, _step: usize, group: &TeacherGroup<'_>) -> Result<Vec<Vec<TeacherRow>>> {
        let n = group.len();
        let pairs = self.hint_pairs(group);
        let mut rows = vec![vec![TeacherRow::skipped(); n]; 1 + self.config.k_max];
        let mut sibling: Vec<Option<TeacherRow>> = vec![None; n];
        let mut context_of = |j: usize| -> Result<TeacherRow> {
            if sibling[j].is_none() {
                let verdict = &group.verdicts[j];
                // A positive without an extracted answer shows the gold one.
                let answer = verdict
                    .extracted
                    .as_deref()
                    .filter(|a| verdict.score <= 0.0 || !a.is_empty())
                    .unwrap_or(&group.problem.answer);
                sibling[j] = Some(hint_row(group, &group.responses[j], answer)?);
            }
            Ok(sibling[j].clone().expect("built above"))
        };
        let mut gold: Option<TeacherRow> = None;
        for (i, pair) in pairs.into_iter().enumerate() {
            let Some((correct, wrong)) = pair else {
                continue;
            };
            rows[0][i] = match correct {
                Some(j) => context_of(j)?,
                None => {
                    if gold.is_none() {
                        let problem = group.problem;
                        if problem.solution.is_empty() {
                            return Err(Error::Input(format!(
                                "rlcsd: `correct_hint = \"gt-cot\"` needs a worked solution, and the problem {:?} has none\nhint: give the data set a `solution` field, or use `correct_hint = \"self-rollout\"`",
                                problem.question
                            )));
                        }
                        gold = Some(hint_row(group, &problem.solution, &problem.answer)?);
                    }
                    gold.clone().expect("built above")
                }
            };
            for (k, j) in wrong.into_iter().enumerate() {
                rows[1 + k][i] = context_of(j)?;
            }
        }
        Ok(rows)
    }

    fn aggregation(&self) -> Aggregation {
        Aggregation::SplitTokenMean {
            selected_weight: self.config.eta,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Credit stage
    // -----------------------------------------------------------------------------------------

    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit> {
        let c = &self.config;
        let advantages =
            group_advantages(input.rewards, input.group_ids, c.norm_adv_by_std, c.adv_eps);
        let (positive, negatives) = input
            .teachers
            .split_first()
            .expect("RLCSD declares its teacher passes");
        let modulation = Modulation {
            tau: c.tau as f64,
            scale: c.beta as f64 * c.lam as f64,
            clip: (c.residual_clip_low as f64, c.residual_clip_high as f64),
            delta: c.delta as f64,
        };
        let mask = input.mask;
        let mut per_token = TokenMatrix::zeros(mask.rows, mask.cols);
        let mut selected = TokenMatrix::zeros(mask.rows, mask.cols);
        let mut loss_mask = mask.clone();
        let (mut tokens, mut picked, mut e_abs, mut residual_abs) = (0.0, 0.0, 0.0, 0.0);
        let (mut rows, mut k_sum) = (0.0, 0.0);
        let mut slots = Vec::with_capacity(negatives.len());
        for (i, &a) in advantages.iter().enumerate() {
            let valid: Vec<&zoo_core::TeacherScores> =
                negatives.iter().filter(|t| t.has_hint[i]).collect();
            if !positive.has_hint[i] || valid.is_empty() {
                // No hint pair: the reference drops the response from the update.
                for t in 0..mask.cols {
                    loss_mask.set(i, t, 0.0);
                }
                continue;
            }
            rows += 1.0;
            k_sum += valid.len() as f64;
            for t in (0..mask.cols).filter(|&t| mask.get(i, t) != 0.0) {
                slots.clear();
                slots.extend(valid.iter().map(|n| n.logprobs.get(i, t) as f64));
                let (credit, chosen, e) = token_credit(
                    a as f64,
                    positive.logprobs.get(i, t) as f64,
                    &slots,
                    modulation,
                );
                per_token.set(i, t, credit as f32);
                tokens += 1.0;
                e_abs += e.abs().min(1e6);
                if chosen {
                    selected.set(i, t, 1.0);
                    picked += 1.0;
                    residual_abs += (credit - a as f64).abs();
                }
            }
            // Unselected tokens keep `A_i` (set above through `token_credit`).
        }
        let group_count = groups(input.group_ids).len();
        let valid_groups = groups(input.group_ids)
            .iter()
            .filter(|members| members.iter().any(|&i| positive.has_hint[i]))
            .count();
        let n = advantages.len().max(1) as f64;
        let mut metrics = advantage_metrics("rlcsd", &advantages);
        metrics.push(("rlcsd/valid_sample_frac".into(), rows / n));
        metrics.push((
            "rlcsd/valid_group_frac".into(),
            valid_groups as f64 / group_count.max(1) as f64,
        ));
        metrics.push(("rlcsd/k_valid_mean".into(), k_sum / f64::max(rows, 1.0)));
        metrics.push(("rlcsd/e_ctr_abs_mean".into(), e_abs / f64::max(tokens, 1.0)));
        metrics.push(("rlcsd/selected_frac".into(), picked / f64::max(tokens, 1.0)));
        metrics.push((
            "rlcsd/adv_change_abs_mean".into(),
            residual_abs / f64::max(picked, 1.0),
        ));
        Ok(Credit {
            advantages: per_token,
            sequence_advantages: Some(advantages),
            skip_empty_updates: true,
            mask: Some(loss_mask),
            selected: Some(selected),
            metrics,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Loss stage: PPO-clip on the modulated advantages, reduced on two paths by the trainer
    // -----------------------------------------------------------------------------------------

    /// Shapes: every input `[b, t]`; returns `[b, t]` terms.
    fn loss(&self, input: LossInput) -> LossTerms {
        ppo_clip_loss(
            input.logprobs,
            input.old_logprobs,
            input.advantages,
            self.clip,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use zoo_core::testing::GroupFixture;

    fn rlcsd(config: RlcsdConfig) -> Box<dyn Objective> {
        config
            .build(&BuildContext {
                max_new_tokens: 8,
                group_size: 6,
                steps: 10,
                temperature: 1.0,
                evaluation: false,
            })
            .unwrap()
    }

    fn problem() -> zoo_core::Problem {
        zoo_core::Problem {
            prompt: "Problem: What is 2+3?\n\nPlease reason step by step.".into(),
            question: " What is 2+3? ".into(),
            answer: "5".into(),
            solution: "2+3=5".into(),
        }
    }

    /// Responses `r0..` with `(score, extracted answer)`.
    fn fixture(responses: &[(f32, Option<&str>)]) -> GroupFixture {
        let texts: Vec<String> = (0..responses.len()).map(|i| format!(" r{i} ")).collect();
        let given: Vec<(&str, f32, Option<&str>)> = texts
            .iter()
            .zip(responses)
            .map(|(t, &(s, a))| (t.as_str(), s, a))
            .collect();
        GroupFixture::new(problem(), &given)
    }

    #[test]
    fn defaults_are_the_shipped_configs() {
        let c = RlcsdConfig::default();
        assert_eq!(
            (c.tau, c.beta, c.lam, c.delta, c.eta),
            (0.02, 1.0, 0.5, 0.02, 1.0)
        );
        assert_eq!((c.residual_clip_low, c.residual_clip_high), (-2.0, 2.0));
        assert_eq!((c.k_max, c.clip_low, c.clip_high), (4, 0.2, 0.2));
        let needs = rlcsd(c).needs();
        let names: Vec<&str> = needs.teachers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "correct-hint",
                "wrong-hint-1",
                "wrong-hint-2",
                "wrong-hint-3",
                "wrong-hint-4"
            ]
        );
        assert!(
            needs
                .teachers
                .iter()
                .all(|p| p.weights == TeacherWeights::Snapshot { every: 10 })
        );
        assert!(needs.keeps_snapshot() && !needs.keeps_initial());
    }

    #[test]
    fn the_teacher_message_is_the_references_text() {
        // `build_teacher_messages(mode="solution_answer", wrapper_variant="neutral")`, typed out.
        let expected = "Problem: What is 2+3?\n\nHere is a reference solution to this problem:\n=== Reference Solution Begin ===\n2 + 3 = 5, so \\boxed{5}\n\nCorrect final answer: 5\n=== Reference Solution End ===\n\nAfter reading the reference solution above, make sure you understand the reasoning behind each step.\n\nPlease reason step by step, and put your final answer within \\boxed{}.";
        assert_eq!(
            teacher_message(" What is 2+3?\n", "\n2 + 3 = 5, so \\boxed{5} ", " 5"),
            expected
        );
    }

    #[test]
    fn hint_pairs_exclude_the_target_and_take_up_to_k_wrong_siblings() {
        // r0, r1, r2 correct; r3, r4 wrong with answers; r5 wrong without one.
        let group = [
            (1.0, Some("5")),
            (1.0, None),
            (1.0, Some("5")),
            (0.0, Some("6")),
            (0.0, Some("4")),
            (0.0, None),
        ];
        for k_max in [1, 2, 4] {
            let objective = Rlcsd {
                config: RlcsdConfig {
                    k_max,
                    ..RlcsdConfig::default()
                },
                clip: Clip {
                    low: 0.2,
                    high: 0.2,
                    dual: f32::INFINITY,
                },
            };
            let fixture = fixture(&group);
            for step in 1..=5 {
                let pairs = objective.hint_pairs(&fixture.group(step));
                for (i, pair) in pairs.iter().enumerate() {
                    let (correct, wrong) = pair.as_ref().expect("every response has a pair");
                    let correct = correct.expect("self-rollout");
                    assert!(correct < 3 && correct != i, "row {i}: {correct}");
                    // A correct target may read any wrong sibling; a wrong one never itself.
                    let pool: Vec<usize> = [3, 4].into_iter().filter(|&j| j != i).collect();
                    assert_eq!(wrong.len(), k_max.min(pool.len()), "row {i}");
                    assert!(wrong.iter().all(|j| pool.contains(j)), "row {i}: {wrong:?}");
                    let mut distinct = wrong.clone();
                    distinct.sort_unstable();
                    distinct.dedup();
                    assert_eq!(distinct.len(), wrong.len(), "row {i}: {wrong:?}");
                }
            }
        }
    }

    #[test]
    fn siblings_are_drawn_uniformly_and_anew_for_every_step() {
        // r0, r1, r2 correct; r3, r4 wrong with answers. One wrong sibling per response.
        let objective = Rlcsd {
            config: RlcsdConfig {
                k_max: 1,
                ..RlcsdConfig::default()
            },
            clip: Clip {
                low: 0.2,
                high: 0.2,
                dual: f32::INFINITY,
            },
        };
        let fixture = fixture(&[
            (1.0, Some("5")),
            (1.0, Some("5")),
            (1.0, Some("5")),
            (0.0, Some("6")),
            (0.0, Some("4")),
        ]);
        let (mut correct_for_r3, mut wrong_for_r0) = ([0usize; 5], [0usize; 5]);
        let steps = 200;
        for step in 1..=steps {
            let pairs = objective.hint_pairs(&fixture.group(step));
            let (correct, _) = pairs[3].clone().unwrap();
            correct_for_r3[correct.unwrap()] += 1;
            let (_, wrong) = pairs[0].clone().unwrap();
            wrong_for_r0[wrong[0]] += 1;
        }
        // Uniform over the pools {r0, r1, r2} and {r3, r4}: within 5 standard errors.
        for (counts, pool) in [
            (correct_for_r3, &[0, 1, 2][..]),
            (wrong_for_r0, &[3, 4][..]),
        ] {
            let p = 1.0 / pool.len() as f64;
            let sd = (steps as f64 * p * (1.0 - p)).sqrt();
            for &j in pool {
                let expected = steps as f64 * p;
                assert!(
                    (counts[j] as f64 - expected).abs() < 5.0 * sd,
                    "{counts:?} over {pool:?}"
                );
            }
            assert_eq!(counts.iter().sum::<usize>(), steps);
        }
    }

    #[test]
    fn responses_without_a_correct_or_a_wrong_sibling_get_no_pair() {
        let objective = rlcsd(RlcsdConfig::default());
        let rows = |group: &[(f32, Option<&str>)]| {
            let fixture = fixture(group);
            objective.teacher_rows(1, &fixture.group(1)).unwrap()
        };
        let has_pair = |rows: &Vec<Vec<TeacherRow>>| -> Vec<bool> {
            rows[0].iter().map(|r| r.has_hint && r.scored).collect()
        };
        // One correct response: it has no correct sibling; the wrong ones read it.
        let one = rows(&[(1.0, Some("5")), (0.0, Some("6")), (0.0, Some("7"))]);
        assert_eq!(has_pair(&one), [false, true, true]);
        // The lone wrong response with an answer cannot read itself.
        let lone = rows(&[(1.0, Some("5")), (1.0, Some("5")), (0.0, Some("6"))]);
        assert_eq!(has_pair(&lone), [true, true, false]);
        // All correct, all wrong, or wrong without answers: no pair for anyone.
        for group in [
            vec![(1.0, Some("5")), (1.0, Some("5"))],
            vec![(0.0, Some("4")), (0.0, Some("6"))],
            vec![(1.0, Some("5")), (0.0, None)],
        ] {
            let rows = rows(&group);
            assert!(
                rows.iter()
                    .flatten()
                    .all(|r| !r.scored && r.context.is_empty())
            );
        }
        // With the data set's solution as the correct hint, the lone correct response has one.
        let gt = rlcsd(RlcsdConfig {
            correct_hint: CorrectHint::GtCot,
            ..RlcsdConfig::default()
        });
        let fixture = fixture(&[(1.0, Some("5")), (0.0, Some("6")), (0.0, Some("7"))]);
        let rows = gt.teacher_rows(1, &fixture.group(1)).unwrap();
        assert!(rows[0].iter().all(|r| r.scored));
        assert_eq!(rows[0][0].hint, "2+3=5\n\nCorrect final answer: 5");
    }

    #[test]
    fn contexts_render_the_siblings_response_and_answer() {
        let objective = rlcsd(RlcsdConfig::default());
        let fixture = fixture(&[(1.0, Some("5")), (1.0, None), (0.0, Some("6"))]);
        let rows = objective.teacher_rows(3, &fixture.group(3)).unwrap();
        let user = |text: &str| [vec![256], text.bytes().map(u32::from).collect()].concat();
        // Row 0 reads r1 (its only correct sibling), whose missing answer becomes the gold one.
        assert_eq!(
            rows[0][0].context,
            user(&teacher_message(" What is 2+3? ", " r1 ", "5"))
        );
        assert_eq!(rows[0][0].hint, "r1\n\nCorrect final answer: 5");
        assert_eq!(
            rows[1][0].context,
            user(&teacher_message(" What is 2+3? ", " r2 ", "6"))
        );
        // Only one wrong sibling: the other slots are empty.
        assert!(
            rows[2..]
                .iter()
                .all(|pass| pass.iter().all(|r| !r.has_hint))
        );
        // Row 1 reads r0 with its own answer; row 2, the lone wrong response, has no pair.
        assert_eq!(
            rows[0][1].context,
            user(&teacher_message(" What is 2+3? ", " r0 ", "5"))
        );
        assert!(rows.iter().all(|pass| pass[2].context.is_empty()));
    }

    #[test]
    fn the_k_marginal_is_the_log_of_the_mean_probability() {
        let values = [0.2f64.ln(), 0.4f64.ln(), f64::NEG_INFINITY];
        assert_relative_eq!(log_mean_exp(&values), 0.2f64.ln(), epsilon = 1e-15);
        assert_eq!(log_mean_exp(&[f64::NEG_INFINITY; 2]), f64::NEG_INFINITY);
    }

    #[test]
    fn token_credit_anchors_the_sign_and_leaves_agreement_alone() {
        let m = Modulation {
            tau: 0.02,
            scale: 0.5,
            clip: (-2.0, 2.0),
            delta: 0.02,
        };
        // Teachers that agree (and tokens every teacher rules out): A itself, unselected.
        assert_eq!(token_credit(0.7, -1.0, &[-1.0, -1.0], m), (0.7, false, 0.0));
        let inf = f64::NEG_INFINITY;
        assert_eq!(token_credit(-0.7, inf, &[inf], m), (-0.7, false, 0.0));
        // A clear contrast saturates the tanh: ±β·λ added.
        let (up, chosen, e) = token_credit(0.7, -0.1, &[-3.0], m);
        assert!(chosen && e > 2.0);
        assert_relative_eq!(up, 1.2, epsilon = 1e-12);
        // The residual never flips the sign: a small positive A pushed down stops at 0.
        assert_eq!(token_credit(0.3, -3.0, &[-0.1], m).0, 0.0);
        assert_eq!(token_credit(-0.3, -0.1, &[-3.0], m).0, 0.0);
        assert_relative_eq!(
            token_credit(-0.7, -3.0, &[-0.1], m).0,
            -1.2,
            epsilon = 1e-12
        );
        // A = 0 stays 0 on a selected token.
        assert_eq!(token_credit(0.0, -0.1, &[-3.0], m), (0.0, true, 2.9));
        // |r| ≤ δ: unselected, whatever the sign of e.
        let small = token_credit(0.5, -1.0, &[-1.0005], m);
        assert!(!small.1 && small.0 == 0.5);
    }

    #[test]
    fn bad_settings_are_refused_with_their_names() {
        let build = |c: RlcsdConfig| {
            c.build(&BuildContext {
                max_new_tokens: 8,
                group_size: 2,
                steps: 1,
                temperature: 1.0,
                evaluation: true,
            })
            .err()
            .expect("refused")
            .to_string()
        };
        let base = RlcsdConfig::default;
        assert!(build(RlcsdConfig { tau: 0.0, ..base() }).contains("tau"));
        assert!(build(RlcsdConfig { k_max: 0, ..base() }).contains("k_max"));
        let swapped = RlcsdConfig {
            residual_clip_low: 1.0,
            residual_clip_high: -1.0,
            ..base()
        };
        assert!(build(swapped).contains("residual_clip_low"));
    }
}
