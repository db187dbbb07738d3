//! AdamW with global gradient-norm clipping and a warm-up + cosine learning-rate schedule,
//! on parameters by name.
//!
//! Written here rather than taken from `burn-optim` because its state is keyed by random
//! parameter ids, which do not survive a save and reload in another process; ours is keyed by
//! the parameter's path, so a resumed run continues bit for bit. The update is PyTorch's
//! `torch.optim.AdamW` (decoupled weight decay, bias correction in the step size) and the clip
//! is `torch.nn.utils.clip_grad_norm_` (one norm over all parameters, as verl reports
//! `actor/grad_norm`).

use std::collections::BTreeMap;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::policy::{NamedTensor, NamedTensors};
use crate::{Error, Result};

/// How the learning rate changes over optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Linear warm-up, then constant.
    Constant,
    /// Linear warm-up, then cosine decay to `min_lr_ratio · lr` at the last step.
    Cosine,
}

/// Optimizer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// The update rule: `adamw` (default) or plain `sgd` (`θ ← θ − lr·g`, for toy problems
    /// whose gradient scale is the point, e.g. the difficulty-weighting bandits). Not written
    /// when it is the default, so existing configurations and cache keys stay the same.
    #[serde(skip_serializing_if = "OptimKind::is_adamw")]
    pub kind: OptimKind,
    /// Peak learning rate.
    pub lr: f64,
    /// Adam's `β1`.
    pub beta1: f64,
    /// Adam's `β2`.
    pub beta2: f64,
    /// Adam's `ε`, added to `sqrt(v̂)`.
    pub eps: f64,
    /// Decoupled weight decay (0 = plain Adam).
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value (0 = no clipping).
    pub grad_clip: f64,
    /// Optimizer steps of linear warm-up from 0.
    pub warmup_steps: usize,
    /// The schedule after warm-up.
    pub schedule: Schedule,
    /// Final learning rate of the cosine schedule, as a fraction of `lr`.
    pub min_lr_ratio: f64,
}

/// The update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimKind {
    /// AdamW with PyTorch's update rule.
    #[default]
    Adamw,
    /// Plain gradient descent (after clipping): no moments, no weight decay.
    Sgd,
}

impl OptimKind {
    fn is_adamw(&self) -> bool {
        *self == OptimKind::Adamw
    }
}

impl Default for OptimConfig {
    /// The RL defaults of the CPU world (design notes): Adam, lr 1e-4, clip 1, constant.
    fn default() -> Self {
        Self {
            kind: OptimKind::Adamw,
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            grad_clip: 1.0,
            warmup_steps: 0,
            schedule: Schedule::Constant,
            min_lr_ratio: 0.1,
        }
    }
}

impl OptimConfig {
    /// Checks ranges; the message names the key and the fix.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| Err(Error::Config(format!("`optim.{key}` {why}")));
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", "must be a positive number");
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad("beta1/beta2", "must lie in [0, 1)");
        }
        if self.eps <= 0.0 || self.weight_decay < 0.0 || self.grad_clip < 0.0 {
            return bad(
                "eps/weight_decay/grad_clip",
                "must be non-negative (eps positive)",
            );
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return bad("min_lr_ratio", "must lie in [0, 1]");
        }
        Ok(())
    }

    /// The learning rate of optimizer step `step` (0-based) out of `total` steps.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Cosine => {
                let span = total.saturating_sub(self.warmup_steps).max(2) - 1;
                let progress = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                self.lr * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)
            }
        }
    }
}

/// AdamW state: first and second moments by parameter name, and the step count.
pub struct AdamW {
    config: OptimConfig,
    step: u64,
    first_moment: BTreeMap<String, Tensor<1>>,
    second_moment: BTreeMap<String, Tensor<1>>,
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
    /// The learning rate used.
    pub lr: f64,
}

impl AdamW {
    /// A fresh optimizer.
    pub fn new(config: OptimConfig) -> Self {
        Self {
            config,
            step: 0,
            first_moment: BTreeMap::new(),
            second_moment: BTreeMap::new(),
        }
    }

