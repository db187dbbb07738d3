//! The run configuration: what `zoo train` resolves from defaults, `--config FILE.toml`,
//! flags and `--set key=value`, validates before any work, and writes as `config.toml`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use zoo_core::config::{apply_set, default_objective_table, merge, set_value};
use zoo_core::device::DeviceSpec;
use zoo_core::objective::BuildContext;
use zoo_core::optim::OptimConfig;
use zoo_core::sft::SftConfig;
use zoo_core::trainer::{RolloutConfig, TrainerConfig, UpdateConfig};
use zoo_core::{Objective, ObjectiveConfig, Task, registry};
use zoo_llm::tokenizer::ChatOptions;
use zoo_models::TinyDecoderConfig;

/// Settings of the base policy: everything that determines it, and so its cache key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarmStartConfig {
    /// Seed of the warm start (separate from the RL seed, so runs with different RL seeds
    /// share one base policy).
    pub seed: u64,
    /// The architecture.
    pub model: TinyDecoderConfig,
    /// The supervised training recipe.
    pub sft: SftConfig,
}

/// The policy: the CPU world's tiny decoder, or a real language model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// `""`: the tiny decoder, warm-started by `zoo sft` (`warm_start`); otherwise a Hugging
    /// Face model folder or a `.gguf` file (`--model`), which skips the warm start.
    pub source: String,
    /// How prompts are put into the model's chat template.
    pub chat: ChatOptions,
    /// Positions of the output head computed at once (rows × columns), when scoring and in
    /// the update.
    pub chunk_positions: usize,
    /// The compute dtype: `f32`, or `bf16` (f32 master weights and optimizer state, bf16
    /// activations, f32 log-softmax and losses).
    pub dtype: ModelDtype,
    /// Activation recomputation: keep each decoder layer's input only and run the layers again
    /// one at a time in the backward pass (memory of one layer's activations; two more forward
    /// passes of the trunk per update). For a token budget too small otherwise.
    pub recompute: bool,
    /// Train LoRA adapters only (PEFT's LoRA; `docs/models.md`): the base is frozen, the
    /// checkpoints are PEFT adapter folders. Absent: every weight trains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<zoo_llm::lora::LoraConfig>,
    /// A PEFT adapter folder to load onto `source` (`--adapter`); it trains on in `zoo train`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub adapter: String,
    /// How the frozen base of a LoRA run is stored: `f32`, or `bf16` (half the memory; needs
    /// `model.dtype = "bf16"`).
    pub base_dtype: ModelDtype,
}

/// `model.dtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ModelDtype {
    /// Everything f32.
    #[default]
    F32,
    /// bf16 compute with f32 master weights.
    Bf16,
}

impl ModelDtype {
    /// The model's compute setting.
    pub fn compute(self) -> zoo_llm::llama::Compute {
        match self {
            ModelDtype::F32 => zoo_llm::llama::Compute::F32,
            ModelDtype::Bf16 => zoo_llm::llama::Compute::Bf16,
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            source: String::new(),
            chat: ChatOptions::default(),
            chunk_positions: zoo_llm::policy::DEFAULT_CHUNK_POSITIONS,
            dtype: ModelDtype::F32,
            recompute: false,
            lora: None,
            adapter: String::new(),
            base_dtype: ModelDtype::F32,
        }
    }
}

impl ModelConfig {
    /// Whether this is a real language model (not the tiny decoder).
    pub fn is_llm(&self) -> bool {
        !self.source.is_empty()
    }
}

/// The defaults of a run with a real language model, where they differ from the CPU world's:
/// the references' (verl, TRL) AdamW lr 1e-6 and gradient clip 1.0, temperature 1.0, G = 8,
/// the response cap from the data settings, and micro-batches small enough for a full
/// vocabulary's logits.
pub const LLM_DEFAULTS: &str = r#"
[optim]
lr = 1e-6
grad_clip = 1.0
[rollout]
temperature = 1.0
group_size = 8
max_new_tokens = 0
[update]
micro_batch_size = 64
micro_batch_tokens = 4096
"#;

/// Held-out evaluation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// How many held-out problems to evaluate (at most the task's held-out size).
    pub problems: usize,
    /// Temperature of the sampled pass@1 (greedy pass@1 is always reported).
    pub temperature: f32,
    /// Also evaluate every this many steps, logged as `eval/greedy` and `eval/sampled`
    /// (0: only before and after the run).
    pub every: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            problems: 400,
            temperature: 1.0,
            every: 0,
        }
    }
}

/// What a run writes besides its metrics and checkpoints.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Write every step's responses, verdicts, advantages and teacher contexts to
    /// `rollouts/step-NNNNNN.jsonl` in the run folder (verl's `rollout_data_dir`;
    /// `docs/metrics.md`).
    pub rollouts: bool,
}

