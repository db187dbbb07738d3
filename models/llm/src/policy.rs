//! [`LlmPolicy`]: a Llama-family decoder and its Hugging Face tokenizer as a zoo [`Policy`].
//!
//! - Sampling runs on the device: only the sampled ids and their log-probs come back to the
//!   host each step. The KV cache is preallocated and written in place; each distinct prompt is
//!   prefilled once and its cache expanded to the rows that share it (the trainer's groups);
//!   finished rows leave the batch; each row draws from its own random stream, so a sample does
//!   not depend on which rows were decoded beside it.
//! - Scoring runs the head only over response positions, in chunks of positions, log-softmax
//!   in f32: without a graph no `[rows, tokens, vocab]` tensor beyond one chunk is alive.

use std::path::Path;
use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use zoo_core::burn::module::Module;
use zoo_core::burn::prelude::*;
use zoo_core::burn::tensor::activation::log_softmax;
use zoo_core::burn::tensor::{FloatDType, Gradients, TensorData};
use zoo_core::checkpoint::Metadata;
use zoo_core::policy::{
    Continuation, Layout, NamedTensors, Sample, Tokenizer, backward_through, distinct,
    index_tensor, response_targets,
};
use zoo_core::{Policy, Result, SamplingConfig, params};

use crate::config::LlmConfig;
use crate::llama::{CausalLm, Compute, KvCache};
use crate::lora::LoraConfig;
use crate::tokenizer::HfTokenizer;

/// Additive attention bias of a blocked key: far below any score, finite so that a row with
/// every key blocked (a padding query) stays a finite uniform softmax.
const BLOCKED: f32 = -1e9;

/// Positions of the head computed at once when scoring: `rows × columns` per chunk.
pub const DEFAULT_CHUNK_POSITIONS: usize = 1024;

/// A Llama / Qwen2 / Qwen3 model with its tokenizer, trainable.
pub struct LlmPolicy {
    model: CausalLm,
    device: Device,
    tokenizer: Arc<HfTokenizer>,
    chunk_positions: usize,
    recompute: bool,
    /// With `recompute`: the layer inputs the last no-graph [`Policy::response_hidden`] ran
    /// through, for [`Policy::trunk_gradients`] on the same rows to reuse (two trunk forwards
    /// per micro-batch instead of three).
    kept: std::sync::Mutex<Option<KeptTrunk>>,
    /// The copy of `model` that no-grad passes run (without autodiff, weights in the compute
    /// dtype), made at the first sampling or scoring call after the weights last changed and
    /// dropped by [`Policy::set_parameters`]: one bf16 cast per optimizer step, not one per
    /// call (a frozen teacher or reference casts once).
    inference: std::sync::Mutex<Option<CausalLm>>,
    /// The adapters' settings when only LoRA adapters train (the base frozen), with the base's
    /// name for PEFT's `adapter_config.json`.
    lora: Option<(LoraConfig, String)>,
}

/// Each decoder layer's input (the embedding's output, then every layer's output), computed
/// without a graph for these rows.
struct KeptTrunk {
    contexts: Vec<Vec<u32>>,
    responses: Vec<Vec<u32>>,
    inputs: Vec<Tensor<3>>,
}

impl std::fmt::Debug for LlmPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmPolicy")
            .field("config", self.model.config())
            .finish()
    }
}

/// `[rows, 1, cols, cols]`: causal, and blocked at padded keys.
fn attention_bias(layout: &Layout, device: &Device) -> Tensor<4> {
    let (n, s) = (layout.rows, layout.cols);
    let causal: Vec<f32> = (0..s * s)
        .map(|i| if i % s > i / s { BLOCKED } else { 0.0 })
        .collect();
    let causal = Tensor::<4>::from_data(TensorData::new(causal, [1, 1, s, s]), device);
    causal.add(key_bias(&layout.valid, n, s, device))
}

/// Token columns per block of [`draw_blocked`].
const DRAW_BLOCK: usize = 256;

