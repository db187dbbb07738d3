//! The Llama-family decoder as transformers defines it (`modeling_llama.py`,
//! `modeling_qwen2.py`, `modeling_qwen3.py`): RMSNorm, HF rotate-half RoPE (with Llama-3
//! scaling), grouped-query attention, SwiGLU, tied or untied head. One file, one architecture,
//! switches for the families (candle's `qwen2.rs` is the model for this file).
//!
//! Parameters carry the checkpoint's names (`model.layers.0.self_attn.q_proj.weight`) and layout
//! (`[out, in]`), so a checkpoint is read and written with no renaming or transposition.
//! Positions are given per token, so left-padded rows of different lengths share one batch: each
//! row's first real token has position 0, as transformers' `generate` computes them.
//!
//! Mixed precision ([`CausalLm::with_bf16`]): the parameters stay f32 (the optimizer's master
//! weights) and are cast to bf16 where they are used (the cast is differentiable, so gradients
//! come back f32); activations are bf16, RMSNorm and the attention softmax compute in f32 and
//! cast back, as transformers' bf16 models do, and the head's logits are f32.

use zoo_core::Result;
pub use zoo_core::attention::KvCache;
use zoo_core::burn;
use zoo_core::burn::module::{Module, Param};
use zoo_core::burn::prelude::*;
use zoo_core::burn::tensor::activation::{silu, softmax};
use zoo_core::burn::tensor::{FloatDType, TensorData};

use crate::config::{Family, LlmConfig};
use crate::weights::WeightSource;

/// A linear map `y = x Wᵀ + b`, `W` `[out, in]` as in PyTorch, with an optional LoRA adapter
/// (PEFT's `lora.Linear`): `y = x Wᵀ + b + scale · (x Aᵀ) Bᵀ`, `A` `[r, in]`, `B` `[out, r]`,
/// `scale = alpha / r`. The adapter's parameters are named `q_proj.lora_a.weight` and
/// `q_proj.lora_b.weight`; PEFT's files say `lora_A` and `lora_B` (`crate::lora`).
#[derive(Module, Debug)]
pub struct Linear {
    weight: Param<Tensor<2>>,
    bias: Option<Param<Tensor<1>>>,
    lora_a: Option<LoraWeight>,
    lora_b: Option<LoraWeight>,
    #[module(skip)]
    lora_scale: f32,
}

/// One matrix of a LoRA adapter (PEFT's `lora_A` / `lora_B`, an `nn.Linear` without bias).
#[derive(Module, Debug)]
pub struct LoraWeight {
    weight: Param<Tensor<2>>,
}

/// The dtype activations are computed in: f32, or bf16 with f32 parameters cast on use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compute {
    /// Everything f32.
    #[default]
    F32,
    /// bf16 activations and matrix products.
    Bf16,
}

impl Compute {
    /// `x` in the compute dtype.
    fn cast<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Compute::F32 => x,
            Compute::Bf16 => x.cast(FloatDType::BF16),
        }
    }
}

/// `x` in f32 (a no-op for f32).
fn f32<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.cast(FloatDType::F32)
}

impl Linear {
    /// `x` `[b, s, in]` → `[b, s, out]`, as one `[b·s, in] × [in, out]` product (a batched
    /// product would read the weight once per row), in the dtype `compute`.
    fn forward(&self, x: Tensor<3>, compute: Compute) -> Tensor<3> {
        let [b, s, d] = x.dims();
        let weight = compute.cast(self.weight.val()); // [out, in]
        let out = weight.dims()[0];
        let x = x.reshape([b * s, d]);
        let y = x.clone().matmul(weight.transpose());
        let y = match &self.bias {
            Some(bias) => y.add(compute.cast(bias.val()).unsqueeze()),
            None => y,
        };
        let y = match (&self.lora_a, &self.lora_b) {
            (Some(a), Some(b)) => {
                let a = compute.cast(a.weight.val()); // [r, in]
                let b = compute.cast(b.weight.val()); // [out, r]
                let delta = x.matmul(a.transpose()).matmul(b.transpose());
                y.add(delta.mul_scalar(self.lora_scale))
            }
            _ => y,
        };
        y.reshape([b, s, out])
    }