/// Everything a training run needs, resolved.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// RL seed: prompt stream and sampling.
    pub seed: u64,
    /// RL steps.
    pub steps: usize,
    /// Task registry name.
    pub task: String,
    /// The task's settings (`--task jsonl`: `train`, `eval`, `template`, `verifier`).
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub data: toml::Table,
    /// Device name (`flex`, `tch-cpu`, `tch-cuda:N`).
    pub device: String,
    /// Rollout settings.
    pub rollout: RolloutConfig,
    /// Update settings.
    pub update: UpdateConfig,
    /// Optimizer settings of RL.
    pub optim: OptimConfig,
    /// Checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    /// Keep the newest this many checkpoints under `--out` (0: keep all).
    #[serde(default)]
    pub checkpoint_keep: usize,
    /// The device's peak TFLOP/s, for `perf/mfu` (0: MFU not reported; `perf/tflops` is).
    #[serde(default)]
    pub peak_tflops: f64,
    /// Held-out evaluation.
    pub eval: EvalConfig,
    /// What the run writes besides metrics and checkpoints.
    #[serde(default)]
    pub log: LogConfig,
    /// The policy: the tiny decoder (default) or a real language model (`--model`).
    #[serde(default)]
    pub model: ModelConfig,
    /// The base policy of the tiny decoder (unused with `model.source`).
    pub warm_start: WarmStartConfig,
    /// The objective, tagged by `algo`.
    pub objective: Box<dyn ObjectiveConfig>,
}

/// The key of `objective` (a TOML table with `algo`) whose value alone makes the algorithm's
/// defaults fail to deserialize, if there is one.
fn failing_objective_key(objective: &toml::Value) -> Option<String> {
    let algo = objective.get("algo")?.as_str()?;
    let defaults = default_objective_table(algo).ok()?;
    objective.as_table()?.iter().find_map(|(key, value)| {
        let mut probe = defaults.clone();
        probe.as_table_mut()?.insert(key.clone(), value.clone());
        zoo_core::config::objective_from_table(probe)
            .is_err()
            .then(|| key.clone())
    })
}

/// RL steps of a run that does not set `steps`.
pub const DEFAULT_STEPS: usize = 30;

/// The defaults of a run with `algo` (with a real language model when `llm`), as a TOML table.
fn defaults(algo: &str, llm: bool) -> Result<toml::Value> {
    let mut table = toml::Table::new();
    table.insert("seed".into(), 0.into());
    table.insert("steps".into(), (DEFAULT_STEPS as i64).into());
    // The world with headroom, where the main job shows RL raising greedy and sampled pass@1.
    table.insert("task".into(), "addition-habit".into());
    table.insert("device".into(), "flex".into());
    table.insert(
        "rollout".into(),
        toml::Value::try_from(RolloutConfig::default())?,
    );
    table.insert(
        "update".into(),
        toml::Value::try_from(UpdateConfig::default())?,
    );
    table.insert(
        "optim".into(),
        toml::Value::try_from(OptimConfig::default())?,
    );
    table.insert("checkpoint_every".into(), 10.into());
    table.insert("checkpoint_keep".into(), 0.into());
    table.insert("peak_tflops".into(), 0.0.into());
    table.insert("eval".into(), toml::Value::try_from(EvalConfig::default())?);
    table.insert("log".into(), toml::Value::try_from(LogConfig::default())?);
    table.insert(
        "model".into(),
        toml::Value::try_from(ModelConfig::default())?,
    );
    table.insert(
        "warm_start".into(),
        toml::Value::try_from(WarmStartConfig::default())?,
    );
    table.insert("objective".into(), default_objective_table(algo)?);
    let mut table = toml::Value::Table(table);
    // An algorithm's own run defaults win over the generic ones for real models.
    if llm {
        merge(
            &mut table,
            toml::from_str(LLM_DEFAULTS).expect("the LLM defaults are valid TOML"),
        );
    }
    let entry = registry::algorithm(algo)?;
    let own = [
        (entry.run_defaults, "run defaults"),
        (entry.llm_run_defaults, "LLM run defaults"),
    ];
    for (text, what) in own.into_iter().take(if llm { 2 } else { 1 }) {
        if text.is_empty() {
            continue;
        }
        let extra: toml::Value = toml::from_str(text).with_context(|| {
            format!(
                "the {what} of `{algo}` (from `{}`) are not valid TOML",
                entry.origin
            )
        })?;
        merge(&mut table, extra);
    }
    Ok(table)
}

/// `(key, value)` for each flag the user gave.
pub fn given_flags(
    flags: impl IntoIterator<Item = (&'static str, Option<toml::Value>)>,
) -> Vec<(&'static str, toml::Value)> {
    flags
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| (key, v)))
        .collect()
}

