//! The architecture, read from a Hugging Face `config.json`.
//!
//! Both key styles are read: transformers 4.x (`rope_theta`, `rope_scaling`, `torch_dtype`) and
//! 5.x (`rope_parameters`, `dtype`). Settings this implementation does not compute (sliding
//! window, mixture of experts, partial rotary, other RoPE types, MLP bias, other activations)
//! are refused by key, so a checkpoint never loads into a model that computes something else.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Which Hugging Face model class the weights belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// `LlamaForCausalLM` (SmolLM2, Llama-3.x).
    Llama,
    /// `Qwen2ForCausalLM` (Qwen2, Qwen2.5): bias on q/k/v.
    Qwen2,
    /// `Qwen3ForCausalLM`: RMSNorm over `head_dim` on q and k before RoPE.
    Qwen3,
}

impl Family {
    /// The `architectures` entry of `config.json`.
    pub fn architecture(self) -> &'static str {
        match self {
            Family::Llama => "LlamaForCausalLM",
            Family::Qwen2 => "Qwen2ForCausalLM",
            Family::Qwen3 => "Qwen3ForCausalLM",
        }
    }

    /// The `model_type` of `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Qwen2 => "qwen2",
            Family::Qwen3 => "qwen3",
        }
    }
}

/// Llama-3.x frequency scaling (`rope_type: "llama3"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Llama3Scaling {
    /// Divisor of the low frequencies.
    pub factor: f64,
    /// Wavelengths above `original_max_position_embeddings / low_freq_factor` are divided by `factor`.
    pub low_freq_factor: f64,
    /// Wavelengths below `original_max_position_embeddings / high_freq_factor` are kept.
    pub high_freq_factor: f64,
    /// The context length the model was pre-trained with.
    pub original_max_position_embeddings: f64,
}

/// The architecture of a Llama-family decoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmConfig {
    /// The model class.
    pub family: Family,
    /// Rows of the embedding (and of the head): may exceed the tokenizer's size.
    pub vocab_size: usize,
    /// Model width `d`.
    pub hidden_size: usize,
    /// SwiGLU inner width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than the query heads).
    pub num_key_value_heads: usize,
    /// Width of one head (Qwen3 sets it explicitly; else `hidden_size / num_attention_heads`).
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base θ.
    pub rope_theta: f64,
    /// Llama-3 frequency scaling, if any.
    pub rope_llama3: Option<Llama3Scaling>,
    /// Longest sequence the model supports.
    pub max_position_embeddings: usize,
    /// Whether the head shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v projections (Qwen2 always; Llama/Qwen3 when `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on the output projection (Llama/Qwen3 with `attention_bias`).
    pub o_bias: bool,
    /// The dtype the checkpoint stores (`torch_dtype` / `dtype`), for information.
    pub stored_dtype: Option<String>,
    /// `bos_token_id`.
    pub bos_token_id: Option<u32>,
    /// `eos_token_id` (an int or a list in `config.json`).
    pub eos_token_ids: Vec<u32>,
}

/// A `config.json` that cannot be served: the message names the key.
pub type ConfigError = String;

fn get_usize(c: &Value, key: &str) -> Result<Option<usize>, ConfigError> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| format!("`{key}` must be a non-negative integer, got {v}")),
    }
}

fn need_usize(c: &Value, key: &str) -> Result<usize, ConfigError> {
    get_usize(c, key)?.ok_or_else(|| format!("`{key}` is missing"))
}

fn get_f64(c: &Value, key: &str) -> Result<Option<f64>, ConfigError> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be a number, got {v}")),
    }
}

fn get_bool(c: &Value, key: &str) -> Result<Option<bool>, ConfigError> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be true or false, got {v}")),
    }
}

/// Token ids given as an int or a list of ints (`eos_token_id`); absent or null is none.
pub fn token_ids(value: Option<&Value>) -> Result<Vec<u32>, ConfigError> {
    let one = |v: &Value| {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("`{v}` is not a token id"))
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list.iter().map(one).collect(),
        Some(v) => Ok(vec![one(v)?]),
    }
}

