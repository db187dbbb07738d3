//! Rollout dumps, as verl's `trainer.rollout_data_dir`: with `log.rollouts = true` every step
//! writes `rollouts/step-NNNNNN.jsonl` in the run folder, one JSON object per response:
//!
//! - `step`, `group` (the group's index in the step), `prompt` (the user message text, before
//!   the chat template), `context_ids` (the student's context), `response_ids`, `response`
//!   (the decoded text);
//! - `reward`, `verdict` (the verifier's `score`, `correct`, `extracted`, `parsed`, `reason`),
//!   `advantage` (the sequence-level advantage of the credit stage, `null` for an objective
//!   without one);
//! - `teachers`: one entry per teacher pass that built a context for the response:
//!   `{"pass": NAME, "context_ids": [...], "hint": TEXT, "scored": BOOL}`, `hint` being the
//!   privileged text the context adds beyond the prompt.
//!
//! The file is written atomically after the credit stage, before the update.

use std::path::Path;

use serde_json::json;

use crate::batch::RolloutBatch;
use crate::checkpoint::write_atomic;
use crate::objective::Credit;
use crate::policy::Tokenizer;
use crate::task::{Problem, Verdict};
use crate::teacher::TeacherPass;
use crate::{Error, Result};

use super::rollout::TeacherContexts;

/// What one step's dump reads.
pub(super) struct StepRollouts<'a> {
    pub(super) problems: &'a [Problem],
    pub(super) batch: &'a RolloutBatch,
    pub(super) verdicts: &'a [Verdict],
    pub(super) tokenizer: &'a dyn Tokenizer,
    pub(super) credit: &'a Credit,
    pub(super) passes: &'a [TeacherPass],
    pub(super) contexts: &'a [TeacherContexts],
}

/// The dump file of `step` under `dir`.
pub fn step_file(dir: &Path, step: usize) -> std::path::PathBuf {
    dir.join(format!("step-{step:06}.jsonl"))
}

/// Writes the dump of `step` under `dir` (created if missing).
pub(super) fn write_step(dir: &Path, step: usize, rollouts: &StepRollouts<'_>) -> Result<()> {
    fs_err::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let mut text = String::new();
    for (i, rollout) in rollouts.batch.rollouts.iter().enumerate() {
        let teachers: Vec<serde_json::Value> = rollouts
            .passes
            .iter()
            .zip(rollouts.contexts)
            .filter(|(_, built)| !built.contexts[i].is_empty())
            .map(|(pass, built)| {
                json!({
                    "pass": pass.name,
                    "context_ids": built.contexts[i],
                    "hint": built.hints[i],
                    "scored": built.scored[i],
                })
            })
            .collect();
        let advantage = rollouts.credit.sequence_advantages.as_ref().map(|a| a[i]);
        let line = json!({
            "step": step,
            "group": rollout.group_id,
            "prompt": rollouts.problems[rollout.problem].prompt,
            "context_ids": rollouts.batch.prompts[rollout.problem],
            "response_ids": rollout.tokens,
            "response": rollouts.tokenizer.decode(&rollout.tokens),
            "reward": rollouts.verdicts[i].score,
            "verdict": rollouts.verdicts[i],
            "advantage": advantage,
            "teachers": teachers,
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    write_atomic(&step_file(dir, step), text.as_bytes())
}