/// What the user said on the command line about the configuration.
#[derive(Debug, Default, Clone)]
pub struct Overrides<'a> {
    /// `--algo`.
    pub algo: Option<&'a str>,
    /// `--config FILE.toml`.
    pub config_file: Option<&'a Path>,
    /// Dedicated flags (`--steps`, `--seed`, ...) as `(dotted key, value)`, applied after the
    /// file and before `--set`.
    pub flags: Vec<(&'static str, toml::Value)>,
    /// `--set key=value`, in order (the last one wins).
    pub sets: Vec<String>,
}

impl RunConfig {
    /// Defaults, then the file, then the `--set` overrides, deserialized and validated.
    pub fn resolve(overrides: &Overrides<'_>) -> Result<Self> {
        let file: Option<toml::Value> = match overrides.config_file {
            Some(path) => {
                let text = fs_err::read_to_string(path)
                    .with_context(|| format!("cannot read config file `{}`", path.display()))?;
                Some(toml::from_str(&text).with_context(|| {
                    format!("config file `{}` is not valid TOML", path.display())
                })?)
            }
            None => None,
        };
        let file_algo = file
            .as_ref()
            .and_then(|f| f.get("objective"))
            .and_then(|o| o.get("algo"))
            .and_then(|a| a.as_str())
            .map(str::to_string);
        let algo = match (overrides.algo, file_algo.as_deref()) {
            (Some(algo), _) => algo.to_string(),
            (None, Some(algo)) => algo.to_string(),
            (None, None) => {
                bail!("no algorithm given\nhint: pass `--algo NAME` (`zoo list` shows them)")
            }
        };
        registry::algorithm(&algo)?;
        let layered = |llm: bool| -> Result<toml::Value> {
            let mut table = defaults(&algo, llm)?;
            if let Some(mut file) = file.clone() {
                if let Some(objective) = file.get_mut("objective").and_then(|o| o.as_table_mut()) {
                    objective.insert("algo".into(), algo.clone().into());
                }
                merge(&mut table, file);
            }
            for (key, value) in &overrides.flags {
                set_value(&mut table, key, value.clone());
            }
            for set in &overrides.sets {
                if set.trim_start().starts_with("objective.algo") {
                    bail!("`--set {set}` cannot change the algorithm\nhint: use `--algo NAME`");
                }
                apply_set(&mut table, set)?;
            }
            Ok(table)
        };
        // A real language model changes the defaults, not what the user set: layer again.
        let mut table = layered(false)?;
        let llm = table
            .get("model")
            .and_then(|m| m.get("source"))
            .and_then(|s| s.as_str())
            .is_some_and(|s| !s.is_empty());
        if llm {
            table = layered(true)?;
        }
        let config = Self::from_table(table)?;
        config.validate()?;
        Ok(config)
    }