    /// The number of steps taken.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// Clips `grads` to the global norm and applies one AdamW update with learning rate `lr`
    /// to `params` (same names and shapes). Returns the new parameters. Each gradient is
    /// dropped once used, so the new parameters take the gradients' memory as they are built.
    pub fn step(
        &mut self,
        params: &NamedTensors,
        mut grads: NamedTensors,
        lr: f64,
    ) -> Result<(NamedTensors, StepReport)> {
        let squared: f64 = grads
            .values()
            .map(|g| g.value.clone().square().sum().into_scalar::<f64>())
            .sum();
        let grad_norm = squared.sqrt();
        if !grad_norm.is_finite() {
            return Err(Error::NonFinite {
                what: "gradient norm".into(),
                step: self.step as usize + 1,
            });
        }
        let clip_coef = if self.config.grad_clip > 0.0 {
            (self.config.grad_clip / (grad_norm + 1e-6)).min(1.0)
        } else {
            1.0
        };
        self.step += 1;
        let c = &self.config;
        let bias1 = 1.0 - c.beta1.powi(self.step as i32);
        let bias2 = 1.0 - c.beta2.powi(self.step as i32);
        let step_size = lr / bias1;
        let mut updated = NamedTensors::new();
        for (name, param) in params {
            let grad = grads.remove(name).ok_or_else(|| Error::Shape {
                what: "optimizer step",
                expected: format!("a gradient for `{name}`"),
                got: "none".into(),
            })?;
            let g = grad.value.mul_scalar(clip_coef);
            if c.kind == OptimKind::Sgd {
                let p = param.value.clone().sub(g.mul_scalar(lr));
                updated.insert(
                    name.clone(),
                    NamedTensor {
                        shape: param.shape.clone(),
                        value: p,
                    },
                );
                continue;
            }
            let m = match self.first_moment.remove(name) {
                Some(m) => m
                    .mul_scalar(c.beta1)
                    .add(g.clone().mul_scalar(1.0 - c.beta1)),
                None => g.clone().mul_scalar(1.0 - c.beta1),
            };
            let v = match self.second_moment.remove(name) {
                Some(v) => v
                    .mul_scalar(c.beta2)
                    .add(g.square().mul_scalar(1.0 - c.beta2)),
                None => g.square().mul_scalar(1.0 - c.beta2),
            };
            let mut p = param.value.clone();
            if c.weight_decay > 0.0 {
                p = p.mul_scalar(1.0 - lr * c.weight_decay);
            }
            let denom = v.clone().sqrt().div_scalar(bias2.sqrt()).add_scalar(c.eps);
            let p = p.sub(m.clone().div(denom).mul_scalar(step_size));
            self.first_moment.insert(name.clone(), m);
            self.second_moment.insert(name.clone(), v);
            updated.insert(
                name.clone(),
                NamedTensor {
                    shape: param.shape.clone(),
                    value: p,
                },
            );
        }
        Ok((updated, StepReport { grad_norm, lr }))
    }

    /// The moments as named tensors (`m.<name>`, `v.<name>`) for a checkpoint.
    pub fn state(&self) -> NamedTensors {
        let mut out = NamedTensors::new();
        for (prefix, moments) in [("m", &self.first_moment), ("v", &self.second_moment)] {
            for (name, value) in moments {
                out.insert(
                    format!("{prefix}.{name}"),
                    NamedTensor {
                        shape: value.dims().to_vec(),
                        value: value.clone(),
                    },
                );
            }
        }
        out
    }

    /// Restores moments saved by [`AdamW::state`] after `steps` steps.
    pub fn load_state(&mut self, state: NamedTensors, steps: u64) {
        self.step = steps;
        for (key, tensor) in state {
            if let Some(name) = key.strip_prefix("m.") {
                self.first_moment.insert(name.to_string(), tensor.value);
            } else if let Some(name) = key.strip_prefix("v.") {
                self.second_moment.insert(name.to_string(), tensor.value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use burn::tensor::TensorData;

    fn named(values: &[f32]) -> NamedTensors {
        let device = Device::flex();
        let mut out = NamedTensors::new();
        out.insert(
            "w".into(),
            NamedTensor {
                shape: vec![values.len()],
                value: Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), &device),
            },
        );
        out
    }

    fn host(t: &NamedTensors) -> Vec<f32> {
        t["w"]
            .value
            .clone()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn first_adam_step_moves_each_weight_by_lr_against_the_gradient_sign() {
        // With bias correction, the first Adam step is lr · g / (|g| + eps) = ±lr.
        let config = OptimConfig {
            grad_clip: 0.0,
            ..OptimConfig::default()
        };
        let mut adam = AdamW::new(config);
        let (p, report) = adam
            .step(&named(&[1.0, 2.0]), named(&[0.5, -3.0]), 0.1)
            .unwrap();
        let p = host(&p);
        assert_relative_eq!(p[0], 0.9, epsilon = 1e-6);
        assert_relative_eq!(p[1], 2.1, epsilon = 1e-6);
        assert_relative_eq!(report.grad_norm, (0.25f64 + 9.0).sqrt(), epsilon = 1e-6);
    }

    #[test]
    fn clipping_scales_the_global_norm_to_the_limit() {
        // SGD-like check through Adam is awkward; check the moment instead: m = (1-β1)·g·coef.
        let config = OptimConfig {
            grad_clip: 1.0,
            ..OptimConfig::default()
        };
        let mut adam = AdamW::new(config);
        adam.step(&named(&[0.0, 0.0]), named(&[3.0, 4.0]), 0.1)
            .unwrap();
        let m = adam.first_moment["w"]
            .clone()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let coef = 1.0 / (5.0 + 1e-6);
        assert_relative_eq!(m[0], 0.1 * 3.0 * coef as f32, epsilon = 1e-6);
        assert_relative_eq!(m[1], 0.1 * 4.0 * coef as f32, epsilon = 1e-6);
    }

    #[test]
    fn cosine_schedule_warms_up_then_decays_to_the_floor() {
        let config = OptimConfig {
            lr: 1.0,
            warmup_steps: 4,
            schedule: Schedule::Cosine,
            min_lr_ratio: 0.1,
            ..OptimConfig::default()
        };
        assert_relative_eq!(config.lr_at(0, 20), 0.25);
        assert_relative_eq!(config.lr_at(3, 20), 1.0);
        assert_relative_eq!(config.lr_at(4, 20), 1.0);
        assert_relative_eq!(config.lr_at(19, 20), 0.1, epsilon = 1e-12);
    }
}