    /// A plain linear map (no adapter).
    fn plain(weight: Param<Tensor<2>>, bias: Option<Param<Tensor<1>>>) -> Self {
        Self {
            weight,
            bias,
            lora_a: None,
            lora_b: None,
            lora_scale: 0.0,
        }
    }

    /// `[out, in]`.
    pub fn shape(&self) -> [usize; 2] {
        self.weight.val().dims()
    }

    /// Attaches an adapter `A` `[r, in]`, `B` `[out, r]` with `scale`; both trainable.
    pub fn attach(&mut self, a: Tensor<2>, b: Tensor<2>, scale: f32) {
        self.lora_a = Some(LoraWeight {
            weight: Param::from_tensor(a.require_grad()),
        });
        self.lora_b = Some(LoraWeight {
            weight: Param::from_tensor(b.require_grad()),
        });
        self.lora_scale = scale;
    }

    /// The adapter's `(A, B, scale)`, if any.
    pub fn adapter(&self) -> Option<(Tensor<2>, Tensor<2>, f32)> {
        match (&self.lora_a, &self.lora_b) {
            (Some(a), Some(b)) => Some((a.weight.val(), b.weight.val(), self.lora_scale)),
            _ => None,
        }
    }

    /// Folds the adapter into the weight (`W + scale · B A`, f32) and drops it.
    pub fn merge(&mut self) {
        if let Some((a, b, scale)) = self.adapter() {
            let merged = self
                .weight
                .val()
                .add(b.matmul(a).mul_scalar(scale))
                .detach();
            self.weight = Param::from_tensor(merged);
        }
        self.lora_a = None;
        self.lora_b = None;
        self.lora_scale = 0.0;
    }
}

/// Root-mean-square normalization with a learned scale.
#[derive(Module, Debug)]
pub struct RmsNorm {
    weight: Param<Tensor<1>>,
}

impl RmsNorm {
    /// `x / sqrt(mean(x²) + eps) · weight` over the last dim of `x` `[.., d]`: normalized in
    /// f32, scaled in the dtype `compute` (transformers' `LlamaRMSNorm`).
    fn forward<const D: usize>(&self, x: Tensor<D>, eps: f64, compute: Compute) -> Tensor<D> {
        let x = f32(x);
        let rms = x.clone().square().mean_dim(D - 1).add_scalar(eps).sqrt();
        compute
            .cast(x.div(rms))
            .mul(compute.cast(self.weight.val()).unsqueeze())
    }
}

/// The embedding table `[vocab, d]`.
#[derive(Module, Debug)]
pub struct Embedding {
    weight: Param<Tensor<2>>,
}

/// Grouped-query self-attention.
#[derive(Module, Debug)]
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
}

/// SwiGLU feed-forward.
#[derive(Module, Debug)]
pub struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

/// One decoder layer (pre-norm residual blocks).
#[derive(Module, Debug)]
pub struct DecoderLayer {
    self_attn: Attention,
    mlp: Mlp,
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
}

/// The trunk: `model.*` in a checkpoint.
#[derive(Module, Debug)]
pub struct LlamaModel {
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
}

/// The decoder with its head: `LlamaForCausalLM`, `Qwen2ForCausalLM`, `Qwen3ForCausalLM`.
#[derive(Module, Debug)]
pub struct CausalLm {
    model: LlamaModel,
    /// `None` when the head is the embedding (`tie_word_embeddings`).
    lm_head: Option<Linear>,
    #[module(skip)]
    config: LlmConfig,
    #[module(skip)]
    compute: Compute,
}

/// Casts every float parameter to a dtype.
struct CastWeights(FloatDType);

impl burn::module::ModuleMapper for CastWeights {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.cast(self.0), mapper)
    }
}

/// Gives a parameter's values (row-major f32) from its checkpoint name and shape.
pub type ValuesOf<'a> = dyn FnMut(&str, &[usize]) -> Result<Vec<f32>> + 'a;

