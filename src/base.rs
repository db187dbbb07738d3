//! The base policy: the warm-started model RL starts from, cached by its settings.
//!
//! Its key hashes the task and every warm-start setting (seed, architecture, recipe), so all
//! runs and all algorithms with the same settings share one base policy. Lookup order: the
//! cache folder, then the checkpoints shipped in `assets/base/` (regenerated bit for bit by
//! `zoo sft` with the default settings); otherwise `zoo train` trains it and says so.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use zoo_core::burn::tensor::Device;
use zoo_core::{Task, rng, sft};
use zoo_models::TinyPolicy;

use crate::commands::progress::Progress;
use crate::run_config::{ModelConfig, WarmStartConfig};

/// Where cached base policies live: `$ZOO_CACHE_DIR`, else `$XDG_CACHE_HOME/zoo`, else
/// `~/.cache/zoo`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ZOO_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("zoo");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("zoo"),
        None => PathBuf::from(".zoo-cache"),
    }
}

/// The folder of base policies shipped with the source.
pub fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join("base")
}

/// Bumped whenever code changes what a warm start produces (initialization, data mix,
/// tokenizer), so that stale cached or shipped base policies are not reused.
pub const RECIPE_VERSION: u32 = 2;

/// The cache key of the base policy for `task` and `settings`: `<task>-<16 hex digits>`.
/// A task's own [`Task::warm_start_version`] enters the hash when it is not 0, so bumping it
/// retires that task's cached policies and no other's.
pub fn key(task: &dyn Task, settings: &WarmStartConfig) -> String {
    let name = task.name();
    let task_version = match task.warm_start_version() {
        0 => String::new(),
        v => format!("task_recipe = {v}\n"),
    };
    let text = format!(
        "recipe = {RECIPE_VERSION}\n{task_version}task = {name:?}\n{}",
        toml::to_string(settings).expect("settings serialize")
    );
    format!("{name}-{:016x}", rng::fnv1a(text.as_bytes()))
}

/// Where a base policy came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Found in the cache folder.
    Cache(PathBuf),
    /// Found among the checkpoints shipped with the source.
    Shipped(PathBuf),
    /// Trained now and stored at this path.
    Trained(PathBuf),
}

/// Trains the base policy for `task` and `settings` from scratch.
pub fn train(
    task: &dyn Task,
    settings: &WarmStartConfig,
    device: &Device,
    progress: &Progress,
) -> Result<TinyPolicy> {
    let mut init_rng = rng::stream(settings.seed, 0, "init");
    let mut policy = TinyPolicy::new(&settings.model, &mut init_rng, device)?;
    let bar = progress.bar(settings.sft.steps as u64, "warm start");
    let start = Instant::now();
    sft::run(&mut policy, task, &settings.sft, settings.seed, &mut |s| {
        bar.set_position(s.step as u64);
        bar.set_message(format!("loss {:.3}", s.loss));
        if s.step % 25 == 0 || s.step == settings.sft.steps {
            progress.line(&format!(
                "warm start {:>4}/{}  loss {:.4}  lr {:.2e}  {:.2}s/step",
                s.step, settings.sft.steps, s.loss, s.lr, s.seconds
            ));
        }
    })?;
    bar.finish_and_clear();
    progress.line(&format!(
        "warm start done in {:.0}s",
        start.elapsed().as_secs_f64()
    ));
    Ok(policy)
}

/// Saves `policy` as the cached base policy for `task` and `settings`.
pub fn store(policy: &TinyPolicy, task: &dyn Task, settings: &WarmStartConfig) -> Result<PathBuf> {
    let dir = cache_dir().join("base");
    fs_err::create_dir_all(&dir).context("cannot create the cache folder (set `ZOO_CACHE_DIR`)")?;
    let path = dir.join(format!("{}.safetensors", key(task, settings)));
    let metadata = zoo_core::checkpoint::Metadata::from([
        ("zoo.task".to_string(), task.name().to_string()),
        (
            "zoo.warm_start".to_string(),
            toml::to_string(settings).expect("settings serialize"),
        ),
    ]);
    policy.save(&path, metadata)?;
    Ok(path)
}

/// The base policy for `task` and `settings`: from the cache, from the shipped checkpoints,
/// or trained now (then cached). Never recomputed silently: `progress` says which.
pub fn load_or_train(
    task: &dyn Task,
    settings: &WarmStartConfig,
    device: &Device,
    progress: &Progress,
) -> Result<(TinyPolicy, Origin)> {
    // The tiny decoder reads only the CPU world's 23 symbols: refuse other text up front.
    let mut probe_rng = rng::stream(0, 0, "tokenizer-check");
    for problem in task.sample_problems(&mut probe_rng, 1) {
        zoo_core::policy::Tokenizer::encode_prompt(&zoo_models::CharTokenizer, &problem.prompt)
            .with_context(|| {
                format!(
                    "task `{}` has text the tiny decoder's character tokenizer cannot read\nhint: the data-set tasks need an LLM policy (Llama/Qwen from safetensors), not in this build yet; use `--task addition` or `--task mod10` on the CPU default",
                    task.name()
                )
            })?;
    }
    let name = format!("{}.safetensors", key(task, settings));
    for (dir, shipped) in [(cache_dir().join("base"), false), (shipped_dir(), true)] {
        let path = dir.join(&name);
        if path.exists() {
            let policy = TinyPolicy::load(&path, device)
                .with_context(|| format!("cannot load the base policy `{}`", path.display()))?;
            let origin = if shipped {
                Origin::Shipped(path)
            } else {
                Origin::Cache(path)
            };
            return Ok((policy, origin));
        }
    }
    progress.line(&format!(
        "no base policy for these warm-start settings (`{name}`): training it now with `zoo sft` settings"
    ));
    let policy = train(task, settings, device, progress)?;
    let path = store(&policy, task, settings)?;
    Ok((policy, Origin::Trained(path)))
}

