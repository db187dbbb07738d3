//! Teacher contexts through the trainer: what an objective's `teacher_rows` picks reaches its
//! credit stage row by row.

use std::sync::{Arc, Mutex};

use zoo::zoo_core::burn::prelude::*;
use zoo::zoo_core::objective::{BuildContext, CreditInput, LossInput, LossTerms, Needs};
use zoo::zoo_core::optim::OptimConfig;
use zoo::zoo_core::trainer::{RolloutConfig, Trainer, TrainerConfig, UpdateConfig};
use zoo::zoo_core::{
    Aggregation, Credit, Objective, ObjectiveConfig, Result, TeacherGroup, TeacherRow,
};
use zoo::zoo_models::TabularPolicy;
use zoo::zoo_verifiers::bandit::{Arms, Question};

/// What one credit call saw: rewards, group ids, the pass's `has_hint`, and the loss mask the
/// credit returned.
type Seen = (Vec<f32>, Vec<usize>, Vec<bool>, Vec<f32>);

/// SDPO, recording each credit call.
struct Recorded {
    inner: Box<dyn Objective>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Objective for Recorded {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn needs(&self) -> Needs {
        self.inner.needs()
    }
    fn teacher_rows(&self, step: usize, group: &TeacherGroup<'_>) -> Result<Vec<Vec<TeacherRow>>> {
        self.inner.teacher_rows(step, group)
    }
    fn aggregation(&self) -> Aggregation {
        self.inner.aggregation()
    }
    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit> {
        let credit = self.inner.credit(input)?;
        self.seen.lock().unwrap().push((
            input.rewards.to_vec(),
            input.group_ids.to_vec(),
            input.teachers[0].has_hint.clone(),
            credit
                .mask
                .as_ref()
                .expect("SDPO returns a mask")
                .data
                .clone(),
        ));
        Ok(credit)
    }
    fn token_divergence(&self, student: Tensor<3>, teacher: Tensor<3>) -> Option<Tensor<2>> {
        self.inner.token_divergence(student, teacher)
    }
    fn loss(&self, input: LossInput) -> LossTerms {
        self.inner.loss(input)
    }
}

#[test]
fn sdpo_masks_exactly_the_responses_without_a_successful_group_mate() {
    zoo::link_all();
    // Five arms, one correct: with a uniform policy a group of 4 holds 0, 1 or more successes,
    // so every case of the rule occurs over a few steps.
    let task = Arms::new(
        "five-arm",
        vec![Question {
            logits: vec![0.0; 5],
            correct: vec![3],
        }],
    );
    let context = BuildContext {
        max_new_tokens: 1,
        group_size: 4,
        steps: 4,
        temperature: 1.0,
        evaluation: false,
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let objective = Recorded {
        inner: zoo_sdpo::SdpoConfig::default().build(&context).unwrap(),
        seen: Arc::clone(&seen),
    };
    let config = TrainerConfig {
        rollout: RolloutConfig {
            prompts_per_step: 8,
            group_size: 4,
            temperature: 1.0,
            max_new_tokens: 1,
        },
        update: UpdateConfig::default(),
        optim: OptimConfig {
            lr: 0.05,
            ..OptimConfig::default()
        },
        checkpoint_every: 0,
        checkpoint_keep: 0,
        peak_tflops: 0.0,
    };
    let policy = TabularPolicy::shared(task.rows(), task.vocab(), &Device::flex()).unwrap();
    let mut trainer =
        Trainer::new(config, 3, 4, Box::new(policy), Box::new(objective), &task).unwrap();
    let mut fractions = Vec::new();
    for step in 1..=4 {
        let metrics = trainer.step(step).unwrap();
        fractions.push(metrics["sdpo/distill_frac"]);
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4);
    let (mut with, mut without) = (0, 0);
    for ((rewards, groups, has_hint, mask), fraction) in seen.iter().zip(fractions) {
        for i in 0..rewards.len() {
            let mate =
                (0..rewards.len()).any(|j| j != i && groups[j] == groups[i] && rewards[j] >= 0.5);
            assert_eq!(has_hint[i], mate, "response {i}: {rewards:?} {groups:?}");
            assert_eq!(
                mask[i],
                f32::from(u8::from(mate)),
                "response {i}'s loss mask"
            );
            if mate { with += 1 } else { without += 1 }
        }
        let expected = has_hint.iter().filter(|&&h| h).count() as f64 / has_hint.len() as f64;
        assert_eq!(fraction, expected);
    }
    assert!(
        with > 0 && without > 0,
        "both cases occurred: {with} / {without}"
    );
}