/// The sizes of every parameter by checkpoint name, for `config`.
pub fn parameter_shapes(config: &LlmConfig) -> Vec<(String, Vec<usize>)> {
    let (d, f, v) = (
        config.hidden_size,
        config.intermediate_size,
        config.vocab_size,
    );
    let q = config.num_attention_heads * config.head_dim;
    let kv = config.num_key_value_heads * config.head_dim;
    let mut out = vec![
        ("model.embed_tokens.weight".to_string(), vec![v, d]),
        ("model.norm.weight".to_string(), vec![d]),
    ];
    if !config.tie_word_embeddings {
        out.push(("lm_head.weight".into(), vec![v, d]));
    }
    for i in 0..config.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let mut push = |name: &str, shape: Vec<usize>| out.push((format!("{p}.{name}"), shape));
        push("input_layernorm.weight", vec![d]);
        push("post_attention_layernorm.weight", vec![d]);
        push("self_attn.q_proj.weight", vec![q, d]);
        push("self_attn.k_proj.weight", vec![kv, d]);
        push("self_attn.v_proj.weight", vec![kv, d]);
        push("self_attn.o_proj.weight", vec![d, q]);
        if config.qkv_bias {
            push("self_attn.q_proj.bias", vec![q]);
            push("self_attn.k_proj.bias", vec![kv]);
            push("self_attn.v_proj.bias", vec![kv]);
        }
        if config.o_bias {
            push("self_attn.o_proj.bias", vec![d]);
        }
        if config.family == Family::Qwen3 {
            push("self_attn.q_norm.weight", vec![config.head_dim]);
            push("self_attn.k_norm.weight", vec![config.head_dim]);
        }
        push("mlp.gate_proj.weight", vec![f, d]);
        push("mlp.up_proj.weight", vec![f, d]);
        push("mlp.down_proj.weight", vec![d, f]);
    }
    out
}