/// Loads the real language model at `path` (`--model`: a Hugging Face folder or a `.gguf`
/// file) on `device`.
pub fn load_llm(
    path: &Path,
    device: &Device,
    chat: zoo_llm::tokenizer::ChatOptions,
) -> Result<zoo_llm::LlmPolicy> {
    zoo_llm::source::load(path, device, chat)
        .with_context(|| format!("cannot load the model `{}`", path.display()))
}

/// The policy a run starts from: the real language model of `model` when it names one,
/// otherwise the tiny decoder's base policy for `task` ([`load_or_train`]). Returns the
/// policy and a line saying where it came from.
///
/// With `model.lora` (drawn from `seed`) or `model.adapter`, only LoRA adapters train.
pub fn load_policy(
    model: &ModelConfig,
    task: &dyn Task,
    settings: &WarmStartConfig,
    seed: u64,
    device: &Device,
    progress: &Progress,
) -> Result<(Box<dyn zoo_core::Policy>, String)> {
    if model.is_llm() {
        let path = Path::new(&model.source);
        let start = Instant::now();
        let policy = load_llm(path, device, model.chat.clone())?
            .with_chunk_positions(model.chunk_positions)
            .with_compute(model.dtype.compute())
            .with_recompute(model.recompute);
        let policy = with_adapters(policy, model, seed)?;
        let adapters = match policy.lora() {
            Some(lora) => format!(
                ", LoRA r {} alpha {} on {}: {:.2}M trainable",
                lora.rank,
                lora.alpha,
                lora.targets.join("/"),
                zoo_core::Policy::parameters(&policy)
                    .values()
                    .map(|t| t.value.dims()[0])
                    .sum::<usize>() as f64
                    / 1e6
            ),
            None => String::new(),
        };
        let line = format!(
            "loaded `{}`: {} ({:.1}M parameters, {} compute{adapters}) in {:.1}s",
            path.display(),
            policy.config().family.architecture(),
            policy.num_params() as f64 / 1e6,
            match model.dtype {
                crate::run_config::ModelDtype::F32 => "f32",
                crate::run_config::ModelDtype::Bf16 => "bf16",
            },
            start.elapsed().as_secs_f64()
        );
        return Ok((Box::new(policy), line));
    }
    let (policy, origin) = load_or_train(task, settings, device, progress)?;
    let line = match origin {
        Origin::Cache(p) => format!("reusing the cached base policy `{}`", p.display()),
        Origin::Shipped(p) => format!("reusing the shipped base policy `{}`", p.display()),
        Origin::Trained(p) => format!("base policy trained and cached at `{}`", p.display()),
    };
    Ok((Box::new(policy), line))
}

/// `policy` with the adapters `model` asks for: a PEFT folder (`model.adapter`), fresh
/// adapters (`model.lora`, drawn from `seed`), or none.
pub fn with_adapters(
    policy: zoo_llm::LlmPolicy,
    model: &ModelConfig,
    seed: u64,
) -> Result<zoo_llm::LlmPolicy> {
    let bf16_base = model.base_dtype == crate::run_config::ModelDtype::Bf16;
    if !model.adapter.is_empty() {
        return policy
            .with_adapter(Path::new(&model.adapter), bf16_base, &model.source)
            .with_context(|| format!("cannot load the adapter `{}`", model.adapter));
    }
    match &model.lora {
        Some(lora) => Ok(policy.with_lora(lora, seed, bf16_base, &model.source)?),
        None => Ok(policy),
    }
}

/// Checks that the longest prompt among `problems` plus `max_new_tokens` fits the policy's
/// context, before any work.
pub fn check_prompts_fit(
    policy: &dyn zoo_core::Policy,
    problems: &[zoo_core::Problem],
    max_new_tokens: usize,
) -> Result<()> {
    if policy.max_context().is_none() {
        return Ok(());
    }
    let mut longest = 0;
    for problem in problems {
        let tokens = policy.tokenizer().encode_prompt(&problem.prompt)?.len();
        if tokens == 0 {
            anyhow::bail!(
                "the prompt {:?} encodes to no token\nhint: give the task a non-empty prompt template, or drop `model.chat.raw`",
                problem.prompt
            );
        }
        longest = longest.max(tokens);
    }
    zoo_core::policy::check_context(policy, longest, max_new_tokens)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &str) -> Box<dyn Task> {
        crate::link_all();
        (zoo_core::registry::task(name)
            .expect("a registered task")
            .build)(&toml::Table::new())
        .expect("the task builds")
    }

    #[test]
    fn the_default_keys_name_the_shipped_checkpoints() {
        // The default task (`addition-habit`) and `addition`, both with the default settings.
        for name in ["addition-habit", "addition"] {
            let key = key(task(name).as_ref(), &WarmStartConfig::default());
            let path = shipped_dir().join(format!("{key}.safetensors"));
            assert!(path.exists(), "`{}` is not shipped", path.display());
        }
    }

    #[test]
    fn a_task_warm_start_version_enters_its_key_only() {
        let settings = WarmStartConfig::default();
        let habit = task("addition-habit");
        assert_eq!(habit.warm_start_version(), 1);
        let versioned = key(habit.as_ref(), &settings);
        // The same name and settings without the version hash to the old key.
        let text = format!(
            "recipe = {RECIPE_VERSION}\ntask = \"addition-habit\"\n{}",
            toml::to_string(&settings).unwrap()
        );
        let unversioned = format!("addition-habit-{:016x}", rng::fnv1a(text.as_bytes()));
        assert_ne!(versioned, unversioned);
        assert!(versioned.starts_with("addition-habit-"));
    }
}