impl LlmConfig {
    /// Reads a parsed `config.json`; the error names the unsupported or invalid key.
    pub fn from_hf(c: &Value) -> Result<Self, ConfigError> {
        if !c.is_object() {
            return Err("the file is not a JSON object".into());
        }
        let model_type = c.get("model_type").and_then(Value::as_str);
        let architecture = c
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str);
        let family = match (architecture, model_type) {
            (Some("LlamaForCausalLM"), _) | (None, Some("llama")) => Family::Llama,
            (Some("Qwen2ForCausalLM"), _) | (None, Some("qwen2")) => Family::Qwen2,
            (Some("Qwen3ForCausalLM"), _) | (None, Some("qwen3")) => Family::Qwen3,
            (Some(other), _) => {
                return Err(format!(
                    "`architectures` is [\"{other}\"]; supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM"
                ));
            }
            (None, other) => {
                return Err(format!(
                    "`model_type` is {other:?} and `architectures` is missing; supported: llama, qwen2, qwen3"
                ));
            }
        };
        // Settings that would change what the model computes: refused, by key.
        if let Some(act) = c.get("hidden_act").and_then(Value::as_str)
            && act != "silu"
        {
            return Err(format!(
                "`hidden_act` is \"{act}\"; only \"silu\" is supported"
            ));
        }
        if get_bool(c, "use_sliding_window")? == Some(true) {
            return Err(
                "`use_sliding_window` is true; sliding-window attention is not supported".into(),
            );
        }
        if let Some(types) = c.get("layer_types").and_then(Value::as_array)
            && types.iter().any(|t| t.as_str() != Some("full_attention"))
        {
            return Err("`layer_types` has layers other than \"full_attention\"; sliding-window attention is not supported".into());
        }
        for key in ["num_experts", "num_local_experts", "n_routed_experts"] {
            if get_usize(c, key)?.unwrap_or(0) > 0 {
                return Err(format!(
                    "`{key}` is set; mixture-of-experts models are not supported"
                ));
            }
        }
        if get_bool(c, "mlp_bias")? == Some(true) {
            return Err("`mlp_bias` is true; MLP bias is not supported".into());
        }
        let rope = c.get("rope_parameters").filter(|v| !v.is_null());
        let scaling = c.get("rope_scaling").filter(|v| !v.is_null()).or(rope);
        for source in [Some(c), rope].into_iter().flatten() {
            if let Some(p) = get_f64(source, "partial_rotary_factor")?
                && p != 1.0
            {
                return Err(format!(
                    "`partial_rotary_factor` is {p}; partial rotary embeddings are not supported"
                ));
            }
        }
        // transformers' default θ is 10000 when neither key style gives one.
        let rope_theta = match get_f64(c, "rope_theta")? {
            Some(theta) => theta,
            None => rope
                .map(|r| get_f64(r, "rope_theta"))
                .transpose()?
                .flatten()
                .unwrap_or(10_000.0),
        };
        let rope_llama3 = match scaling {
            None => None,
            Some(s) => {
                let kind = s
                    .get("rope_type")
                    .or_else(|| s.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("default");
                match kind {
                    "default" => None,
                    "llama3" => {
                        let need = |key: &str| -> Result<f64, ConfigError> {
                            get_f64(s, key)?
                                .ok_or_else(|| format!("`rope_scaling.{key}` is missing"))
                        };
                        Some(Llama3Scaling {
                            factor: need("factor")?,
                            low_freq_factor: need("low_freq_factor")?,
                            high_freq_factor: need("high_freq_factor")?,
                            original_max_position_embeddings: need(
                                "original_max_position_embeddings",
                            )?,
                        })
                    }
                    other => {
                        return Err(format!(
                            "`rope_scaling.rope_type` is \"{other}\"; supported: \"default\", \"llama3\""
                        ));
                    }
                }
            }
        };
        let hidden_size = need_usize(c, "hidden_size")?;
        let num_attention_heads = need_usize(c, "num_attention_heads")?;
        if num_attention_heads == 0 || hidden_size == 0 {
            return Err("`hidden_size` and `num_attention_heads` must be positive".into());
        }
        let num_key_value_heads =
            get_usize(c, "num_key_value_heads")?.unwrap_or(num_attention_heads);
        if num_key_value_heads == 0 || !num_attention_heads.is_multiple_of(num_key_value_heads) {
            return Err(format!(
                "`num_attention_heads` ({num_attention_heads}) must be a multiple of `num_key_value_heads` ({num_key_value_heads})"
            ));
        }
        // transformers' Qwen3Config defaults `head_dim` to 128; the others use hidden / heads.
        let default_head_dim = match family {
            Family::Qwen3 => 128,
            Family::Llama | Family::Qwen2 => hidden_size / num_attention_heads,
        };
        let head_dim = get_usize(c, "head_dim")?.unwrap_or(default_head_dim);
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(format!(
                "`head_dim` ({head_dim}) must be even and positive for rotary embeddings"
            ));
        }
        let attention_bias = get_bool(c, "attention_bias")?.unwrap_or(false);
        let (qkv_bias, o_bias) = match family {
            // transformers' Qwen2Attention: bias on q/k/v always, never on o_proj.
            Family::Qwen2 => (true, false),
            Family::Llama | Family::Qwen3 => (attention_bias, attention_bias),
        };
        let default_tie = false;
        Ok(Self {
            family,
            vocab_size: need_usize(c, "vocab_size")?,
            hidden_size,
            intermediate_size: need_usize(c, "intermediate_size")?,
            num_hidden_layers: need_usize(c, "num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: get_f64(c, "rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_llama3,
            max_position_embeddings: get_usize(c, "max_position_embeddings")?.unwrap_or(2048),
            tie_word_embeddings: get_bool(c, "tie_word_embeddings")?.unwrap_or(default_tie),
            qkv_bias,
            o_bias,
            stored_dtype: c
                .get("dtype")
                .or_else(|| c.get("torch_dtype"))
                .and_then(Value::as_str)
                .map(str::to_string),
            bos_token_id: get_usize(c, "bos_token_id")?.map(|n| n as u32),
            eos_token_ids: token_ids(c.get("eos_token_id"))
                .map_err(|e| format!("`eos_token_id`: {e}"))?,
        })
    }