    fn from_table(table: toml::Value) -> Result<Self> {
        let algo = table["objective"]["algo"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let objective = table["objective"].clone();
        serde_path_to_error::deserialize(table).map_err(|e| {
            let mut path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.message().trim().to_string();
            // typetag hides the path inside the objective: find the key that fails alone.
            if path == "objective"
                && let Some(key) = failing_objective_key(&objective)
            {
                path = format!("objective.{key}");
            }
            let hint = if path.starts_with("objective") {
                format!("`zoo train --algo {algo} --dry-run` prints every key with its default")
            } else {
                "`zoo train --algo NAME --dry-run` prints every key with its default".into()
            };
            anyhow::anyhow!("invalid config key `{path}`: {message}\nhint: {hint}")
        })
    }

    /// Checks everything that can be checked without doing work.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            bail!("`steps` must be at least 1");
        }
        self.trainer().validate()?;
        self.warm_start.sft.optim.validate()?;
        self.warm_start
            .model
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid config key `warm_start.model`: {e}"))?;
        if self.model.is_llm() && !Path::new(&self.model.source).exists() {
            bail!(
                "invalid config key `model.source`: `{}` does not exist\nhint: pass a Hugging Face model folder or a `.gguf` file (`scripts/fetch-smollm2.sh` fetches SmolLM2-135M-Instruct)",
                self.model.source
            );
        }
        if !(self.peak_tflops >= 0.0 && self.peak_tflops.is_finite()) {
            bail!(
                "`peak_tflops` must be a finite number ≥ 0 (0: no `perf/mfu`), got {}",
                self.peak_tflops
            );
        }
        if self.model.chunk_positions == 0 {
            bail!("`model.chunk_positions` must be at least 1");
        }
        if (self.model.dtype == ModelDtype::Bf16 || self.model.recompute) && !self.model.is_llm() {
            bail!(
                "`model.dtype = \"bf16\"` and `model.recompute` are for real models; the tiny decoder computes in f32 with its whole graph\nhint: add `--model DIR_OR_GGUF`, or drop the setting"
            );
        }
        let adapters = self.model.lora.is_some() || !self.model.adapter.is_empty();
        if adapters && !self.model.is_llm() {
            bail!(
                "`model.lora` and `--adapter` are for real models\nhint: add `--model DIR_OR_GGUF`"
            );
        }
        if self.model.lora.is_some() && !self.model.adapter.is_empty() {
            bail!(
                "both `model.lora` (fresh adapters) and `--adapter` (trained ones) are given\nhint: drop `model.lora` to train the adapter further with its own settings"
            );
        }
        if let Some(lora) = &self.model.lora {
            lora.validate()?;
        }
        if self.model.base_dtype == ModelDtype::Bf16 {
            if !adapters {
                bail!(
                    "`model.base_dtype = \"bf16\"` stores a frozen base, which only a LoRA run has\nhint: add `--set model.lora.rank=16`, or use `model.dtype = \"bf16\"` (bf16 compute, f32 master weights)"
                );
            }
            if self.model.dtype != ModelDtype::Bf16 {
                bail!(
                    "`model.base_dtype = \"bf16\"` needs bf16 compute\nhint: add `--set 'model.dtype=\"bf16\"'`"
                );
            }
        }
        let task = self.task()?;
        self.device_spec()?.device()?;
        self.build_objective(task.as_ref())?;
        if self.eval.problems == 0 {
            bail!("`eval.problems` must be at least 1");
        }
        Ok(())
    }

    /// The trainer's part of the configuration.
    pub fn trainer(&self) -> TrainerConfig {
        TrainerConfig {
            rollout: self.rollout.clone(),
            update: self.update.clone(),
            optim: self.optim.clone(),
            checkpoint_every: self.checkpoint_every,
            checkpoint_keep: self.checkpoint_keep,
            peak_tflops: self.peak_tflops,
        }
    }

    /// The task.
    pub fn task(&self) -> Result<Box<dyn Task>> {
        Ok((registry::task(&self.task)?.build)(&self.data)?)
    }

    /// The device.
    pub fn device_spec(&self) -> Result<DeviceSpec> {
        Ok(self.device.parse()?)
    }

    /// The response length cap.
    pub fn max_new_tokens(&self, task: &dyn Task) -> usize {
        match self.rollout.max_new_tokens {
            0 => task.max_new_tokens(),
            n => n,
        }
    }

    /// The objective.
    pub fn build_objective(&self, task: &dyn Task) -> Result<Box<dyn Objective>> {
        Ok(self.objective.build(&BuildContext {
            max_new_tokens: self.max_new_tokens(task),
            group_size: self.rollout.group_size,
            steps: self.steps,
            temperature: self.rollout.temperature,
            evaluation: false,
        })?)
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a resolved config serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_model_takes_the_reference_defaults_and_the_user_still_wins() {
        crate::link_all();
        let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/llm/qwen2");
        let data = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/data/add-easy-train.jsonl"
        );
        let resolve = |algo: &'static str, extra: &[&str]| {
            let mut sets = vec![
                format!("model.source={model:?}"),
                format!("data.train=[{data:?}]"),
                "task=\"jsonl\"".to_string(),
            ];
            sets.extend(extra.iter().map(|s| s.to_string()));
            RunConfig::resolve(&Overrides {
                algo: Some(algo),
                sets,
                ..Default::default()
            })
            .unwrap()
        };
        let grpo = resolve("grpo", &[]);
        assert_eq!(grpo.optim.lr, 1e-6);
        assert_eq!(
            (grpo.update.micro_batch_size, grpo.update.micro_batch_tokens),
            (64, 4096)
        );
        // The user's value wins.
        assert_eq!(resolve("grpo", &["optim.lr=3e-6"]).optim.lr, 3e-6);
        // DisCO keeps its own run default (4 optimizer steps per batch) with a real model, and
        // OPSD its one completion per prompt over the generic G = 8; the user still wins.
        assert_eq!(resolve("disco", &[]).update.mini_batches, 4);
        assert_eq!(resolve("opsd", &[]).rollout.group_size, 1);
        assert_eq!(
            resolve("opsd", &["rollout.group_size=4"])
                .rollout
                .group_size,
            4
        );
    }

    #[test]
    fn the_failing_objective_key_is_named() {
        crate::link_all();
        let mut objective = default_objective_table("grpo").unwrap();
        objective
            .as_table_mut()
            .unwrap()
            .insert("loss_agg".into(), "mean".into());
        assert_eq!(
            failing_objective_key(&objective).as_deref(),
            Some("loss_agg")
        );
    }
}
