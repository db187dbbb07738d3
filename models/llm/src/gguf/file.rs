//! An opened GGUF file: the parsed header over the memory-mapped bytes, its Hugging Face
//! config, and its tensors dequantized on request ([`WeightSource`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use zoo_core::{Error, Result};

use super::names::{ARCHITECTURES, HfName, hf_name, llama3_scaling, unpermute_rows};
use super::parse::{MetaValue, TensorInfo, parse_header};
use super::quants::{DECODED, dequantize};
use crate::weights::WeightSource;

/// The bytes of a GGUF file: memory-mapped, or (in tests) owned.
pub(super) enum Bytes {
    Mapped(memmap2::Mmap),
    #[cfg(test)]
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            #[cfg(test)]
            Bytes::Owned(v) => v,
        }
    }
}

/// A GGUF v2/v3 file: the parsed header over the memory-mapped file. Tensors are read and
/// dequantized one at a time, on request ([`WeightSource::tensor_f32`]).
pub struct Gguf {
    path: PathBuf,
    bytes: Bytes,
    version: u32,
    metadata: BTreeMap<String, MetaValue>,
    tensors: Vec<TensorInfo>,
    /// HF name → index in `tensors`.
    by_hf_name: BTreeMap<String, usize>,
    arch: String,
}

impl std::fmt::Debug for Gguf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("architecture", &self.arch)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl Gguf {
    /// Opens the GGUF file at `path`: memory-maps it, parses and validates the header (every
    /// tensor must lie inside the file), checks `general.architecture` is `llama`, `qwen2` or
    /// `qwen3` and maps every tensor name to its Hugging Face name. No tensor data is read.
    pub fn open(path: &Path) -> Result<Self> {
        let file = fs_err::File::open(path).map_err(|e| Error::io("open", path, e))?;
        // SAFETY: the map is read-only and private to this value; as with every memory-mapped
        // model file, the file must not be truncated or rewritten while it is open.
        let map =
            unsafe { memmap2::Mmap::map(file.file()) }.map_err(|e| Error::io("map", path, e))?;
        Self::from_bytes(path.to_path_buf(), Bytes::Mapped(map))
    }

    /// Parses `bytes`, the content of the file `path`.
    pub(super) fn from_bytes(path: PathBuf, bytes: Bytes) -> Result<Self> {
        let header = parse_header(&bytes).map_err(|e| {
            let hint = if e.truncated {
                "the file is incomplete or damaged (an interrupted download?): download or convert \
                 it again"
            } else {
                "pass a GGUF file written by llama.cpp (`convert_hf_to_gguf.py`, `llama-quantize`), \
                 or the Hugging Face folder with safetensors"
            };
            bad_file(&path, e.reason, hint)
        })?;
        let mut g = Gguf {
            path,
            bytes,
            version: header.version,
            metadata: header.metadata,
            tensors: header.tensors,
            by_hf_name: BTreeMap::new(),
            arch: String::new(),
        };
        g.arch = g.architecture_checked()?.to_string();
        let mut unknown = None;
        for (i, t) in g.tensors.iter_mut().enumerate() {
            match hf_name(&t.name) {
                Some(HfName::Weight(hf)) => {
                    g.by_hf_name.insert(hf.clone(), i);
                    t.hf_name = Some(hf);
                }
                Some(HfName::Skip) => {}
                None => {
                    unknown = Some(t.name.clone());
                    break;
                }
            }
        }
        if let Some(name) = unknown {
            return Err(g.bad(
                format!(
                    "tensor `{name}` is not part of a Llama/Qwen2/Qwen3 decoder \
                     (general.architecture `{}`)",
                    g.arch
                ),
                "zoo maps llama.cpp's token_embd, blk.N.{attn,ffn}_*, output_norm and \
                 output tensors; use the model's Hugging Face safetensors folder instead",
            ));
        }
        Ok(g)
    }

    /// The file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// `general.architecture`: `llama`, `qwen2` or `qwen3`.
    pub fn architecture(&self) -> &str {
        &self.arch
    }

    /// llama.cpp metadata, by key.
    pub fn metadata(&self) -> &BTreeMap<String, MetaValue> {
        &self.metadata
    }

    /// Every tensor of the file, in file order (including ones that are not model weights).
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub(super) fn bad(&self, reason: impl Into<String>, hint: impl Into<String>) -> Error {
        bad_file(&self.path, reason, hint)
    }