    /// A `config.json` for these weights stored in f32 (transformers 4.x keys, which 5.x reads too).
    pub fn to_hf(&self) -> Value {
        let mut c = json!({
            "architectures": [self.family.architecture()],
            "model_type": self.family.model_type(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": "float32",
        });
        let obj = c.as_object_mut().expect("an object");
        if self.family != Family::Qwen2 {
            obj.insert("attention_bias".into(), self.qkv_bias.into());
        }
        if let Some(s) = &self.rope_llama3 {
            obj.insert(
                "rope_scaling".into(),
                json!({
                    "rope_type": "llama3",
                    "factor": s.factor,
                    "low_freq_factor": s.low_freq_factor,
                    "high_freq_factor": s.high_freq_factor,
                    "original_max_position_embeddings": s.original_max_position_embeddings,
                }),
            );
        }
        if let Some(bos) = self.bos_token_id {
            obj.insert("bos_token_id".into(), bos.into());
        }
        match self.eos_token_ids.as_slice() {
            [] => {}
            [one] => {
                obj.insert("eos_token_id".into(), (*one).into());
            }
            many => {
                obj.insert("eos_token_id".into(), many.to_vec().into());
            }
        }
        c
    }

    /// Query heads per key/value head.
    pub fn groups(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }

    /// The rotary inverse frequencies `[head_dim / 2]`, Llama-3 scaling applied, as
    /// transformers computes them (`_compute_default_rope_parameters`,
    /// `_compute_llama3_parameters`).
    pub fn inv_freq(&self) -> Vec<f32> {
        let dim = self.head_dim;
        let base: Vec<f64> = (0..dim / 2)
            .map(|i| 1.0 / self.rope_theta.powf((2 * i) as f64 / dim as f64))
            .collect();
        let Some(s) = &self.rope_llama3 else {
            return base.iter().map(|&f| f as f32).collect();
        };
        let low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
        let high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
        base.iter()
            .map(|&f| {
                let wavelen = 2.0 * std::f64::consts::PI / f;
                let scaled = if wavelen > low_wavelen {
                    f / s.factor
                } else {
                    f
                };
                // transformers' `~(wavelen < high) * ~(wavelen > low)`: a NaN wavelength is
                // impossible here (θ > 0), so this is `high <= wavelen <= low`.
                let medium = (high_wavelen..=low_wavelen).contains(&wavelen);
                let out = if medium {
                    let smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor)
                        / (s.high_freq_factor - s.low_freq_factor);
                    (1.0 - smooth) * scaled / s.factor + smooth * scaled
                } else {
                    scaled
                };
                out as f32
            })
            .collect()
    }