/// One id per row of `probs` `[m, vocab]` (probabilities, rows summing to about 1), drawn with
/// `u[row]` uniform in [0, 1), exactly: the block of [`DRAW_BLOCK`] columns is chosen by the
/// blocks' sums (in f64 on the device), then the column inside it, both by an inverse CDF in
/// f64 on the host (only the `[m, vocab / 256]` sums and one `[m, 256]` block per row leave the
/// device). Every token is drawn with its f32 probability up to f64 rounding, however small:
/// an inverse CDF over an f32 cumulative sum cannot draw a token below half an ulp of the
/// running sum (about 3e-8 near the end of the vocabulary), a total-variation error of up to
/// vocabulary × 3e-8. Tokens of probability 0 are never drawn.
fn draw_blocked(probs: Tensor<2>, u: &[f64]) -> Vec<i64> {
    let [m, vocab] = probs.dims();
    let device = probs.device();
    let blocks = vocab.div_ceil(DRAW_BLOCK);
    // In f64: an f32 sum of a block holding a dominant token is off by up to an ulp of it
    // (6e-8 near 1), more than the whole tail of the distribution may weigh.
    let probs = probs.cast(FloatDType::F64);
    let probs = if blocks * DRAW_BLOCK > vocab {
        let pad =
            Tensor::<2>::zeros([m, blocks * DRAW_BLOCK - vocab], &device).cast(FloatDType::F64);
        Tensor::cat(vec![probs, pad], 1)
    } else {
        probs
    }
    .reshape([m, blocks, DRAW_BLOCK]);
    let host = |t: Tensor<3>| -> Vec<f64> {
        t.into_data()
            .convert::<f64>()
            .try_into_vec::<f64>()
            .expect("probabilities to host")
    };
    let sums = host(probs.clone().sum_dim(2)); // [m, blocks]
    // Inverse CDF over `weights` in f64: the first index of positive weight whose running sum
    // passes `fraction` of the total, and where inside that weight the draw falls (a fraction).
    let pick = |weights: &[f64], fraction: f64| -> (usize, f64) {
        let target = fraction * weights.iter().sum::<f64>();
        let mut running = 0.0;
        let mut last = (0, 1.0);
        for (i, &w) in weights.iter().enumerate() {
            if w > 0.0 {
                if running + w > target {
                    return (i, ((target - running) / w).clamp(0.0, 1.0));
                }
                running += w;
                last = (i, 1.0);
            }
        }
        last
    };
    let (chosen_block, within): (Vec<i64>, Vec<f64>) = (0..m)
        .map(|row| {
            let (b, within) = pick(&sums[row * blocks..(row + 1) * blocks], u[row]);
            (b as i64, within)
        })
        .unzip();
    let index = Tensor::<1, Int>::from_data(TensorData::new(chosen_block.clone(), [m]), &device)
        .reshape([m, 1, 1])
        .expand([m, 1, DRAW_BLOCK]);
    let block_values = host(probs.gather(1, index)); // [m, 1, DRAW_BLOCK]
    (0..m)
        .map(|row| {
            let values = &block_values[row * DRAW_BLOCK..(row + 1) * DRAW_BLOCK];
            let (column, _) = pick(values, within[row]);
            (chosen_block[row] as usize * DRAW_BLOCK + column).min(vocab - 1) as i64
        })
        .collect()
}

/// Without a graph: the embedding's output and each decoder layer's output `[n, cols, d]` for
/// the rows of `layout` (the inputs activation recomputation keeps).
fn layer_inputs(model: &CausalLm, layout: &Layout, device: &Device) -> Vec<Tensor<3>> {
    let rope = model.rope(layout.positions(device));
    let bias = attention_bias(layout, device);
    let mut inputs = vec![model.embed(layout.tokens(device))];
    for index in 0..model.config().num_hidden_layers {
        let x = inputs.last().expect("the embedding is kept").clone();
        inputs.push(model.layer(index, x, &rope, &bias, None));
    }
    inputs
}

/// `[rows, 1, 1, cols]`: 0 at valid keys, [`BLOCKED`] elsewhere.
fn key_bias(valid: &[bool], rows: usize, cols: usize, device: &Device) -> Tensor<4> {
    let keys: Vec<f32> = valid
        .iter()
        .map(|&v| if v { 0.0 } else { BLOCKED })
        .collect();
    Tensor::from_data(TensorData::new(keys, [rows, 1, 1, cols]), device)
}

impl LlmPolicy {
    /// A policy of `model` (whose parameters live on an autodiff device) and `tokenizer`.
    pub fn new(model: CausalLm, tokenizer: HfTokenizer, device: &Device) -> Self {
        Self {
            model,
            device: device.clone(),
            tokenizer: Arc::new(tokenizer),
            chunk_positions: DEFAULT_CHUNK_POSITIONS,
            recompute: false,
            kept: Default::default(),
            inference: Default::default(),
            lora: None,
        }
    }