    fn architecture_checked(&self) -> Result<&'static str> {
        let arch = match self.metadata.get("general.architecture") {
            None => {
                return Err(self.bad(
                    "metadata `general.architecture` is missing",
                    "the file was not written by llama.cpp's converter; convert the model again",
                ));
            }
            Some(v) => v.as_str().ok_or_else(|| {
                self.bad(
                    format!(
                        "`general.architecture` is a {}, not a string",
                        v.type_name()
                    ),
                    "the file is damaged; convert the model again",
                )
            })?,
        };
        ARCHITECTURES
            .iter()
            .find(|a| a.0 == arch)
            .map(|a| a.0)
            .ok_or_else(|| {
                self.bad(
                    format!("`general.architecture` is `{arch}`; zoo reads llama, qwen2 and qwen3"),
                    "use a Llama (SmolLM2, Llama 3.x), Qwen2/2.5 or Qwen3 model",
                )
            })
    }

    /// Metadata `key`, if present.
    pub(super) fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    pub(super) fn wrong_type(&self, key: &str, v: &MetaValue, want: &str) -> Error {
        self.bad(
            format!("metadata `{key}` is a {}, expected {want}", v.type_name()),
            "the file is damaged or from an unsupported converter; convert the model again",
        )
    }

    pub(super) fn missing(&self, key: &str) -> Error {
        self.bad(
            format!("metadata `{key}` is missing"),
            "convert the model again with a current llama.cpp `convert_hf_to_gguf.py`",
        )
    }

    /// Metadata `key` as a non-negative integer, if present.
    pub(super) fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        self.get(key)
            .map(|v| {
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| self.wrong_type(key, v, "a single non-negative integer"))
            })
            .transpose()
    }

    pub(super) fn req_usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?.ok_or_else(|| self.missing(key))
    }

    /// Metadata `key` as a token id, if present.
    pub(super) fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        self.opt_usize(key)?
            .map(|n| {
                u32::try_from(n).map_err(|_| {
                    self.bad(
                        format!("metadata `{key}` is {n}, not a token id"),
                        "the file is damaged; convert the model again",
                    )
                })
            })
            .transpose()
    }

    pub(super) fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        self.get(key)
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| self.wrong_type(key, v, "a number"))
            })
            .transpose()
    }

    pub(super) fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        self.get(key)
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.wrong_type(key, v, "a string"))
            })
            .transpose()
    }

    pub(super) fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key)
            .map(|v| v.as_bool().ok_or_else(|| self.wrong_type(key, v, "a bool")))
            .transpose()
    }

    /// Metadata `key` as an array, if present.
    pub(super) fn opt_array(&self, key: &str) -> Result<Option<&[MetaValue]>> {
        self.get(key)
            .map(|v| {
                v.as_array()
                    .ok_or_else(|| self.wrong_type(key, v, "an array"))
            })
            .transpose()
    }

    pub(super) fn tensor_by_gguf_name(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The equivalent Hugging Face `config.json` as JSON: `architectures`, `model_type`,
    /// `hidden_size`, `intermediate_size`, `num_hidden_layers`, `num_attention_heads`,
    /// `num_key_value_heads`, `head_dim`, `rms_norm_eps`, `rope_theta`, `max_position_embeddings`,
    /// `vocab_size` (rows of `token_embd`), `tie_word_embeddings` (no `output.weight`),
    /// `attention_bias`, `bos_token_id`/`eos_token_id` (when present), `hidden_act`,
    /// `torch_dtype: "float32"` and `rope_scaling` when the file scales RoPE (`llama3` recovered
    /// from the `rope_freqs` tensor; `linear`/`yarn` from `{arch}.rope.scaling.*`).
    pub fn hf_config(&self) -> Result<Value> {
        let arch = self.arch.as_str();
        let &(_, class, model_type) = ARCHITECTURES
            .iter()
            .find(|a| a.0 == arch)
            .expect("checked at open");
        let key = |k: &str| format!("{arch}.{k}");

        let hidden = self.req_usize(&key("embedding_length"))?;
        let layers = self.req_usize(&key("block_count"))?;
        let intermediate = self.req_usize(&key("feed_forward_length"))?;
        let heads = self.req_usize(&key("attention.head_count"))?;
        let kv_heads = self
            .opt_usize(&key("attention.head_count_kv"))?
            .unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
            return Err(self.bad(
                format!("{heads} attention heads and {kv_heads} key/value heads"),
                "the head counts must be positive, query heads a multiple of key/value heads",
            ));
        }
        let head_dim = match self.opt_usize(&key("attention.key_length"))? {
            Some(d) => d,
            None if hidden % heads == 0 => hidden / heads,
            None => {
                return Err(self.bad(
                    format!(
                        "no `{}` and the hidden size {hidden} is not a multiple of {heads} heads",
                        key("attention.key_length")
                    ),
                    "convert the model again with a current llama.cpp",
                ));
            }
        };
        if let Some(v) = self.opt_usize(&key("attention.value_length"))?
            && v != head_dim
        {
            return Err(self.bad(
                format!("value head size {v} differs from key head size {head_dim}"),
                "zoo's decoder uses one head size for queries, keys and values",
            ));
        }
        if let Some(r) = self.opt_usize(&key("rope.dimension_count"))?
            && r != head_dim
        {
            return Err(self.bad(
                format!("RoPE covers {r} of {head_dim} head dimensions (partial rotary)"),
                "zoo's decoder rotates the whole head; use a model without partial RoPE",
            ));
        }
        let eps = self
            .opt_f64(&key("attention.layer_norm_rms_epsilon"))?
            .ok_or_else(|| self.missing(&key("attention.layer_norm_rms_epsilon")))?;
        let theta = self.opt_f64(&key("rope.freq_base"))?.unwrap_or(10_000.0);
        let context = self.req_usize(&key("context_length"))?;

        let embed = self
            .tensor_by_gguf_name("token_embd.weight")
            .ok_or_else(|| {
                self.bad(
                    "there is no `token_embd.weight` tensor",
                    "the file is incomplete; convert the model again",
                )
            })?;
        let vocab = embed.shape()[0];
        let tie = self.tensor_by_gguf_name("output.weight").is_none();
        let attention_bias =
            arch == "qwen2" || self.tensor_by_gguf_name("blk.0.attn_q.bias").is_some();

        let mut c = Map::new();
        c.insert("architectures".into(), json!([class]));
        c.insert("model_type".into(), json!(model_type));
        c.insert("hidden_size".into(), json!(hidden));
        c.insert("intermediate_size".into(), json!(intermediate));
        c.insert("num_hidden_layers".into(), json!(layers));
        c.insert("num_attention_heads".into(), json!(heads));
        c.insert("num_key_value_heads".into(), json!(kv_heads));
        c.insert("head_dim".into(), json!(head_dim));
        c.insert("hidden_act".into(), json!("silu"));
        c.insert("rms_norm_eps".into(), json!(eps));
        c.insert("rope_theta".into(), json!(theta));
        c.insert("max_position_embeddings".into(), json!(context));
        c.insert("vocab_size".into(), json!(vocab));
        c.insert("tie_word_embeddings".into(), json!(tie));
        c.insert("attention_bias".into(), json!(attention_bias));
        if let Some(bos) = self.opt_u32("tokenizer.ggml.bos_token_id")? {
            c.insert("bos_token_id".into(), json!(bos));
        }
        if let Some(eos) = self.opt_u32("tokenizer.ggml.eos_token_id")? {
            c.insert("eos_token_id".into(), json!(eos));
        }
        c.insert("torch_dtype".into(), json!("float32"));
        if let Some(scaling) = self.rope_scaling(theta, head_dim)? {
            c.insert("rope_scaling".into(), scaling);
        }
        Ok(Value::Object(c))
    }

    /// HF `rope_scaling` from `{arch}.rope.scaling.*` / `{arch}.rope.scale_linear` or the
    /// `rope_freqs` tensor; `None` when RoPE is unscaled.
    fn rope_scaling(&self, theta: f64, head_dim: usize) -> Result<Option<Value>> {
        let key = |k: &str| format!("{}.{k}", self.arch);
        let kind = self.opt_str(&key("rope.scaling.type"))?;
        let factor = self.opt_f64(&key("rope.scaling.factor"))?;
        let orig_ctx = self.opt_usize(&key("rope.scaling.original_context_length"))?;
        let freqs = self.tensor_by_gguf_name("rope_freqs.weight");
        let from_keys = match (kind, factor) {
            (None | Some("none"), _) => self
                .opt_f64(&key("rope.scale_linear"))?
                .filter(|&f| f != 1.0)
                .map(|f| json!({"rope_type": "linear", "factor": f})),
            (Some("linear"), Some(f)) => Some(json!({"rope_type": "linear", "factor": f})),
            (Some("yarn"), Some(f)) => {
                let mut m = Map::new();
                m.insert("rope_type".into(), json!("yarn"));
                m.insert("factor".into(), json!(f));
                if let Some(o) = orig_ctx {
                    m.insert("original_max_position_embeddings".into(), json!(o));
                }
                for (gguf_key, hf_key) in [
                    ("rope.scaling.yarn_beta_fast", "beta_fast"),
                    ("rope.scaling.yarn_beta_slow", "beta_slow"),
                    ("rope.scaling.attn_factor", "attention_factor"),
                ] {
                    if let Some(v) = self.opt_f64(&key(gguf_key))? {
                        m.insert(hf_key.into(), json!(v));
                    }
                }
                Some(Value::Object(m))
            }
            (Some(t), f) => {
                return Err(self.bad(
                    format!(
                        "RoPE scaling `{t}` (`{}`, factor {f:?}) is not one zoo can translate",
                        key("rope.scaling.type")
                    ),
                    "use the model's Hugging Face folder, whose config.json states the scaling",
                ));
            }
        };
        match (from_keys, freqs) {
            (Some(_), Some(_)) => Err(self.bad(
                format!(
                    "both `{}` and a `rope_freqs.weight` tensor scale RoPE",
                    key("rope.scaling.type")
                ),
                "use the model's Hugging Face folder, whose config.json states the scaling",
            )),
            (Some(v), None) => Ok(Some(v)),
            (None, None) => Ok(None),
            (None, Some(t)) => {
                if t.numel() != head_dim / 2 {
                    return Err(self.bad(
                        format!(
                            "`rope_freqs.weight` has {} factors, expected head_dim/2 = {}",
                            t.numel(),
                            head_dim / 2
                        ),
                        "the file is damaged; convert the model again",
                    ));
                }
                let factors = self.read_tensor(t)?;
                llama3_scaling(&factors, theta, head_dim, orig_ctx.unwrap_or(8192)).map_err(
                    |reason| {
                        self.bad(
                            reason,
                            "use the model's Hugging Face folder, whose config.json states the \
                             RoPE scaling",
                        )
                    },
                )
            }
        }
    }

    /// Dequantizes tensor `t` to f32, in ggml (= row-major HF) element order.
    pub(super) fn read_tensor(&self, t: &TensorInfo) -> Result<Vec<f32>> {
        let unsupported = || {
            self.bad(
                format!(
                    "tensor `{}` is {} (ggml type {}); zoo dequantizes {DECODED}",
                    t.name,
                    t.type_name(),
                    t.ggml_type
                ),
                "re-quantize the F16/BF16 GGUF to a type zoo reads (Q8_0, Q6_K, Q4_K_M, ...) \
                 with llama.cpp (`llama-quantize model-f16.gguf model-q8_0.gguf Q8_0`), or use \
                 the model's Hugging Face safetensors folder",
            )
        };
        let len = t.len.ok_or_else(unsupported)?;
        let bytes = &self.bytes[t.start..t.start + len];
        dequantize(t.ggml_type, bytes, t.numel()).ok_or_else(unsupported)
    }
}