    /// Forward FLOPs of one token read after `context` earlier tokens: two per weight of every
    /// matrix product (the head included, the embedding lookup not) plus the attention's
    /// `QKᵀ` and `PV` over the context. A training token costs three times this.
    pub fn flops_per_token(&self, context: usize) -> f64 {
        let embedding = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * self.hidden_size
        };
        let matrices = (self.num_params() - embedding) as f64;
        let attention =
            4.0 * (self.num_hidden_layers * self.num_attention_heads * self.head_dim) as f64;
        2.0 * matrices + attention * context as f64
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        let d = self.hidden_size;
        let q = self.num_attention_heads * self.head_dim;
        let kv = self.num_key_value_heads * self.head_dim;
        let mut attn = d * q + 2 * d * kv + q * d;
        if self.qkv_bias {
            attn += q + 2 * kv;
        }
        if self.o_bias {
            attn += d;
        }
        if self.family == Family::Qwen3 {
            attn += 2 * self.head_dim;
        }
        let layer = attn + 3 * d * self.intermediate_size + 2 * d;
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * d
        };
        self.vocab_size * d + self.num_hidden_layers * layer + d + head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qwen25_05b() -> Value {
        json!({
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
            "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
            "num_attention_heads": 14, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0, "max_position_embeddings": 32768, "vocab_size": 151936,
            "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_sliding_window": false,
            "sliding_window": 32768, "max_window_layers": 21, "bos_token_id": 151643,
            "eos_token_id": 151645
        })
    }

    #[test]
    fn qwen25_config_reads_with_the_published_parameter_count() {
        let c = LlmConfig::from_hf(&qwen25_05b()).unwrap();
        assert_eq!(c.family, Family::Qwen2);
        assert_eq!((c.head_dim, c.groups()), (64, 7));
        assert!(c.qkv_bias && !c.o_bias && c.tie_word_embeddings);
        assert_eq!(c.num_params(), 494_032_768);
        assert_eq!(c.eos_token_ids, vec![151645]);
    }

    #[test]
    fn both_rope_key_styles_give_the_same_config() {
        let old = json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 320, "rope_theta": 500000.0, "torch_dtype": "float32",
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
        });
        let new = json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 320, "dtype": "float32",
            "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 16}
        });
        let a = LlmConfig::from_hf(&old).unwrap();
        let b = LlmConfig::from_hf(&new).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.rope_theta, 500000.0);
        assert!(a.rope_llama3.is_some());
        // The round trip through `to_hf` keeps every setting.
        assert_eq!(LlmConfig::from_hf(&a.to_hf()).unwrap(), a);
    }

    #[test]
    fn unsupported_settings_are_refused_by_key() {
        let cases = [
            ("use_sliding_window", json!(true)),
            ("num_experts", json!(8)),
            ("partial_rotary_factor", json!(0.5)),
            ("hidden_act", json!("gelu")),
            ("rope_scaling", json!({"rope_type": "yarn", "factor": 4.0})),
            ("architectures", json!(["MistralForCausalLM"])),
            ("num_key_value_heads", json!(3)),
        ];
        for (key, value) in cases {
            let mut c = qwen25_05b();
            c[key] = value;
            let err = LlmConfig::from_hf(&c).unwrap_err();
            let named = key.split('.').next().unwrap();
            assert!(err.contains(named), "{key}: {err}");
        }
        let mut c = qwen25_05b();
        c.as_object_mut().unwrap().remove("hidden_size");
        assert!(
            LlmConfig::from_hf(&c)
                .unwrap_err()
                .contains("`hidden_size` is missing")
        );
    }

    #[test]
    fn llama3_scaling_keeps_high_frequencies_and_divides_low_ones() {
        let mut c = LlmConfig::from_hf(&qwen25_05b()).unwrap();
        c.rope_theta = 500000.0;
        c.rope_llama3 = Some(Llama3Scaling {
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192.0,
        });
        let scaled = c.inv_freq();
        let plain = LlmConfig {
            rope_llama3: None,
            ..c.clone()
        }
        .inv_freq();
        assert_eq!(scaled[0], plain[0], "the highest frequency is kept");
        let last = plain.len() - 1;
        approx::assert_relative_eq!(scaled[last], plain[last] / 32.0, max_relative = 1e-6);
    }
}
