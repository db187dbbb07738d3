//! `zoo generate`: one response of a real language model to a prompt, rendered through the
//! model's chat template.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::json;
use zoo_core::burn::tensor::Device;
use zoo_core::policy::check_context;
use zoo_core::{Policy, SamplingConfig, rng};
use zoo_llm::LlmPolicy;
use zoo_llm::tokenizer::ChatOptions;

use crate::cli::GenerateArgs;

/// Loads `--model` (with the PEFT adapter `adapter` on it) on `--device` for a command that
/// only runs the model.
pub fn load_model(
    model: &Path,
    adapter: Option<&Path>,
    device: &str,
    chat: ChatOptions,
) -> Result<LlmPolicy> {
    let device: Device = device.parse::<zoo_core::device::DeviceSpec>()?.device()?;
    let policy = crate::base::load_llm(model, &device, chat)?;
    match adapter {
        Some(dir) => Ok(policy
            .with_adapter(dir, false, &model.to_string_lossy())
            .with_context(|| format!("cannot load the adapter `{}`", dir.display()))?),
        None => Ok(policy),
    }
}

/// Runs `zoo generate`.
pub fn run(args: &GenerateArgs) -> Result<()> {
    if args.max_new_tokens == 0 {
        bail!("`--max-new-tokens` must be at least 1");
    }
    if !(args.temperature >= 0.0 && args.temperature.is_finite()) {
        bail!(
            "`--temperature` must be 0 (greedy) or positive, got {}",
            args.temperature
        );
    }
    let chat = ChatOptions {
        system: args.system.clone(),
        raw: args.raw,
        ..Default::default()
    };
    let policy = load_model(&args.model, args.adapter.as_deref(), &args.device, chat)?;
    let context = policy.tokenizer().encode_prompt(&args.prompt)?;
    if context.is_empty() {
        bail!("the prompt encodes to no token\nhint: give a non-empty `--prompt`, or drop `--raw`");
    }
    check_context(&policy, context.len(), args.max_new_tokens)?;
    let sampling = SamplingConfig {
        temperature: args.temperature,
        max_new_tokens: args.max_new_tokens,
        min_new_tokens: 0,
    };
    let mut stream = rng::stream(args.seed, 0, "generate");
    let sample = policy
        .sample(std::slice::from_ref(&context), &sampling, &mut stream)
        .remove(0);
    let text = policy.tokenizer().decode(&sample.tokens);
    if args.json {
        let line = json!({
            "prompt": args.prompt,
            "context_ids": context,
            "response_ids": sample.tokens,
            "logprobs": sample.logprobs,
            "finished": sample.finished,
            "text": text,
        });
        println!("{line}");
    } else {
        println!("{text}");
    }
    Ok(())
}
