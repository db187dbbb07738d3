//! Checkpoints: the policy, the optimizer state, the objective's extra policies and the
//! trainer state, written atomically.

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::{Error, Result};

use super::{Trainer, TrainerState};

/// The checkpoint file of the frozen initial policy.
const INITIAL_FILE: &str = "initial_policy.safetensors";
/// The checkpoint file of the EMA teacher.
const EMA_FILE: &str = "teacher_ema.safetensors";
/// The checkpoint file of the snapshot teacher.
const SNAPSHOT_FILE: &str = "teacher_snapshot.safetensors";

impl Trainer<'_> {
    /// Writes the checkpoint of `step` under `dir` atomically: the policy, the optimizer state,
    /// the frozen initial policy and the EMA and snapshot teachers when the objective uses them,
    /// and the trainer state.
    pub fn save_checkpoint(&self, dir: &Path, step: usize) -> Result<PathBuf> {
        let target = checkpoint::step_dir(dir, step);
        let state = TrainerState {
            step,
            optimizer_steps: self.optimizer.steps_taken(),
            seed: self.seed,
            algo: self.objective.name().to_string(),
        };
        fs_err::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        checkpoint::write_dir_atomic(&target, |tmp| {
            checkpoint::save_safetensors(
                &tmp.join("model.safetensors"),
                &self.policy.parameters(),
                &self.policy.metadata(),
            )?;
            self.policy.write_model_files(tmp)?;
            checkpoint::save_safetensors(
                &tmp.join("optimizer.safetensors"),
                &self.optimizer.state(),
                &Default::default(),
            )?;
            if let Some(initial) = &self.initial {
                checkpoint::save_safetensors(
                    &tmp.join(INITIAL_FILE),
                    &initial.parameters(),
                    &initial.metadata(),
                )?;
            }
            if let Some((_, ema)) = &self.ema {
                checkpoint::save_safetensors(
                    &tmp.join(EMA_FILE),
                    &ema.parameters(),
                    &ema.metadata(),
                )?;
            }
            if let Some((_, snapshot)) = &self.snapshot {
                checkpoint::save_safetensors(
                    &tmp.join(SNAPSHOT_FILE),
                    &snapshot.parameters(),
                    &snapshot.metadata(),
                )?;
            }
            let json = serde_json::to_string_pretty(&state).expect("state serializes");
            checkpoint::write_atomic(&tmp.join("trainer_state.json"), json.as_bytes())
        })?;
        Ok(target)
    }

    /// Restores policy weights, optimizer state and the objective's extra policies from a
    /// checkpoint folder; returns the step it was written after.
    pub fn load_checkpoint(&mut self, folder: &Path) -> Result<usize> {
        let state_path = folder.join("trainer_state.json");
        let text =
            fs_err::read_to_string(&state_path).map_err(|e| Error::io("read", &state_path, e))?;
        let state: TrainerState = serde_json::from_str(&text).map_err(|e| Error::BadFile {
            path: state_path.clone(),
            reason: e.to_string(),
            hint: "the checkpoint is damaged; resume from an earlier one".into(),
        })?;
        if state.algo != self.objective.name() || state.seed != self.seed {
            return Err(Error::Config(format!(
                "checkpoint `{}` was written by `--algo {} --seed {}`, not `--algo {} --seed {}`\nhint: resume with the same algorithm and seed, or use a new `--out`",
                folder.display(),
                state.algo,
                state.seed,
                self.objective.name(),
                self.seed
            )));
        }
        let device = self.policy.device();
        let weights = checkpoint::load_safetensors(&folder.join("model.safetensors"), &device)?;
        self.policy.set_parameters(&weights)?;
        let moments = checkpoint::load_safetensors(&folder.join("optimizer.safetensors"), &device)?;
        self.optimizer.load_state(moments, state.optimizer_steps);
        if let Some(initial) = &mut self.initial {
            initial.set_parameters(&checkpoint::load_safetensors(
                &folder.join(INITIAL_FILE),
                &device,
            )?)?;
        }
        if let Some((_, ema)) = &mut self.ema {
            ema.set_parameters(&checkpoint::load_safetensors(
                &folder.join(EMA_FILE),
                &device,
            )?)?;
        }
        if let Some((_, snapshot)) = &mut self.snapshot {
            snapshot.set_parameters(&checkpoint::load_safetensors(
                &folder.join(SNAPSHOT_FILE),
                &device,
            )?)?;
        }
        Ok(state.step)
    }
}