    /// Trains LoRA adapters only: fresh adapters on `config.targets` drawn from `seed` (PEFT's
    /// initialization: the model is unchanged until the first step), the base frozen, stored
    /// in bf16 with `bf16_base` (which needs bf16 compute). `base` names the base model in the
    /// adapter files.
    pub fn with_lora(
        mut self,
        config: &LoraConfig,
        seed: u64,
        bf16_base: bool,
        base: &str,
    ) -> Result<Self> {
        self.check_base_dtype(bf16_base)?;
        let mut rng = zoo_core::rng::stream(seed, 0, "lora-init");
        self.model = crate::lora::attach(self.model, config, &mut rng, bf16_base)?;
        self.lora = Some((config.clone(), base.to_string()));
        self.reset_inference();
        Ok(self)
    }

    /// Loads the PEFT adapter folder `dir` onto this (base) model, its base frozen; its
    /// adapters train if this policy is trained.
    pub fn with_adapter(mut self, dir: &Path, bf16_base: bool, base: &str) -> Result<Self> {
        self.check_base_dtype(bf16_base)?;
        let (config, matrices) = crate::lora::read_peft(dir)?;
        self.model = crate::lora::load(self.model, &config, &matrices, bf16_base, dir)?;
        self.lora = Some((config, base.to_string()));
        self.reset_inference();
        Ok(self)
    }

    /// The policy with its adapters folded into the weights (a plain model, every weight
    /// trainable again in f32).
    pub fn merged(mut self) -> Self {
        self.model = crate::lora::merge(self.model);
        self.lora = None;
        self.reset_inference();
        self
    }

    /// Every parameter of the model, the frozen base's included (`Policy::parameters` leaves
    /// the base out when only adapters train).
    pub fn all_parameters(&self) -> NamedTensors {
        params::parameters(&self.model)
    }

    /// The adapters' settings, when only adapters train.
    pub fn lora(&self) -> Option<&LoraConfig> {
        self.lora.as_ref().map(|(c, _)| c)
    }

    fn check_base_dtype(&self, bf16_base: bool) -> Result<()> {
        if bf16_base && self.model.compute() != Compute::Bf16 {
            return Err(zoo_core::Error::Config(
                "`model.base_dtype = \"bf16\"` stores the frozen base in bf16, which needs bf16 compute\nhint: add `--set 'model.dtype=\"bf16\"'`".into(),
            ));
        }
        Ok(())
    }

    fn reset_inference(&mut self) {
        *self.inference.get_mut().expect("not poisoned") = None;
        *self.kept.get_mut().expect("not poisoned") = None;
    }

    /// With `recompute`, training keeps only each decoder layer's input and runs the layers
    /// again one at a time in the backward pass (activation recomputation): activation memory
    /// of one layer instead of all, for one more forward pass of the trunk.
    pub fn with_recompute(mut self, recompute: bool) -> Self {
        self.recompute = recompute;
        self
    }

    /// Positions of the output head computed at once when scoring (`rows × columns`).
    pub fn with_chunk_positions(mut self, positions: usize) -> Self {
        self.chunk_positions = positions.max(1);
        self
    }

    /// The policy computing in `compute` (f32, or bf16 with f32 master weights).
    pub fn with_compute(mut self, compute: Compute) -> Self {
        self.model = self.model.with_compute(compute);
        *self.inference.get_mut().expect("not poisoned") = None;
        self
    }

    /// The architecture.
    pub fn config(&self) -> &LlmConfig {
        self.model.config()
    }

    /// The Hugging Face tokenizer.
    pub fn hf_tokenizer(&self) -> &HfTokenizer {
        &self.tokenizer
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.model.config().num_params()
    }

    fn model_for(&self, grad: bool) -> (CausalLm, Device) {
        if grad {
            (self.model.clone(), self.device.clone())
        } else {
            let mut cached = self.inference.lock().expect("not poisoned");
            let model = cached.get_or_insert_with(|| self.model.inference_copy());
            (model.clone(), self.device.clone().inner())
        }
    }

    /// Hidden states `[n, t, d]` at the positions that predict each response token, and the
    /// model and device they were computed with.
    fn hidden_with_model(
        &self,
        contexts: &[Vec<u32>],
        responses: &[Vec<u32>],
        grad: bool,
    ) -> (Tensor<3>, CausalLm, Device) {
        assert_eq!(contexts.len(), responses.len(), "one context per response");
        assert!(
            contexts.iter().all(|c| !c.is_empty()),
            "every context has at least one token"
        );
        let (model, device) = self.model_for(grad);
        let pad = self.tokenizer.pad();
        let layout = Layout::new(contexts, responses, pad);
        let (n, t) = (layout.rows, layout.cols - layout.context_cols);
        let d = model.config().hidden_size;
        if t == 0 {
            return (Tensor::zeros([n, 0, d], &device), model, device);
        }
        let hidden = model.hidden(
            layout.tokens(&device),
            layout.positions(&device),
            attention_bias(&layout, &device),
            None,
        );
        // Column c predicts the token at column c + 1: the response starts at `context_cols`.
        let c = layout.context_cols;
        let hidden = hidden.slice([0..n, c - 1..layout.cols - 1, 0..d]);
        (hidden, model, device)
    }
}

