//! A non-finite loss skips its optimizer step (no weight, no optimizer moment changes) and is
//! counted; too many in a row stop the run with a clear error, the last checkpoint intact.

use std::sync::atomic::{AtomicUsize, Ordering};

use zoo::zoo_core::burn::prelude::*;
use zoo::zoo_core::objective::{BuildContext, CreditInput, LossInput, LossTerms, Needs};
use zoo::zoo_core::optim::OptimConfig;
use zoo::zoo_core::trainer::{RolloutConfig, Trainer, TrainerConfig, UpdateConfig};
use zoo::zoo_core::{Aggregation, Credit, Objective, ObjectiveConfig, Policy, Result};
use zoo::zoo_models::TabularPolicy;
use zoo::zoo_verifiers::bandit::{Arms, Question};

/// GRPO whose loss is NaN on the loss calls (one per step here) in `nan_calls`.
struct NanInjected {
    inner: Box<dyn Objective>,
    calls: AtomicUsize,
    nan_calls: std::ops::Range<usize>,
}

impl Objective for NanInjected {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn needs(&self) -> Needs {
        self.inner.needs()
    }
    fn aggregation(&self) -> Aggregation {
        self.inner.aggregation()
    }
    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit> {
        self.inner.credit(input)
    }
    fn loss(&self, input: LossInput) -> LossTerms {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let mut terms = self.inner.loss(input);
        if self.nan_calls.contains(&call) {
            terms.per_token = terms.per_token.mul_scalar(f32::NAN);
        }
        terms
    }
}

fn trainer(task: &Arms, nan_calls: std::ops::Range<usize>, max_skips: usize) -> Trainer<'_> {
    zoo::link_all();
    let context = BuildContext {
        max_new_tokens: 1,
        group_size: 8,
        steps: 6,
        temperature: 1.0,
        evaluation: false,
    };
    let objective = NanInjected {
        inner: zoo_grpo::GrpoConfig::default().build(&context).unwrap(),
        calls: AtomicUsize::new(0),
        nan_calls,
    };
    let config = TrainerConfig {
        rollout: RolloutConfig {
            prompts_per_step: 4,
            group_size: 8,
            temperature: 1.0,
            max_new_tokens: 1,
        },
        update: UpdateConfig {
            max_nonfinite_skips: max_skips,
            ..UpdateConfig::default()
        },
        optim: OptimConfig {
            lr: 0.05,
            ..OptimConfig::default()
        },
        checkpoint_every: 1,
        checkpoint_keep: 0,
        peak_tflops: 0.0,
    };
    let policy = TabularPolicy::shared(task.rows(), task.vocab(), &Device::flex()).unwrap();
    Trainer::new(config, 0, 6, Box::new(policy), Box::new(objective), task).unwrap()
}

fn five_arms() -> Arms {
    Arms::new(
        "five-arm",
        vec![Question {
            logits: vec![0.0; 5],
            correct: vec![3],
        }],
    )
}

fn weights(policy: &dyn Policy) -> Vec<f32> {
    policy
        .parameters()
        .values()
        .flat_map(|t| t.value.clone().into_data().try_into_vec::<f32>().unwrap())
        .collect()
}

#[test]
fn a_nan_loss_skips_its_update_and_training_goes_on() {
    let task = five_arms();
    let mut trainer = trainer(&task, 1..2, 1);
    let first = trainer.step(1).unwrap();
    assert_eq!(first["actor/skipped_updates"], 0.0);
    let after_first = weights(trainer.policy());
    let second = trainer.step(2).unwrap();
    assert_eq!(second["actor/skipped_updates"], 1.0, "{second:?}");
    assert_eq!(
        weights(trainer.policy()),
        after_first,
        "a skipped step changes no weight"
    );
    let third = trainer.step(3).unwrap();
    assert_eq!(third["actor/skipped_updates"], 0.0);
    assert_ne!(weights(trainer.policy()), after_first, "training goes on");
}

#[test]
fn too_many_nan_losses_in_a_row_stop_the_run_with_the_last_checkpoint_intact() {
    let task = five_arms();
    // NaN from step 2 on; two skips in a row are allowed, the third stops the run at step 4.
    let mut trainer = trainer(&task, 1..usize::MAX, 2);
    let dir = std::env::temp_dir().join(format!("zoo-it-skips-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut seen = Vec::new();
    let err = trainer
        .run(1, 6, Some(&dir), &mut |step, m, _| {
            seen.push((step, m["actor/skipped_updates"]));
            Ok(())
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("non-finite loss in 3 optimizer steps in a row") && err.contains("at step 4"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(seen, vec![(1, 0.0), (2, 1.0), (3, 1.0)]);
    let latest = zoo::zoo_core::checkpoint::latest(&dir).unwrap().unwrap();
    assert_eq!(
        latest.0, 3,
        "the checkpoint of the last finished step is there"
    );
    assert!(latest.1.join("model.safetensors").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}
