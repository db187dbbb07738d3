//! The supervised warm start (`zoo sft`): teacher-forced next-token training on a task's
//! worked solutions, which yields a base policy for RL.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::batch::TokenMatrix;
use crate::optim::{AdamW, OptimConfig, Schedule};
use crate::policy::Policy;
use crate::rng;
use crate::task::Task;
use crate::{Error, Result};

/// Warm-start settings. Every field is part of the base policy's cache key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// The optimizer (AdamW, warm-up, cosine).
    pub optim: OptimConfig,
}

impl Default for SftConfig {
    /// The CPU world's recipe (design notes): 300 steps of 128, lr 2e-3, 50 warm-up steps,
    /// cosine to 10%, clip 1.
    fn default() -> Self {
        Self {
            steps: 300,
            batch_size: 128,
            optim: OptimConfig {
                lr: 2e-3,
                warmup_steps: 50,
                schedule: Schedule::Cosine,
                min_lr_ratio: 0.1,
                grad_clip: 1.0,
                ..OptimConfig::default()
            },
        }
    }
}

/// One warm-start step's numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SftStep {
    /// The step, from 1.
    pub step: usize,
    /// Token-mean negative log-likelihood.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Seconds the step took.
    pub seconds: f64,
}

/// Trains `policy` on `task`'s warm-start examples; `on_step` sees every step.
pub fn run(
    policy: &mut dyn Policy,
    task: &dyn Task,
    config: &SftConfig,
    seed: u64,
    on_step: &mut dyn FnMut(SftStep),
) -> Result<()> {
    config.optim.validate()?;
    if config.steps == 0 || config.batch_size == 0 {
        return Err(Error::Config(
            "`sft.steps` and `sft.batch_size` must be positive".into(),
        ));
    }
    let mut optimizer = AdamW::new(config.optim.clone());
    let tokenizer_eos = policy.tokenizer().eos();
    for step in 1..=config.steps {
        let start = Instant::now();
        let mut rng = rng::stream(seed, step as u64, "sft");
        let mut contexts = Vec::with_capacity(config.batch_size);
        let mut targets = Vec::with_capacity(config.batch_size);
        for _ in 0..config.batch_size {
            let example = task.sft_example(&mut rng);
            contexts.push(policy.tokenizer().encode_prompt(&example.context)?);
            let mut target = policy.tokenizer().encode(&example.target)?;
            target.push(tokenizer_eos);
            targets.push(target);
        }
        let logprobs = policy.token_logprobs(&contexts, &targets, 1.0, true);
        let [n, t] = logprobs.dims();
        let mut mask = TokenMatrix::zeros(n, t);
        for (i, target) in targets.iter().enumerate() {
            for j in 0..target.len() {
                mask.set(i, j, 1.0);
            }
        }
        let total: f32 = mask.data.iter().sum();
        let mask = mask.to_tensor(&policy.device());
        let loss = logprobs.mul(mask).sum().neg().div_scalar(total);
        let loss_value = loss.clone().into_scalar::<f64>();
        if !loss_value.is_finite() {
            return Err(Error::NonFinite {
                what: "warm-start loss".into(),
                step,
            });
        }
        let grads = policy.backward(loss);
        let lr = config.optim.lr_at(step - 1, config.steps);
        let (params, _) = optimizer.step(&policy.parameters(), grads, lr)?;
        policy.set_parameters(&params)?;
        on_step(SftStep {
            step,
            loss: loss_value,
            lr,
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    Ok(())
}