impl LlmPolicy {
    /// Without a graph, when rows share contexts (a group's responses to one prompt): the head
    /// inputs `[n, t, d]` at the response positions, each distinct context run once into a KV
    /// cache that its rows then read, instead of once per row, with the model and device they
    /// were computed with (the head reuses the same inference copy). `None` when no context
    /// repeats.
    fn shared_context_hidden(
        &self,
        contexts: &[Vec<u32>],
        responses: &[Vec<u32>],
    ) -> Option<(Tensor<3>, CausalLm, Device)> {
        let (unique, row_to_unique) = distinct(contexts);
        let (n, t) = (responses.len(), responses.iter().map(Vec::len).max()?);
        if unique.len() == n || t == 0 || contexts.iter().any(Vec::is_empty) {
            return None;
        }
        let (model, device) = self.model_for(false);
        let pad = self.tokenizer.pad();
        let empty = vec![Vec::new(); unique.len()];
        let layout = Layout::new(&unique, &empty, pad);
        let cols = layout.cols;
        let d = model.config().hidden_size;
        let mut cache = KvCache::new(cols + t - 1);
        let context_hidden = model.hidden(
            layout.tokens(&device),
            layout.positions(&device),
            attention_bias(&layout, &device),
            Some(&mut cache),
        );
        let expand = index_tensor(&row_to_unique, &device);
        // The last context column predicts the first response token.
        let first = context_hidden
            .slice([0..unique.len(), cols - 1..cols, 0..d])
            .select(0, expand.clone());
        if t == 1 {
            return Some((first, model, device));
        }
        cache.select_rows(expand);
        // The responses but their last token, after each row's context: positions continue
        // from the context's length; keys are the context's valid columns and the earlier
        // response tokens.
        let lens: Vec<usize> = unique.iter().map(Vec::len).collect();
        let c = Continuation::new(responses, &row_to_unique, &lens, &layout.valid, cols, pad);
        let bias: Vec<f32> = c
            .open
            .iter()
            .map(|&open| if open { 0.0 } else { BLOCKED })
            .collect();
        let s = c.cols;
        let rest = model.hidden(
            Tensor::from_data(TensorData::new(c.tokens, [n, s]), &device),
            Tensor::from_data(TensorData::new(c.positions, [n, s]), &device),
            Tensor::from_data(TensorData::new(bias, [n, 1, s, cols + s]), &device),
            Some(&mut cache),
        );
        Some((Tensor::cat(vec![first, rest], 1), model, device))
    }
}

impl Policy for LlmPolicy {
    fn tokenizer(&self) -> &dyn Tokenizer {
        self.tokenizer.as_ref()
    }

    fn device(&self) -> Device {
        self.device.clone()
    }

    fn token_logits(&self, contexts: &[Vec<u32>], responses: &[Vec<u32>], grad: bool) -> Tensor<3> {
        let (hidden, model, _) = self.hidden_with_model(contexts, responses, grad);
        let [n, t, _] = hidden.dims();
        if t == 0 {
            return Tensor::zeros([n, 0, model.config().vocab_size], &hidden.device());
        }
        model.head(hidden)
    }

    fn token_logprobs(
        &self,
        contexts: &[Vec<u32>],
        responses: &[Vec<u32>],
        temperature: f32,
        grad: bool,
    ) -> Tensor<2> {
        let shared = (!grad)
            .then(|| self.shared_context_hidden(contexts, responses))
            .flatten();
        let (hidden, model, device) = match shared {
            Some(shared) => shared,
            None => self.hidden_with_model(contexts, responses, grad),
        };
        let [n, t, d] = hidden.dims();
        if t == 0 {
            return Tensor::zeros([n, 0], &device);
        }
        let (ids, mask) = response_targets(responses, t, &device);
        let step = (self.chunk_positions / n.max(1)).max(1);
        let mut chunks = Vec::new();
        for start in (0..t).step_by(step) {
            let end = (start + step).min(t);
            let logits = model.head(hidden.clone().slice([0..n, start..end, 0..d]));
            let logprobs = log_softmax(logits.div_scalar(temperature), 2);
            let chunk_ids = ids.clone().slice([0..n, start..end, 0..1]);
            chunks.push(logprobs.gather(2, chunk_ids).reshape([n, end - start]));
        }
        // Multiplying by the mask gives padded positions a value and a gradient of exactly 0.
        Tensor::cat(chunks, 1).mul(mask)
    }

