//! LoRA adapters as PEFT makes them (`peft/tuners/lora/layer.py`, `Linear`): on each targeted
//! projection `y = x Wᵀ + b + (alpha / r) · (x Aᵀ) Bᵀ`, `A` `[r, in]` drawn as
//! `nn.init.kaiming_uniform_(A, a=√5)` (uniform in ±1/√in), `B` `[out, r]` zeros, so a fresh
//! adapter leaves the model exactly as it was. The base weights are frozen (no gradient, no
//! optimizer state); the trainer sees only the adapters' parameters.
//!
//! Files are PEFT's: `adapter_config.json` and `adapter_model.safetensors` with keys
//! `base_model.model.<checkpoint path>.lora_A.weight` (`peft.PeftModel.from_pretrained` loads
//! them onto the base; `save_pretrained` writes them so).

use std::collections::BTreeMap;
use std::path::Path;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use zoo_core::burn::module::{Module, ModuleMapper, Param};
use zoo_core::burn::prelude::*;
use zoo_core::burn::tensor::{FloatDType, TensorData};
use zoo_core::policy::NamedTensors;
use zoo_core::{Error, Result};

use crate::llama::CausalLm;

/// The projections an adapter may target, by PEFT's module names.
pub const TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// PEFT's key prefix in `adapter_model.safetensors` (a `PeftModel` wraps the model twice).
const PEFT_PREFIX: &str = "base_model.model.";

/// `model.lora`: where adapters go and how big they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraConfig {
    /// The adapters' rank `r` (PEFT's `r`).
    pub rank: usize,
    /// The scale's numerator: updates are scaled by `alpha / rank` (PEFT's `lora_alpha`).
    pub alpha: f64,
    /// The projections to adapt, by name ([`TARGETS`]).
    pub targets: Vec<String>,
    /// Dropout on the adapters' input; only 0 is implemented (RL recipes use 0).
    pub dropout: f64,
    /// How fresh adapters are drawn: `"peft"` (PEFT's default: `A` Kaiming-uniform, `B` 0).
    pub init: String,
}

impl Default for LoraConfig {
    /// Rank 16, alpha 32 on every projection (verl's and TRL's usual RL setting).
    fn default() -> Self {
        Self {
            rank: 16,
            alpha: 32.0,
            targets: TARGETS.iter().map(|t| t.to_string()).collect(),
            dropout: 0.0,
            init: "peft".into(),
        }
    }
}

impl LoraConfig {
    /// Checks ranges and names; the message names the key.
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 {
            return Err(Error::Config(
                "`model.lora.rank` must be at least 1\nhint: 8-64 is usual; drop `model.lora` to train every weight".into(),
            ));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(Error::Config(format!(
                "`model.lora.alpha` must be positive, got {}",
                self.alpha
            )));
        }
        if self.targets.is_empty() {
            return Err(Error::Config(format!(
                "`model.lora.targets` is empty\nhint: name some of {}",
                TARGETS.join(", ")
            )));
        }
        for target in &self.targets {
            if !TARGETS.contains(&target.as_str()) {
                return Err(Error::Config(format!(
                    "`model.lora.targets` names `{target}`, which is not a projection of this model family\nhint: the targets are {}",
                    TARGETS.join(", ")
                )));
            }
        }
        if self.dropout != 0.0 {
            return Err(Error::Config(format!(
                "`model.lora.dropout = {}`: only 0 is implemented\nhint: RL recipes (verl, TRL) train adapters without dropout",
                self.dropout
            )));
        }
        if self.init != "peft" {
            return Err(Error::Config(format!(
                "`model.lora.init = \"{}\"`: only \"peft\" (A Kaiming-uniform, B zero) is implemented",
                self.init
            )));
        }
        Ok(())
    }

    /// `alpha / rank`.
    pub fn scale(&self) -> f32 {
        (self.alpha / self.rank as f64) as f32
    }
}