fn bad_file(path: &Path, reason: impl Into<String>, hint: impl Into<String>) -> Error {
    Error::BadFile {
        path: path.to_path_buf(),
        reason: reason.into(),
        hint: hint.into(),
    }
}

impl WeightSource for Gguf {
    /// Every model weight: HF name and HF (row-major) shape, in file order; `rope_freqs` is left
    /// out (the config carries the scaling).
    fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.tensors
            .iter()
            .filter_map(|t| Some((t.hf_name.clone()?, t.shape())))
            .collect()
    }

    /// The values of HF tensor `name`, dequantized to f32, row-major `[out, in]` for linear
    /// weights; Llama's `q_proj`/`k_proj` rows are put back in HF order.
    fn tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        let t = self
            .by_hf_name
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| {
                self.bad(
                    format!(
                        "there is no tensor `{name}` (the file has {} model weights)",
                        self.by_hf_name.len()
                    ),
                    "the GGUF lacks a weight the model needs: convert the model again, or use its \
                     Hugging Face folder",
                )
            })?;
        let values = self.read_tensor(t)?;
        if self.arch != "llama" {
            return Ok(values);
        }
        let heads_key = if name.ends_with(".self_attn.q_proj.weight")
            || name.ends_with(".self_attn.q_proj.bias")
        {
            "llama.attention.head_count"
        } else if name.ends_with(".self_attn.k_proj.weight")
            || name.ends_with(".self_attn.k_proj.bias")
        {
            // k is permuted with the key/value head count (LlamaModel.permute's n_head_kv)
            if self.get("llama.attention.head_count_kv").is_some() {
                "llama.attention.head_count_kv"
            } else {
                "llama.attention.head_count"
            }
        } else {
            return Ok(values);
        };
        let n_head = self.req_usize(heads_key)?;
        let shape = t.shape();
        let rows = shape[0];
        if n_head == 0 || rows % (2 * n_head) != 0 {
            return Err(self.bad(
                format!(
                    "tensor `{}` has {rows} rows, not a multiple of 2 × `{heads_key}` = {}",
                    t.name,
                    2 * n_head
                ),
                "the file is damaged or its head counts are wrong; convert the model again",
            ));
        }
        Ok(unpermute_rows(&values, rows, values.len() / rows, n_head))
    }
}