    fn sample(
        &self,
        prompts: &[Vec<u32>],
        sampling: &SamplingConfig,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Sample> {
        // One random stream per row, keyed by the row's index in this call.
        let seed: u64 = rng.random();
        let mut streams: Vec<ChaCha8Rng> = (0..prompts.len())
            .map(|i| zoo_core::rng::stream(seed, i as u64, "llm-sample-row"))
            .collect();
        self.sample_rows(prompts, sampling, &mut streams)
    }

    fn sample_rows(
        &self,
        prompts: &[Vec<u32>],
        sampling: &SamplingConfig,
        streams: &mut [ChaCha8Rng],
    ) -> Vec<Sample> {
        assert_eq!(prompts.len(), streams.len(), "one stream per row");
        let n = prompts.len();
        let mut out: Vec<Sample> = (0..n)
            .map(|_| Sample {
                tokens: Vec::new(),
                logprobs: Vec::new(),
                finished: false,
            })
            .collect();
        if n == 0 || sampling.max_new_tokens == 0 {
            return out;
        }
        let (model, device) = self.model_for(false);
        let config = model.config().clone();
        let vocab = config.vocab_size;
        let stop = self.tokenizer.stop_tokens();
        let greedy = sampling.temperature <= 0.0;
        let temperature = if greedy { 1.0 } else { sampling.temperature };
        // Prefill each distinct prompt once.
        let (unique, row_to_unique) = distinct(prompts);
        let empty = vec![Vec::new(); unique.len()];
        let layout = Layout::new(&unique, &empty, self.tokenizer.pad());
        let cols = layout.cols;
        let mut cache = KvCache::new(cols + sampling.max_new_tokens);
        let hidden = model.hidden(
            layout.tokens(&device),
            layout.positions(&device),
            attention_bias(&layout, &device),
            Some(&mut cache),
        );
        let d = config.hidden_size;
        let last = hidden.slice([0..unique.len(), cols - 1..cols, 0..d]);
        let mut logits = model.head(last).reshape([unique.len(), vocab]);
        // Expand to one row per prompt row. Distinct prompts are numbered in order of first
        // appearance: as many as rows means the identity.
        if unique.len() != n {
            let expand = index_tensor(&row_to_unique, &device);
            cache.select_rows(expand.clone());
            logits = logits.select(0, expand);
        }
        // Rows still decoding (indices into `prompts`), their key validity and next position.
        let mut alive: Vec<usize> = (0..n).collect();
        let mut valid: Vec<Vec<bool>> = row_to_unique
            .iter()
            .map(|&u| layout.valid[u * cols..(u + 1) * cols].to_vec())
            .collect();
        let mut next_position: Vec<i64> = valid
            .iter()
            .map(|v| v.iter().filter(|&&x| x).count() as i64)
            .collect();

        // `[1, vocab]`: -inf at the stop tokens, added to the logits before `min_new_tokens`.
        let no_stop = (sampling.min_new_tokens > 0).then(|| {
            let mut bias = vec![0f32; vocab];
            for &t in stop.iter().filter(|&&t| (t as usize) < vocab) {
                bias[t as usize] = f32::NEG_INFINITY;
            }
            Tensor::<2>::from_data(TensorData::new(bias, [1, vocab]), &device)
        });
        for step in 0..sampling.max_new_tokens {
            let m = alive.len();
            if let Some(bias) = no_stop.as_ref().filter(|_| step < sampling.min_new_tokens) {
                logits = logits.add(bias.clone().expand([m, vocab]));
            }
            let logprobs = log_softmax(logits.div_scalar(temperature), 1); // [m, vocab]
            let ids = if greedy {
                logprobs.clone().argmax(1) // [m, 1]
            } else {
                let u: Vec<f64> = alive.iter().map(|&r| streams[r].random::<f64>()).collect();
                let ids = draw_blocked(logprobs.clone().exp(), &u);
                Tensor::<2, Int>::from_data(TensorData::new(ids, [m, 1]), &device)
            };
            let chosen = logprobs.gather(1, ids.clone()); // [m, 1]
            let ids_host: Vec<i64> = ids
                .into_data()
                .convert::<i64>()
                .try_into_vec::<i64>()
                .expect("ids to host");
            let lp_host: Vec<f32> = chosen
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("log-probs to host");
            let mut keep = Vec::with_capacity(m);
            for (slot, &row) in alive.iter().enumerate() {
                let token = ids_host[slot] as u32;
                out[row].tokens.push(token);
                out[row].logprobs.push(lp_host[slot]);
                if stop.contains(&token) {
                    out[row].finished = true;
                } else {
                    keep.push(slot);
                }
            }
            if keep.is_empty() || step + 1 == sampling.max_new_tokens {
                break;
            }
            let next: Vec<i64> = keep.iter().map(|&slot| ids_host[slot]).collect();
            if keep.len() < m {
                let index = index_tensor(&keep, &device);
                cache.select_rows(index);
                alive = keep.iter().map(|&s| alive[s]).collect();
                valid = keep.iter().map(|&s| valid[s].clone()).collect();
                next_position = keep.iter().map(|&s| next_position[s]).collect();
            }
            let m = alive.len();
            for v in &mut valid {
                v.push(true);
            }
            let keys = valid.first().map_or(0, Vec::len);
            let flat: Vec<bool> = valid.iter().flatten().copied().collect();
            let hidden = model.hidden(
                Tensor::from_data(TensorData::new(next, [m, 1]), &device),
                Tensor::from_data(TensorData::new(next_position.clone(), [m, 1]), &device),
                key_bias(&flat, m, keys, &device),
                Some(&mut cache),
            );
            for p in &mut next_position {
                *p += 1;
            }
            logits = model.head(hidden).reshape([m, vocab]);
        }
        out
    }

    fn response_hidden(
        &self,
        contexts: &[Vec<u32>],
        responses: &[Vec<u32>],
        grad: bool,
    ) -> Tensor<3> {
        if grad || !self.recompute {
            return self.hidden_with_model(contexts, responses, grad).0;
        }
        // Recomputation: keep each layer's input for `trunk_gradients` on these rows.
        let layout = Layout::new(contexts, responses, self.tokenizer.pad());
        let (n, t) = (layout.rows, layout.cols - layout.context_cols);
        let (model, device) = self.model_for(false);
        let d = model.config().hidden_size;
        if t == 0 {
            return Tensor::zeros([n, 0, d], &device);
        }
        let inputs = layer_inputs(&model, &layout, &device);
        let top = inputs.last().expect("the embedding is kept").clone();
        let c = layout.context_cols;
        let hidden = model
            .final_norm(top)
            .slice([0..n, c - 1..layout.cols - 1, 0..d]);
        *self.kept.lock().expect("not poisoned") = Some(KeptTrunk {
            contexts: contexts.to_vec(),
            responses: responses.to_vec(),
            inputs,
        });
        hidden
    }

    fn head(&self, hidden: Tensor<3>, grad: bool) -> Tensor<3> {
        // Called once per chunk of positions: only the head's weight is cast, where it is used.
        let model = if grad {
            self.model.clone()
        } else {
            self.model.valid()
        };
        let hidden = if grad { hidden } else { hidden.inner() };
        let [n, t, _] = hidden.dims();
        if t == 0 {
            return Tensor::zeros([n, 0, model.config().vocab_size], &hidden.device());
        }
        model.head(hidden)
    }

    fn head_chunk_positions(&self) -> usize {
        self.chunk_positions
    }

    fn flops_per_token(&self, context: usize) -> Option<f64> {
        Some(self.model.config().flops_per_token(context))
    }

    fn gradients(&self, grads: &Gradients) -> NamedTensors {
        params::gradients(&self.model, grads)
    }

    fn recomputes_trunk(&self) -> bool {
        self.recompute
    }

    /// With recomputation: the trunk runs once more without a graph, keeping each layer's
    /// input; then from the last layer to the embedding, each piece runs again with a graph on
    /// its kept input and back-propagates the gradient of its output, giving its parameters'
    /// gradients and the gradient of its input for the piece below.
    fn trunk_gradients(
        &self,
        contexts: &[Vec<u32>],
        responses: &[Vec<u32>],
        hidden: Tensor<3>,
        d_hidden: Tensor<3>,
    ) -> NamedTensors {
        if !self.recompute {
            return backward_through(self, hidden, d_hidden);
        }
        let [n, t, d] = d_hidden.dims();
        let mut grads = NamedTensors::new();
        if t == 0 {
            return grads;
        }
        let layout = Layout::new(contexts, responses, self.tokenizer.pad());
        let (cols, first) = (layout.cols, layout.context_cols - 1);
        let (model, device) = self.model_for(true);
        // The kept inputs: the embedding's output and each layer's output, from the no-graph
        // `response_hidden` of these rows when it ran, else computed now.
        let kept = self.kept.lock().expect("not poisoned").take();
        let inputs = match kept {
            Some(k) if k.contexts == contexts && k.responses == responses => k.inputs,
            _ => {
                let (inner, inner_device) = self.model_for(false);
                layer_inputs(&inner, &layout, &inner_device)
            }
        };
        let inner_device = inputs[0].device();
        // ∂L/∂(final norm's output) at every column: `d_hidden` at the response positions.
        let mut dy = Tensor::<3>::zeros([n, cols, d], &inner_device)
            .cast(d_hidden.dtype())
            .slice_assign([0..n, first..first + t, 0..d], d_hidden.inner());
        let mut step = |output: Tensor<3>, leaf: Option<&Tensor<3>>, dy: Tensor<3>| {
            if !output.is_tracked() {
                // A frozen piece with no graph input (the embedding under LoRA): no gradient.
                return None;
            }
            let g = output.mul(dy).sum().backward();
            params::accumulate(&mut grads, self.gradients(&g));
            leaf.and_then(|leaf| leaf.grad(&g))
        };
        let leaf = |x: &Tensor<3>| x.clone().autodiff().require_grad();
        let top = leaf(inputs.last().expect("layers kept"));
        dy = step(model.final_norm(top.clone()), Some(&top), dy).expect("the norm reads its input");
        let rope = model.rope(layout.positions(&device));
        let bias = attention_bias(&layout, &device);
        for index in (0..model.config().num_hidden_layers).rev() {
            let x = leaf(&inputs[index]);
            let y = model.layer(index, x.clone(), &rope, &bias, None);
            dy = step(y, Some(&x), dy).expect("a layer reads its input");
        }
        step(model.embed(layout.tokens(&device)), None, dy);
        grads
    }

    fn parameters(&self) -> NamedTensors {
        let mut all = params::parameters(&self.model);
        if self.lora.is_some() {
            // Only the adapters train: the frozen base is no parameter of the run.
            all.retain(|name, _| crate::lora::is_adapter(name));
        }
        all
    }

    fn set_parameters(&mut self, values: &NamedTensors) -> Result<()> {
        self.model = match self.lora {
            Some(_) => params::replace_some(self.model.clone(), values, &self.device)?,
            None => params::replace_parameters(self.model.clone(), values, &self.device)?,
        };
        // The next no-grad pass casts the new weights.
        *self.inference.get_mut().expect("not poisoned") = None;
        Ok(())
    }

    fn metadata(&self) -> Metadata {
        let mut metadata = Metadata::from([(
            "zoo.llm.config".to_string(),
            serde_json::to_string(self.model.config()).expect("config serializes"),
        )]);
        if let Some((config, _)) = &self.lora {
            metadata.insert(
                "zoo.lora".to_string(),
                serde_json::to_string(config).expect("config serializes"),
            );
        }
        metadata
    }

    fn snapshot(&self) -> Box<dyn Policy> {
        Box::new(LlmPolicy {
            model: self.model.clone().no_grad(),
            device: self.device.clone(),
            tokenizer: self.tokenizer.clone(),
            chunk_positions: self.chunk_positions,
            // A snapshot is never trained: it keeps no layer inputs.
            recompute: false,
            kept: Default::default(),
            inference: Default::default(),
            lora: self.lora.clone(),
        })
    }

    fn max_context(&self) -> Option<usize> {
        Some(self.model.config().max_position_embeddings)
    }

    fn write_model_files(&self, dir: &Path) -> Result<()> {
        if let Some((lora, base)) = &self.lora {
            // An adapter folder, as PEFT's `save_pretrained` writes it (no config.json: it is
            // not a model on its own), with the tokenizer files.
            crate::lora::write_peft(dir, &self.parameters(), lora, base)?;
            return self.tokenizer.save_to_dir(dir);
        }
        let config =
            serde_json::to_string_pretty(&self.model.config().to_hf()).expect("JSON serializes");
        zoo_core::checkpoint::write_atomic(&dir.join("config.json"), config.as_bytes())?;
        // tokenizer.json, tokenizer_config.json and generation_config.json (the stop tokens).
        self.tokenizer.save_to_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f64 inverse CDF over the whole row: what an exact draw gives for `u`.
    fn reference_draw(p: &[f32], u: f64) -> usize {
        let total: f64 = p.iter().map(|&x| f64::from(x)).sum();
        let mut running = 0.0;
        for (i, &x) in p.iter().enumerate() {
            running += f64::from(x);
            if x > 0.0 && running > u * total {
                return i;
            }
        }
        p.iter().rposition(|&x| x > 0.0).unwrap()
    }

    #[test]
    fn the_blocked_draw_reaches_tokens_far_below_an_f32_ulp_of_the_running_sum() {
        // One token holds 1 - 1e-6 of the mass; 1e-6 is spread over 99,999 tokens of 1e-11
        // each, far below f32's ulp near 1 (6e-8): an f32 cumulative sum never moves past the
        // first token, so an f32 inverse CDF cannot draw any of them.
        let vocab = 100_000;
        let mut p = vec![1e-11f32; vocab];
        p[0] = 1.0 - 1e-6;
        p[vocab - 7] = 0.0; // a token of probability 0 is never drawn
        let rows = 6;
        let flat: Vec<f32> = (0..rows).flat_map(|_| p.clone()).collect();
        let probs = Tensor::<2>::from_data(TensorData::new(flat, [rows, vocab]), &Device::flex());
        let u = [
            0.3,
            1.0 - 9e-7,
            1.0 - 5e-7,
            1.0 - 1e-7,
            1.0 - 1e-12,
            1.0 - 6.9e-15,
        ];
        let got = draw_blocked(probs, &u);
        for (row, &u) in u.iter().enumerate() {
            let want = reference_draw(&p, u);
            assert_eq!(got[row] as usize, want, "u = {u}");
            assert!(p[want] > 0.0);
        }
        assert_eq!(got[0], 0);
        assert!(
            got[1..].iter().all(|&id| id > 0),
            "the tail is reachable: {got:?}"
        );
    }

    fn policy() -> LlmPolicy {
        let config = LlmConfig::from_hf(&serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
            "vocab_size": 300, "tie_word_embeddings": true
        }))
        .unwrap();
        crate::shapes::random_policy(&config, 3, &Device::flex())
            .unwrap()
            .with_recompute(true)
    }