/// Freezes every parameter of the base (all but the adapters'): no gradient, no optimizer
/// state. With `bf16`, also stores the base's weights in bf16 (half the memory; the compute
/// dtype must then be bf16, which casts every weight to bf16 where it is used anyway).
struct FreezeBase {
    path: Vec<String>,
    bf16: bool,
}

impl ModuleMapper for FreezeBase {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.path.iter().any(|p| p.starts_with("lora_")) {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        let tensor = tensor.detach().set_require_grad(false);
        let tensor = if self.bf16 {
            tensor.cast(FloatDType::BF16)
        } else {
            tensor
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// The adapters' parameter count for `model` under `config`: `r · (in + out)` per targeted
/// projection of every layer.
pub fn trainable_params(model: &crate::LlmConfig, config: &LoraConfig) -> usize {
    let (d, f) = (model.hidden_size, model.intermediate_size);
    let q = model.num_attention_heads * model.head_dim;
    let kv = model.num_key_value_heads * model.head_dim;
    let per_layer: usize = config
        .targets
        .iter()
        .map(|t| match t.as_str() {
            "q_proj" => d + q,
            "k_proj" | "v_proj" => d + kv,
            "o_proj" => q + d,
            "gate_proj" | "up_proj" | "down_proj" => d + f,
            _ => 0,
        })
        .sum();
    config.rank * per_layer * model.num_hidden_layers
}

/// `model` with fresh adapters on `config.targets`, drawn from `rng` in layer order, and its
/// base frozen (stored in bf16 with `bf16_base`).
pub fn attach(
    model: CausalLm,
    config: &LoraConfig,
    rng: &mut ChaCha8Rng,
    bf16_base: bool,
) -> Result<CausalLm> {
    config.validate()?;
    let mut model = freeze(model, bf16_base);
    let device = device_of(&model);
    let r = config.rank;
    for (_, target, linear) in model.projections_mut() {
        if !config.targets.iter().any(|t| t == target) {
            continue;
        }
        let [out, input] = linear.shape();
        let bound = 1.0 / (input as f64).sqrt();
        let a: Vec<f32> = (0..r * input)
            .map(|_| rng.random_range(-bound..bound) as f32)
            .collect();
        let a = Tensor::<2>::from_data(TensorData::new(a, [r, input]), &device);
        let b = Tensor::<2>::zeros([out, r], &device);
        linear.attach(a, b, config.scale());
    }
    Ok(model)
}

fn freeze(model: CausalLm, bf16: bool) -> CausalLm {
    model.map(&mut FreezeBase {
        path: Vec::new(),
        bf16,
    })
}

/// Whether a parameter path belongs to an adapter.
pub fn is_adapter(name: &str) -> bool {
    name.contains(".lora_a.") || name.contains(".lora_b.")
}

/// zoo's parameter path → PEFT's key (`model.layers.0.self_attn.q_proj.lora_a.weight` →
/// `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`).
pub fn peft_key(name: &str) -> String {
    format!(
        "{PEFT_PREFIX}{}",
        name.replace(".lora_a.", ".lora_A.")
            .replace(".lora_b.", ".lora_B.")
    )
}

/// PEFT's key → zoo's parameter path, or `None` for a key that is not a LoRA matrix.
pub fn zoo_name(key: &str) -> Option<String> {
    let rest = key.strip_prefix(PEFT_PREFIX)?;
    // PEFT writes the adapter's name only when it is not "default"; saved files omit it.
    let rest = rest
        .replace(".lora_A.default.", ".lora_A.")
        .replace(".lora_B.default.", ".lora_B.");
    (rest.contains(".lora_A.") || rest.contains(".lora_B.")).then(|| {
        rest.replace(".lora_A.", ".lora_a.")
            .replace(".lora_B.", ".lora_b.")
    })
}

/// PEFT's `adapter_config.json` for `config`, on the base `base` (its name or path).
pub fn peft_config(config: &LoraConfig, base: &str) -> serde_json::Value {
    serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": config.rank,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": config.targets,
        "bias": "none",
        "fan_in_fan_out": false,
        "init_lora_weights": true,
        "inference_mode": true,
        "use_rslora": false,
        "use_dora": false,
        "modules_to_save": null,
        "layers_to_transform": null,
        "rank_pattern": {},
        "alpha_pattern": {},
    })
}

/// Writes `adapters` (zoo's paths) as PEFT's `adapter_model.safetensors` and
/// `adapter_config.json` into `dir`.
pub fn write_peft(
    dir: &Path,
    adapters: &NamedTensors,
    config: &LoraConfig,
    base: &str,
) -> Result<()> {
    let renamed: NamedTensors = adapters
        .iter()
        .map(|(name, t)| (peft_key(name), t.clone()))
        .collect();
    zoo_core::checkpoint::save_safetensors(
        &dir.join("adapter_model.safetensors"),
        &renamed,
        &BTreeMap::from([("format".to_string(), "pt".to_string())]),
    )?;
    let json = serde_json::to_string_pretty(&peft_config(config, base)).expect("JSON serializes");
    zoo_core::checkpoint::write_atomic(&dir.join("adapter_config.json"), json.as_bytes())
}

/// An adapter's matrices by zoo's parameter path: shape and row-major f32 values.
pub type Matrices = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Reads a PEFT adapter folder: its settings, and its matrices by zoo's parameter paths
/// (`[r, in]` / `[out, r]`, f32). Refuses what zoo's adapters cannot express (DoRA, rsLoRA,
/// per-module ranks, biases, extra trained modules), naming the key.
pub fn read_peft(dir: &Path) -> Result<(LoraConfig, Matrices)> {
    let config_path = dir.join("adapter_config.json");
    let bad = |reason: String, hint: &str| Error::BadFile {
        path: config_path.clone(),
        reason,
        hint: hint.to_string(),
    };
    let text =
        fs_err::read_to_string(&config_path).map_err(|e| Error::io("read", &config_path, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        bad(
            format!("not JSON ({e})"),
            "write it again with PEFT's save_pretrained",
        )
    })?;
    if json["peft_type"].as_str() != Some("LORA") {
        return Err(bad(
            format!("`peft_type` is {}, not \"LORA\"", json["peft_type"]),
            "zoo loads LoRA adapters",
        ));
    }
    for (key, unsupported) in [
        ("use_dora", json["use_dora"].as_bool() == Some(true)),
        ("use_rslora", json["use_rslora"].as_bool() == Some(true)),
        (
            "rank_pattern",
            json["rank_pattern"]
                .as_object()
                .is_some_and(|o| !o.is_empty()),
        ),
        (
            "alpha_pattern",
            json["alpha_pattern"]
                .as_object()
                .is_some_and(|o| !o.is_empty()),
        ),
        (
            "modules_to_save",
            !json["modules_to_save"].is_null() && json["modules_to_save"] != serde_json::json!([]),
        ),
        (
            "layers_to_transform",
            !json["layers_to_transform"].is_null(),
        ),
        ("bias", json["bias"].as_str().is_some_and(|b| b != "none")),
    ] {
        if unsupported {
            return Err(bad(
                format!(
                    "`{key}` is {}, which zoo's adapters do not support",
                    json[key]
                ),
                "train the adapter with plain LoRA (one rank and alpha, no DoRA/rsLoRA, no extra modules)",
            ));
        }
    }
    let targets: Vec<String> = match &json["target_modules"] {
        serde_json::Value::Array(list) => list
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        serde_json::Value::String(one) => vec![one.clone()],
        other => {
            return Err(bad(
                format!("`target_modules` is {other}"),
                "list the projections by name",
            ));
        }
    };
    let config = LoraConfig {
        rank: json["r"].as_u64().unwrap_or(0) as usize,
        alpha: json["lora_alpha"].as_f64().unwrap_or(0.0),
        targets,
        dropout: 0.0,
        init: "peft".into(),
    };
    config
        .validate()
        .map_err(|e| bad(e.to_string(), "the adapter's settings"))?;
    let weights_path = dir.join("adapter_model.safetensors");
    use crate::weights::WeightSource;
    let source = crate::weights::SafetensorsDir::open_file(&weights_path)?;
    let mut out = BTreeMap::new();
    for (key, shape) in source.tensor_shapes() {
        let Some(name) = zoo_name(&key) else {
            return Err(Error::BadFile {
                path: weights_path.clone(),
                reason: format!("`{key}` is not a LoRA matrix of a PEFT causal-LM adapter"),
                hint: "zoo loads LoRA A/B matrices only (no bias, no modules_to_save)".into(),
            });
        };
        out.insert(name, (shape, source.tensor_f32(&key)?));
    }
    Ok((config, out))
}

/// `model` with the adapter `(config, matrices)` (from [`read_peft`]) loaded onto it, its base
/// frozen. Every targeted projection must have its two matrices with the shapes the base
/// implies; the error names the key.
pub fn load(
    model: CausalLm,
    config: &LoraConfig,
    matrices: &Matrices,
    bf16_base: bool,
    path: &Path,
) -> Result<CausalLm> {
    let mut model = freeze(model, bf16_base);
    let device = device_of(&model);
    let mut used = 0;
    for (prefix, target, linear) in model.projections_mut() {
        if !config.targets.iter().any(|t| t == target) {
            continue;
        }
        let [out, input] = linear.shape();
        let mut take = |which: &str, shape: [usize; 2]| -> Result<Tensor<2>> {
            let name = format!("{prefix}.{which}.weight");
            let (got, values) = matrices.get(&name).ok_or_else(|| Error::BadFile {
                path: path.to_path_buf(),
                reason: format!("no `{}` for the base's `{prefix}`", peft_key(&name)),
                hint: "the adapter was trained on another base model (or another number of layers)"
                    .into(),
            })?;
            if got.as_slice() != shape {
                return Err(Error::BadFile {
                    path: path.to_path_buf(),
                    reason: format!(
                        "`{}` has shape {got:?}, the base's `{prefix}` needs {shape:?}",
                        peft_key(&name)
                    ),
                    hint: "the adapter was trained on another base model".into(),
                });
            }
            used += 1;
            Ok(Tensor::from_data(
                TensorData::new(values.clone(), shape),
                &device,
            ))
        };
        let a = take("lora_a", [config.rank, input])?;
        let b = take("lora_b", [out, config.rank])?;
        linear.attach(a, b, config.scale());
    }
    if used != matrices.len() {
        let known: std::collections::BTreeSet<String> = model
            .projections_mut()
            .into_iter()
            .flat_map(|(p, _, _)| [format!("{p}.lora_a.weight"), format!("{p}.lora_b.weight")])
            .collect();
        let stray = matrices
            .keys()
            .find(|k| !known.contains(*k))
            .or_else(|| matrices.keys().next())
            .expect("more matrices than used");
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            reason: format!(
                "`{}` has no projection of this base among the adapter's targets",
                peft_key(stray)
            ),
            hint: "the adapter was trained on another base model".into(),
        });
    }
    Ok(model)
}

/// `model` with every adapter folded into its weight (f32), the plain model PEFT's
/// `merge_and_unload` gives.
pub fn merge(mut model: CausalLm) -> CausalLm {
    for (_, _, linear) in model.projections_mut() {
        linear.merge();
    }
    model
}

/// The device of `model`'s parameters.
fn device_of(model: &CausalLm) -> Device {
    model
        .devices()
        .into_iter()
        .next()
        .expect("a model has parameters")
}
