//! Checkpoints: the policy, the optimizer state, the objective's extra policies and the
//! trainer state, written atomically.
//!
//! The frozen initial policy never changes, so a run writes it once, beside its step folders
//! (`checkpoints/initial_policy.safetensors`), and each checkpoint's `trainer_state.json` names
//! it with its hash; a checkpoint folder copied elsewhere loads when the file sits beside it
//! (or inside it, as older checkpoints have it) and otherwise says what it needs.

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::{Error, Result};

use super::{InitialPolicyFile, Trainer, TrainerState};

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
    pub fn save_checkpoint(&mut self, dir: &Path, step: usize) -> Result<PathBuf> {
        let target = checkpoint::step_dir(dir, step);
        fs_err::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        let initial_policy = match &self.initial {
            Some(initial) => {
                let shared = dir.join(INITIAL_FILE);
                let hash = match (&self.initial_hash, shared.exists()) {
                    (Some(hash), true) => hash.clone(),
                    _ => {
                        checkpoint::save_safetensors(
                            &shared,
                            &initial.parameters(),
                            &initial.metadata(),
                        )?;
                        file_hash(&shared)?
                    }
                };
                self.initial_hash = Some(hash.clone());
                Some(InitialPolicyFile {
                    path: format!("../{INITIAL_FILE}"),
                    fnv1a: hash,
                })
            }
            None => None,
        };
        let state = TrainerState {
            step,
            optimizer_steps: self.optimizer.steps_taken(),
            seed: self.seed,
            algo: self.objective.name().to_string(),
            initial_policy,
        };
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
            // Inside the folder (older checkpoints), else where the state says.
            let inside = folder.join(INITIAL_FILE);
            let (path, hash) = match (&state.initial_policy, inside.exists()) {
                (_, true) => (inside, None),
                (Some(file), false) => (folder.join(&file.path), Some(&file.fnv1a)),
                (None, false) => (inside, None),
            };
            if !path.exists() {
                return Err(Error::BadFile {
                    path: folder.to_path_buf(),
                    reason: format!(
                        "the run's frozen initial policy `{}` is missing",
                        path.display()
                    ),
                    hint: format!(
                        "copy `{INITIAL_FILE}` from the run's `checkpoints/` folder next to this checkpoint folder"
                    ),
                });
            }
            if let Some(hash) = hash
                && &file_hash(&path)? != hash
            {
                return Err(Error::BadFile {
                    path,
                    reason: "it is not this run's initial policy (its hash differs from the one the checkpoint records)".into(),
                    hint: format!("copy `{INITIAL_FILE}` of the run that wrote the checkpoint"),
                });
            }
            initial.set_parameters(&checkpoint::load_safetensors(&path, &device)?)?;
            self.initial_hash = hash.cloned();
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

/// FNV-1a of the file at `path`, as 16 hex digits.
fn file_hash(path: &Path) -> Result<String> {
    let bytes = fs_err::read(path).map_err(|e| Error::io("read", path, e))?;
    Ok(format!("{:016x}", crate::rng::fnv1a(&bytes)))
}