    fn host(grads: &NamedTensors) -> Vec<(String, Vec<f32>)> {
        grads
            .iter()
            .map(|(name, g)| {
                let values = g.value.clone().into_data().convert::<f32>();
                (name.clone(), values.try_into_vec::<f32>().unwrap())
            })
            .collect()
    }

    #[test]
    fn recomputation_reuses_the_layer_inputs_of_the_no_graph_forward_of_the_same_rows() {
        let policy = policy();
        let contexts = vec![vec![5u32, 6, 7], vec![9u32]];
        let responses = vec![vec![10u32, 11, 12], vec![15u32, 16]];
        let hidden = policy.response_hidden(&contexts, &responses, false);
        assert!(
            policy.kept.lock().unwrap().is_some(),
            "the forward kept its inputs"
        );
        let d_hidden = Tensor::<3>::ones(hidden.dims(), &hidden.device());
        let reused =
            policy.trunk_gradients(&contexts, &responses, hidden.clone(), d_hidden.clone());
        assert!(
            policy.kept.lock().unwrap().is_none(),
            "used once, then dropped"
        );
        // Without kept inputs (another set of rows ran last), the trunk runs again: same
        // gradients, bit for bit.
        policy.response_hidden(&contexts[..1], &responses[..1], false);
        let recomputed = policy.trunk_gradients(&contexts, &responses, hidden, d_hidden);
        assert_eq!(host(&reused), host(&recomputed));
        assert!(!reused.is_empty());
    }

    #[test]
    fn no_grad_passes_see_the_weights_set_after_the_cached_inference_copy_was_made() {
        let contexts = vec![vec![5u32, 6, 7], vec![9u32]];
        let responses = vec![vec![10u32, 11, 12], vec![15u32, 16]];
        let logits = |p: &LlmPolicy| -> Vec<f32> {
            let l = p.token_logits(&contexts, &responses, false).into_data();
            l.convert::<f32>().try_into_vec::<f32>().unwrap()
        };
        let mut trained = policy().with_compute(Compute::Bf16);
        let before = logits(&trained); // makes and keeps the bf16 copy
        let mut moved = trained.parameters();
        for p in moved.values_mut() {
            p.value = p.value.clone().mul_scalar(1.5);
        }
        trained.set_parameters(&moved).unwrap();
        let mut fresh = policy().with_compute(Compute::Bf16);
        fresh.set_parameters(&moved).unwrap();
        let after = logits(&trained);
        assert_ne!(before, after, "the new weights are read");
        assert_eq!(
            after,
            logits(&fresh),
            "exactly as a policy that never cached"
        );
        assert_eq!(
            after,
            logits(&trained),
            "and the kept copy gives them again"
        );
    }
}