/// Checks that `source` holds exactly the tensors `config` needs, with their shapes; the error
/// lists every missing and unexpected name.
pub fn check_names(
    config: &LlmConfig,
    source: &dyn WeightSource,
) -> std::result::Result<(), String> {
    let expected: std::collections::BTreeMap<String, Vec<usize>> =
        parameter_shapes(config).into_iter().collect();
    let found: std::collections::BTreeMap<String, Vec<usize>> =
        source.tensor_shapes().into_iter().collect();
    let missing: Vec<&String> = expected
        .keys()
        .filter(|n| !found.contains_key(*n))
        .collect();
    let unexpected: Vec<&String> = found
        .keys()
        // A tied checkpoint may still store the head (equal to the embedding): ignored.
        .filter(|n| {
            let tied_head = config.tie_word_embeddings && *n == "lm_head.weight";
            !(expected.contains_key(*n) || tied_head)
        })
        .collect();
    let mut problems = Vec::new();
    let list = |names: &[&String]| {
        let shown: Vec<String> = names.iter().take(8).map(|n| format!("`{n}`")).collect();
        let more = names.len().saturating_sub(8);
        format!(
            "{}{}",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    };
    if !missing.is_empty() {
        problems.push(format!("missing {}: {}", missing.len(), list(&missing)));
    }
    if !unexpected.is_empty() {
        problems.push(format!(
            "unexpected {}: {}",
            unexpected.len(),
            list(&unexpected)
        ));
    }
    for (name, shape) in &expected {
        if let Some(got) = found.get(name)
            && got != shape
        {
            problems.push(format!(
                "`{name}` has shape {got:?}, the config implies {shape:?}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

impl CausalLm {
    /// Builds the model with each parameter's values from `values(name, shape)` (row-major
    /// f32), as trainable parameters on `device`.
    pub fn build(config: &LlmConfig, device: &Device, values: &mut ValuesOf<'_>) -> Result<Self> {
        let mut tensor2 = |name: &str, shape: [usize; 2]| -> Result<Param<Tensor<2>>> {
            let data = values(name, &shape)?;
            Ok(Param::from_tensor(
                Tensor::<2>::from_data(TensorData::new(data, shape), device).require_grad(),
            ))
        };
        let shapes: std::collections::BTreeMap<String, Vec<usize>> =
            parameter_shapes(config).into_iter().collect();
        let mut params2 = std::collections::BTreeMap::new();
        let mut params1 = std::collections::BTreeMap::new();
        for (name, shape) in &shapes {
            if shape.len() == 2 {
                params2.insert(name.clone(), tensor2(name, [shape[0], shape[1]])?);
            }
        }
        for (name, shape) in &shapes {
            if shape.len() == 1 {
                let data = values(name, shape)?;
                params1.insert(
                    name.clone(),
                    Param::from_tensor(
                        Tensor::<1>::from_data(TensorData::new(data, [shape[0]]), device)
                            .require_grad(),
                    ),
                );
            }
        }
        let mut take2 = |name: String| params2.remove(&name).expect("every shape was built");
        let mut take1 = |name: String| params1.remove(&name);
        let mut linear = |p: &str, name: &str, bias: bool| {
            Linear::plain(
                take2(format!("{p}.{name}.weight")),
                if bias {
                    take1(format!("{p}.{name}.bias"))
                } else {
                    None
                },
            )
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let a = format!("{p}.self_attn");
            let m = format!("{p}.mlp");
            let self_attn_parts = (
                linear(&a, "q_proj", config.qkv_bias),
                linear(&a, "k_proj", config.qkv_bias),
                linear(&a, "v_proj", config.qkv_bias),
                linear(&a, "o_proj", config.o_bias),
            );
            let mlp = Mlp {
                gate_proj: linear(&m, "gate_proj", false),
                up_proj: linear(&m, "up_proj", false),
                down_proj: linear(&m, "down_proj", false),
            };
            layers.push((p, self_attn_parts, mlp));
        }
        let mut norm = |name: String| RmsNorm {
            weight: take1(name).expect("every shape was built"),
        };
        let layers = layers
            .into_iter()
            .map(|(p, (q_proj, k_proj, v_proj, o_proj), mlp)| {
                let qk = config.family == Family::Qwen3;
                DecoderLayer {
                    self_attn: Attention {
                        q_proj,
                        k_proj,
                        v_proj,
                        o_proj,
                        q_norm: qk.then(|| norm(format!("{p}.self_attn.q_norm.weight"))),
                        k_norm: qk.then(|| norm(format!("{p}.self_attn.k_norm.weight"))),
                    },
                    mlp,
                    input_layernorm: norm(format!("{p}.input_layernorm.weight")),
                    post_attention_layernorm: norm(format!("{p}.post_attention_layernorm.weight")),
                }
            })
            .collect();
        let model = LlamaModel {
            embed_tokens: Embedding {
                weight: take2("model.embed_tokens.weight".into()),
            },
            layers,
            norm: norm("model.norm.weight".into()),
        };
        let lm_head = (!config.tie_word_embeddings)
            .then(|| Linear::plain(take2("lm_head.weight".into()), None));
        Ok(Self {
            model,
            lm_head,
            config: config.clone(),
            compute: Compute::F32,
        })
    }

    /// A copy without autodiff for sampling and scoring, its weights already in the compute
    /// dtype: with bf16 compute, every weight is cast once here instead of at every use (a
    /// decoding step would otherwise read 4 bytes and write 2 per weight per token). `LlmPolicy`
    /// keeps one until its weights change.
    pub fn inference_copy(&self) -> Self {
        let model = self.valid();
        match self.compute {
            Compute::F32 => model,
            Compute::Bf16 => model.map(&mut CastWeights(FloatDType::BF16)),
        }
    }

    /// Every decoder layer's projections by LoRA target name (`q_proj`, `k_proj`, `v_proj`,
    /// `o_proj`, `gate_proj`, `up_proj`, `down_proj`) with their checkpoint path
    /// (`model.layers.0.self_attn.q_proj`).
    pub fn projections_mut(&mut self) -> Vec<(String, &'static str, &mut Linear)> {
        let mut out = Vec::new();
        for (i, layer) in self.model.layers.iter_mut().enumerate() {
            let (a, m) = (
                format!("model.layers.{i}.self_attn"),
                format!("model.layers.{i}.mlp"),
            );
            let attn = &mut layer.self_attn;
            out.push((format!("{a}.q_proj"), "q_proj", &mut attn.q_proj));
            out.push((format!("{a}.k_proj"), "k_proj", &mut attn.k_proj));
            out.push((format!("{a}.v_proj"), "v_proj", &mut attn.v_proj));
            out.push((format!("{a}.o_proj"), "o_proj", &mut attn.o_proj));
            let mlp = &mut layer.mlp;
            out.push((format!("{m}.gate_proj"), "gate_proj", &mut mlp.gate_proj));
            out.push((format!("{m}.up_proj"), "up_proj", &mut mlp.up_proj));
            out.push((format!("{m}.down_proj"), "down_proj", &mut mlp.down_proj));
        }
        out
    }

    /// The model computing in `compute` (its parameters stay f32).
    pub fn with_compute(mut self, compute: Compute) -> Self {
        self.compute = compute;
        self
    }

    /// The dtype activations are computed in.
    pub fn compute(&self) -> Compute {
        self.compute
    }

    /// The architecture.
    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// Hidden states after the final norm for every input column.
    ///
    /// Shapes: `tokens`, `positions` `[b, s]`; `bias` `[b, 1, s, s_k]` additive attention bias
    /// (0 where a query may attend, a large negative number elsewhere) with `s_k` the cached
    /// columns plus `s`. Returns `[b, s, d]`. With a cache, the new keys and values are written
    /// into it at columns `len..len + s`.
    pub fn hidden(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        bias: Tensor<4>,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let s = tokens.dims()[1];
        let rope = self.rope(positions);
        let mut x = self.embed(tokens);
        for index in 0..self.model.layers.len() {
            x = self.layer(index, x, &rope, &bias, cache.as_deref_mut());
        }
        if let Some(cache) = cache {
            cache.advance(s);
        }
        self.final_norm(x)
    }

    /// The rows of the embedding for `tokens` `[b, s]`: `[b, s, d]` in the compute dtype.
    pub fn embed(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let [b, s] = tokens.dims();
        let d = self.config.hidden_size;
        self.compute.cast(
            self.model
                .embed_tokens
                .weight
                .val()
                .select(0, tokens.reshape([b * s]))
                .reshape([b, s, d]),
        )
    }

    /// The rotary tables `(cos, sin)` `[b, 1, s, head_dim]` at `positions` `[b, s]`.
    pub fn rope(&self, positions: Tensor<2, Int>) -> (Tensor<4>, Tensor<4>) {
        let (cos, sin) = rotary_tables(&self.config.inv_freq(), positions);
        (self.compute.cast(cos), self.compute.cast(sin))
    }

    /// The final RMSNorm of the trunk.
    pub fn final_norm(&self, x: Tensor<3>) -> Tensor<3> {
        self.model
            .norm
            .forward(x, self.config.rms_norm_eps, self.compute)
    }

    /// Decoder layer `index` on its input `x` `[b, s, d]` (the residual stream), with the
    /// rotary tables of [`CausalLm::rope`] and `bias` `[b, 1, s, s_k]` as in
    /// [`CausalLm::hidden`]; with a cache, this layer's keys and values are written at columns
    /// `len..len + s` (the caller advances `len` after the last layer).
    pub fn layer(
        &self,
        index: usize,
        x: Tensor<3>,
        (cos, sin): &(Tensor<4>, Tensor<4>),
        bias: &Tensor<4>,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let c = &self.config;
        let cx = self.compute;
        let (heads, kv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let groups = heads / kv;
        // [b, 1, 1, s, s_k]: broadcast over key/value heads and query groups.
        let s_k = bias.dims()[3];
        let bias = bias.clone().reshape([b, 1, 1, s, s_k]);
        let layer = &self.model.layers[index];
        let attn = &layer.self_attn;
        let h = layer.input_layernorm.forward(x.clone(), c.rms_norm_eps, cx);
        let mut q = attn
            .q_proj
            .forward(h.clone(), cx)
            .reshape([b, s, heads, hd]);
        let mut k = attn.k_proj.forward(h.clone(), cx).reshape([b, s, kv, hd]);
        let v = attn
            .v_proj
            .forward(h, cx)
            .reshape([b, s, kv, hd])
            .swap_dims(1, 2);
        if let (Some(qn), Some(kn)) = (&attn.q_norm, &attn.k_norm) {
            q = qn.forward(q, c.rms_norm_eps, cx);
            k = kn.forward(k, c.rms_norm_eps, cx);
        }
        let q = rotate_half(q.swap_dims(1, 2), cos, sin); // [b, heads, s, hd]
        let k = rotate_half(k.swap_dims(1, 2), cos, sin); // [b, kv, s, hd]
        let (k, v) = match cache {
            Some(cache) => cache.append(index, k, v),
            None => (k, v),
        };
        // Grouped-query attention without repeating keys: the query heads of one key/value
        // head are stacked along the row axis. [b, kv, groups·s, hd]
        let q = q.reshape([b, kv, groups * s, hd]);
        // Scores in the compute dtype, softmax in f32 (transformers' eager attention).
        let scores = f32(q.matmul(k.swap_dims(2, 3)).div_scalar((hd as f64).sqrt()))
            .reshape([b, kv, groups, s, s_k])
            .add(bias);
        let probs = cx
            .cast(softmax(scores, 4))
            .reshape([b, kv, groups * s, s_k]);
        let attended = probs
            .matmul(v) // [b, kv, groups·s, hd]
            .reshape([b, heads, s, hd])
            .swap_dims(1, 2)
            .reshape([b, s, heads * hd]);
        let x = x.add(attn.o_proj.forward(attended, cx));
        let h = layer
            .post_attention_layernorm
            .forward(x.clone(), c.rms_norm_eps, cx);
        let gated =
            silu(layer.mlp.gate_proj.forward(h.clone(), cx)).mul(layer.mlp.up_proj.forward(h, cx));
        x.add(layer.mlp.down_proj.forward(gated, cx))
    }

    /// The head: f32 logits `[b, s, vocab]` of hidden states `[b, s, d]` (computed in the
    /// compute dtype).
    pub fn head(&self, hidden: Tensor<3>) -> Tensor<3> {
        let cx = self.compute;
        let logits = match &self.lm_head {
            Some(head) => head.forward(hidden, cx),
            None => {
                let [b, s, d] = hidden.dims();
                let weight = cx.cast(self.model.embed_tokens.weight.val()); // [vocab, d]
                let vocab = weight.dims()[0];
                hidden
                    .reshape([b * s, d])
                    .matmul(weight.transpose())
                    .reshape([b, s, vocab])
            }
        };
        f32(logits)
    }
}

/// `cos` and `sin` `[b, 1, s, head_dim]` of the rotary angles at `positions` `[b, s]`, the
/// half-width table repeated twice as transformers' `cat((freqs, freqs))` does.
fn rotary_tables(inv_freq: &[f32], positions: Tensor<2, Int>) -> (Tensor<4>, Tensor<4>) {
    let device = positions.device();
    let [b, s] = positions.dims();
    let half = inv_freq.len();
    let inv = Tensor::<1>::from_data(TensorData::new(inv_freq.to_vec(), [half]), &device);
    let angles = positions
        .float()
        .reshape([b, s, 1])
        .mul(inv.reshape([1, 1, half]));
    let angles = Tensor::cat(vec![angles.clone(), angles], 2).reshape([b, 1, s, 2 * half]);
    (angles.clone().cos(), angles.sin())
}

/// `x · cos + rotate_half(x) · sin` with `rotate_half(x) = [-x₂, x₁]` (transformers'
/// `apply_rotary_pos_emb`). `x` `[b, h, s, hd]`, `cos`/`sin` `[b, 1, s, hd]`.
fn rotate_half(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let [b, h, s, hd] = x.dims();
    let half = hd / 2;
    let x1 = x.clone().slice([0..b, 0..h, 0..s, 0..half]);
    let x2 = x.clone().slice([0..b, 0..h, 0..s, half..hd]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x.mul(cos.clone()).add(rotated.mul(sin.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_shapes_count_the_published_sizes() {
        let c = LlmConfig::from_hf(&serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 576, "intermediate_size": 1536,
            "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
            "vocab_size": 49152, "tie_word_embeddings": true
        }))
        .unwrap();
        let total: usize = parameter_shapes(&c)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(total, c.num_params());
        assert_eq!(total, 134_515_008, "SmolLM2-135M");
    }
}
