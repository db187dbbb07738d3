//! `zoo export --merge`: a LoRA checkpoint as a plain Hugging Face model folder, the adapters
//! folded into the base's weights, loadable by transformers (and by `zoo --model`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use zoo_core::Policy;
use zoo_core::burn::tensor::Device;

use crate::cli::ExportArgs;

/// Runs `zoo export`.
pub fn run(args: &ExportArgs) -> Result<()> {
    if !args.merge {
        bail!(
            "`zoo export` writes merged models only\nhint: add `--merge`; the checkpoint folder itself is already a PEFT adapter"
        );
    }
    let base = match &args.model {
        Some(model) => model.clone(),
        None => base_of(&args.checkpoint)?,
    };
    let device = Device::flex();
    let policy = crate::base::load_llm(&base, &device, Default::default())?
        .with_adapter(&args.checkpoint, false, &base.to_string_lossy())
        .with_context(|| format!("cannot load the adapter `{}`", args.checkpoint.display()))?
        .merged();
    if args.out.join("config.json").exists() {
        bail!(
            "`{}` already holds a model\nhint: choose another `--out`",
            args.out.display()
        );
    }
    fs_err::create_dir_all(&args.out)
        .with_context(|| format!("cannot create `{}`", args.out.display()))?;
    zoo_core::checkpoint::save_safetensors(
        &args.out.join("model.safetensors"),
        &policy.parameters(),
        &[("format".to_string(), "pt".to_string())].into(),
    )?;
    policy.write_model_files(&args.out)?;
    println!(
        "wrote `{}`: `{}` with the adapters of `{}` merged ({:.1}M parameters)",
        args.out.display(),
        base.display(),
        args.checkpoint.display(),
        policy.num_params() as f64 / 1e6
    );
    Ok(())
}

/// The base model an adapter folder names (`base_model_name_or_path`).
fn base_of(checkpoint: &Path) -> Result<PathBuf> {
    let path = checkpoint.join("adapter_config.json");
    let text = fs_err::read_to_string(&path)
        .with_context(|| format!("`{}` is not an adapter folder", checkpoint.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("`{}` is not JSON", path.display()))?;
    match json["base_model_name_or_path"].as_str() {
        Some(base) if !base.is_empty() => Ok(PathBuf::from(base)),
        _ => bail!(
            "`{}` names no base model\nhint: give it with `--model DIR_OR_GGUF`",
            path.display()
        ),
    }
}
