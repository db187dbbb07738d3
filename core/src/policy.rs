//! The `Policy` trait: a model that samples responses and scores them token by token.

use std::collections::BTreeMap;

use burn::prelude::*;
use burn::tensor::{Gradients, TensorData};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::Result;

/// How responses are sampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    /// Softmax temperature; `0` means greedy (argmax).
    pub temperature: f32,
    /// The most new tokens per response, end-of-sequence included.
    pub max_new_tokens: usize,
    /// The fewest new tokens per response: until a response has this many, its stop tokens
    /// get probability 0 (transformers' `min_new_tokens`, vLLM's `min_tokens`; the sampled
    /// log-probs are then those of the renormalized distribution). `zoo bench` sets it to
    /// `max_new_tokens` so that every response has exactly that length.
    #[serde(default)]
    pub min_new_tokens: usize,
}

/// One sampled response.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Token ids, ending with end-of-sequence when `finished`.
    pub tokens: Vec<u32>,
    /// `log π(token | prefix)` at the sampling temperature, one per token (for greedy decoding,
    /// at temperature 1).
    pub logprobs: Vec<f32>,
    /// Whether end-of-sequence was sampled before the length cap.
    pub finished: bool,
}

/// Maps characters to token ids and back.
pub trait Tokenizer: Send + Sync {
    /// Token ids of `text` (no special tokens added).
    fn encode(&self, text: &str) -> Result<Vec<u32>>;
    /// The text of `tokens`, special tokens dropped.
    fn decode(&self, tokens: &[u32]) -> String;
    /// Beginning-of-sequence id.
    fn bos(&self) -> u32;
    /// End-of-sequence id: the token appended to supervised targets (for a chat model, the
    /// end-of-turn token its template writes after an assistant message).
    fn eos(&self) -> u32;
    /// Every id that ends a sampled response (e.g. Qwen2.5-Instruct's `<|im_end|>` and
    /// `<|endoftext|>`); includes [`Tokenizer::eos`].
    fn stop_tokens(&self) -> Vec<u32> {
        vec![self.eos()]
    }
    /// Padding id.
    fn pad(&self) -> u32;
    /// Number of token ids.
    fn vocab_size(&self) -> usize;
    /// The context tokens a policy reads before its response to the user message `prompt`.
    /// Default: `[bos] + encode(prompt)`; a chat model renders its chat template around it.
    fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>> {
        let mut tokens = vec![self.bos()];
        tokens.extend(self.encode(prompt)?);
        Ok(tokens)
    }
}

/// A parameter: its shape and its values flattened to one dimension.
#[derive(Debug, Clone)]
pub struct NamedTensor {
    /// The parameter's shape.
    pub shape: Vec<usize>,
    /// The values (or gradients), flattened row-major.
    pub value: Tensor<1>,
}

/// Parameters (or their gradients) by checkpoint name, e.g. `layers.0.self_attn.q_proj.weight`.
pub type NamedTensors = BTreeMap<String, NamedTensor>;

/// A trainable language policy: samples, scores by teacher forcing, and exposes its parameters
/// by name so that the trainer's optimizer and checkpoints need no model type.
///
/// Object-safe: Burn 0.22 tensors carry their backend in their device.
pub trait Policy: Send {
    /// The tokenizer of this policy.
    fn tokenizer(&self) -> &dyn Tokenizer;

    /// The device the parameters live on (with autodiff enabled).
    fn device(&self) -> Device;

    /// Raw logits (temperature 1) at every response position: row `i`, column `j` holds the
    /// scores of the token that follows `contexts[i] + responses[i][..j]`.
    ///
    /// Shapes: `contexts` and `responses` have `n` rows each; the result is `[n, t, v]` with `t`
    /// the longest response and `v` the vocabulary. Values at padded positions are unspecified
    /// (finite). With `grad` the result is part of an autodiff graph; without it no graph is
    /// recorded.
    fn token_logits(&self, contexts: &[Vec<u32>], responses: &[Vec<u32>], grad: bool) -> Tensor<3>;

    /// Teacher-forced log-probs of each response token after its context, `[n, t]`, 0 (with a
    /// zero gradient) at padded positions. Logits are divided by `temperature` before the
    /// log-softmax (every reference implementation scores at the sampling temperature).
    fn token_logprobs(
        &self,
        contexts: &[Vec<u32>],
        responses: &[Vec<u32>],
        temperature: f32,
        grad: bool,
    ) -> Tensor<2> {
        sampled_logprobs(
            self.token_logits(contexts, responses, grad),
            responses,
            temperature,
        )
    }

    /// Samples one response per row of `prompts` (repeat a prompt to get a group), recording
    /// each token's behaviour log-prob. Reproducible for a given `rng` state.
    fn sample(
        &self,
        prompts: &[Vec<u32>],
        sampling: &SamplingConfig,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Sample>;

    /// As [`Policy::sample`], with one random stream per row: row `i` draws only from
    /// `streams[i]`, so its response does not depend on which rows share the call (the
    /// trainer keys each row's stream by its place in the step's batch, and data-parallel
    /// ranks sample their shares of it). Default: one call per row; a batched sampler
    /// overrides it.
    fn sample_rows(
        &self,
        prompts: &[Vec<u32>],
        sampling: &SamplingConfig,
        streams: &mut [ChaCha8Rng],
    ) -> Vec<Sample> {
        assert_eq!(prompts.len(), streams.len(), "one stream per row");
        prompts
            .iter()
            .zip(streams)
            .flat_map(|(prompt, stream)| {
                self.sample(std::slice::from_ref(prompt), sampling, stream)
            })
            .collect()
    }

    /// The inputs of the output head at every response position, `[n, t, d]`: with
    /// [`Policy::head`] they give [`Policy::token_logits`], `head(response_hidden(..))`.
    /// The trainer runs the head over chunks of positions so that no `[n, t, v]` tensor is
    /// alive at once. Default: the logits themselves (`d = v`, an identity head), which is exact
    /// and saves nothing; a model with a large vocabulary returns its final hidden states.
    fn response_hidden(
        &self,
        contexts: &[Vec<u32>],
        responses: &[Vec<u32>],
        grad: bool,
    ) -> Tensor<3> {
        self.token_logits(contexts, responses, grad)
    }

    /// The output head: raw logits `[b, c, v]` of hidden states `[b, c, d]` from
    /// [`Policy::response_hidden`]. With `grad` the head's parameters join the autodiff graph
    /// (the input may be an autodiff leaf); without it no graph is recorded. Default: identity.
    fn head(&self, hidden: Tensor<3>, grad: bool) -> Tensor<3> {
        if grad { hidden } else { hidden.inner() }
    }

    /// Whether the trainer should take the head inputs without a graph and leave the trunk's
    /// backward pass to [`Policy::trunk_gradients`], which runs the layers again one at a time
    /// (activation recomputation: memory of one layer's activations instead of all). Default:
    /// no.
    fn recomputes_trunk(&self) -> bool {
        false
    }

    /// The parameter gradients of `Σ hidden · d_hidden` for the head inputs `hidden`
    /// `[n, t, d]` of these rows (from [`Policy::response_hidden`]) and their gradient
    /// `d_hidden`. Default: `hidden` carries its graph, and this is its backward pass; a policy
    /// that [recomputes](Policy::recomputes_trunk) got `hidden` without one and runs its
    /// layers again here.
    fn trunk_gradients(
        &self,
        _contexts: &[Vec<u32>],
        _responses: &[Vec<u32>],
        hidden: Tensor<3>,
        d_hidden: Tensor<3>,
    ) -> NamedTensors {
        backward_through(self, hidden, d_hidden)
    }

    /// Positions (`rows × columns`) the trainer passes to [`Policy::head`] at once. Default:
    /// unbounded (a small vocabulary needs no chunks).
    fn head_chunk_positions(&self) -> usize {
        usize::MAX
    }

    /// The gradients in `grads` of the parameters the backward pass reached, by name;
    /// parameters it did not reach are left out (their gradient is zero).
    fn gradients(&self, grads: &Gradients) -> NamedTensors;

    /// Back-propagates `loss` (a one-element tensor) and returns each parameter's gradient
    /// (parameters the loss does not reach are left out).
    fn backward(&self, loss: Tensor<1>) -> NamedTensors {
        self.gradients(&loss.backward())
    }

    /// The current parameter values (no autodiff graph).
    fn parameters(&self) -> NamedTensors;

    /// Replaces parameter values by name; every parameter must be given, with its shape.
    fn set_parameters(&mut self, values: &NamedTensors) -> Result<()>;

    /// What a checkpoint must record to rebuild this policy (e.g. its architecture), stored in
    /// the header of every `model.safetensors` the trainer writes.
    fn metadata(&self) -> crate::checkpoint::Metadata {
        Default::default()
    }

    /// A frozen copy (for a reference or teacher policy).
    fn snapshot(&self) -> Box<dyn Policy>;

    /// Forward FLOPs of one token read after `context` tokens, for `perf/mfu`; `None` when not
    /// known (the tabular policies).
    fn flops_per_token(&self, _context: usize) -> Option<f64> {
        None
    }

    /// The longest context + response the model reads (`max_position_embeddings`), if bounded.
    fn max_context(&self) -> Option<usize> {
        None
    }

    /// Writes the files that make a checkpoint folder holding this policy's `model.safetensors`
    /// loadable on its own (for a Hugging Face model: `config.json` and the tokenizer files).
    fn write_model_files(&self, _dir: &std::path::Path) -> Result<()> {
        Ok(())
    }
}

/// The parameter gradients of `Σ hidden · d_hidden` through `hidden`'s graph (none without
/// one): [`Policy::trunk_gradients`] when the trunk is not recomputed.
pub fn backward_through<P: Policy + ?Sized>(
    policy: &P,
    hidden: Tensor<3>,
    d_hidden: Tensor<3>,
) -> NamedTensors {
    let trunk = hidden.mul(d_hidden).sum();
    if trunk.is_tracked() {
        policy.gradients(&trunk.backward())
    } else {
        NamedTensors::new()
    }
}

/// Token ids, positions and validity of a batch of `(context, response)` rows laid out
/// `[pad…][context][response][pad…]`: contexts right-aligned at column `context_cols`,
/// responses left-aligned after it. Positions count valid tokens only, so a row's tokens sit at
/// the positions they would have alone. Shared by the models' prefill and scoring passes.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Number of rows.
    pub rows: usize,
    /// Columns: the longest context plus the longest response.
    pub cols: usize,
    /// The column the responses start at (the longest context's length).
    pub context_cols: usize,
    /// `[rows, cols]` token ids, `pad` where not valid, row-major.
    pub tokens: Vec<i64>,
    /// `[rows, cols]` positions: the number of valid tokens before each column in its row.
    pub positions: Vec<i64>,
    /// `[rows, cols]`: whether a column holds a token of the row.
    pub valid: Vec<bool>,
}

impl Layout {
    /// Lays out `contexts[i]` followed by `responses[i]`, padding with `pad`.
    pub fn new(contexts: &[Vec<u32>], responses: &[Vec<u32>], pad: u32) -> Self {
        let rows = contexts.len();
        let context_cols = contexts.iter().map(Vec::len).max().unwrap_or(0);
        let response_cols = responses.iter().map(Vec::len).max().unwrap_or(0);
        let cols = context_cols + response_cols;
        let mut tokens = vec![pad as i64; rows * cols];
        let mut valid = vec![false; rows * cols];
        let mut positions = vec![0i64; rows * cols];
        for (i, (context, response)) in contexts.iter().zip(responses).enumerate() {
            let start = context_cols - context.len();
            // (column, token) of the context, then of the response.
            let row = (start..).zip(context).chain((context_cols..).zip(response));
            for (col, &t) in row {
                tokens[i * cols + col] = t as i64;
                valid[i * cols + col] = true;
            }
            let mut next = 0;
            for j in 0..cols {
                positions[i * cols + j] = next;
                if valid[i * cols + j] {
                    next += 1;
                }
            }
        }
        Self {
            rows,
            cols,
            context_cols,
            tokens,
            positions,
            valid,
        }
    }

    /// `[rows, cols]` token ids.
    pub fn tokens(&self, device: &Device) -> Tensor<2, Int> {
        Tensor::from_data(
            TensorData::new(self.tokens.clone(), [self.rows, self.cols]),
            device,
        )
    }

    /// `[rows, cols]` positions.
    pub fn positions(&self, device: &Device) -> Tensor<2, Int> {
        Tensor::from_data(
            TensorData::new(self.positions.clone(), [self.rows, self.cols]),
            device,
        )
    }
}

/// The responses of a batch read after their contexts, which already sit in a KV cache: each
/// row's response but its last token (that token predicts nothing scored), `[rows, cols]` with
/// `cols` = the longest response − 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Continuation {
    /// Number of rows.
    pub rows: usize,
    /// Response columns.
    pub cols: usize,
    /// Token ids, `pad` past a row's response, row-major.
    pub tokens: Vec<i64>,
    /// Positions: each row's continue from its context's length.
    pub positions: Vec<i64>,
    /// `[rows, cols, key_cols + cols]`: whether a query may attend to a key, the cached
    /// context columns (where valid) and the earlier response columns.
    pub open: Vec<bool>,
}

impl Continuation {
    /// The continuation of `responses` after the distinct contexts `row_to_context[i]` refers
    /// to: their lengths `context_lens`, and `context_valid` `[contexts, key_cols]` saying which
    /// cached columns hold a context token (the contexts are left-padded to `key_cols`).
    pub fn new(
        responses: &[Vec<u32>],
        row_to_context: &[usize],
        context_lens: &[usize],
        context_valid: &[bool],
        key_cols: usize,
        pad: u32,
    ) -> Self {
        let rows = responses.len();
        let cols = responses.iter().map(Vec::len).max().unwrap_or(1).max(1) - 1;
        let keys = key_cols + cols;
        let mut tokens = vec![pad as i64; rows * cols];
        let mut positions = vec![0i64; rows * cols];
        let mut open = vec![false; rows * cols * keys];
        for (i, response) in responses.iter().enumerate() {
            let u = row_to_context[i];
            for j in 0..cols {
                tokens[i * cols + j] = response.get(j).map_or(pad as i64, |&x| x as i64);
                positions[i * cols + j] = (context_lens[u] + j) as i64;
                let query = &mut open[(i * cols + j) * keys..(i * cols + j + 1) * keys];
                query[..key_cols].copy_from_slice(&context_valid[u * key_cols..(u + 1) * key_cols]);
                query[key_cols..=key_cols + j].fill(true);
            }
        }
        Self {
            rows,
            cols,
            tokens,
            positions,
            open,
        }
    }
}

/// `indices` as a `[len]` index tensor on `device` (for `select`: a distinct context's rows
/// expanded to the rows that share it).
pub fn index_tensor(indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(values, [indices.len()]), device)
}

/// The distinct sequences of `rows` in order of first appearance, and for each row the index
/// of its sequence: a group's shared prompt, run once.
pub fn distinct(rows: &[Vec<u32>]) -> (Vec<Vec<u32>>, Vec<usize>) {
    let mut unique: Vec<Vec<u32>> = Vec::new();
    let mut seen: std::collections::HashMap<&[u32], usize> = std::collections::HashMap::new();
    let index = rows
        .iter()
        .map(|r| {
            *seen.entry(r.as_slice()).or_insert_with(|| {
                unique.push(r.clone());
                unique.len() - 1
            })
        })
        .collect();
    (unique, index)
}

/// Checks that prompts of `prompt_tokens` tokens plus `max_new_tokens` fit `policy`'s context.
pub fn check_context(
    policy: &dyn Policy,
    prompt_tokens: usize,
    max_new_tokens: usize,
) -> Result<()> {
    match policy.max_context() {
        Some(max) if prompt_tokens + max_new_tokens > max => Err(crate::Error::Config(format!(
            "a prompt of {prompt_tokens} tokens plus up to {max_new_tokens} new tokens exceeds the model's context of {max} tokens\nhint: shorten the prompt or lower the response length cap (`max_new_tokens`)"
        ))),
        _ => Ok(()),
    }
}

/// The log-probs `[n, t]` of the sampled `responses` under `logits` `[n, t, v]` divided by
/// `temperature`; padded positions get the value 0 and exactly zero gradient.
pub fn sampled_logprobs(logits: Tensor<3>, responses: &[Vec<u32>], temperature: f32) -> Tensor<2> {
    let [n, cols, _] = logits.dims();
    let device = logits.device();
    if cols == 0 {
        return Tensor::zeros([n, 0], &device);
    }
    let logprobs = burn::tensor::activation::log_softmax(logits.div_scalar(temperature), 2);
    let (targets, mask) = response_targets(responses, cols, &device);
    // Multiplying by the mask gives padded positions a value and a gradient of exactly 0.
    logprobs.gather(2, targets).reshape([n, cols]).mul(mask)
}

/// The ids of `responses` as `[n, cols, 1]` (0 at padding, for `gather`) and their mask
/// `[n, cols]` (1 at response tokens, 0 at padding).
pub fn response_targets(
    responses: &[Vec<u32>],
    cols: usize,
    device: &Device,
) -> (Tensor<3, Int>, Tensor<2>) {
    let n = responses.len();
    let mut targets = vec![0i64; n * cols];
    let mut mask = vec![0f32; n * cols];
    for (i, response) in responses.iter().enumerate() {
        for (j, &t) in response.iter().enumerate().take(cols) {
            targets[i * cols + j] = t as i64;
            mask[i * cols + j] = 1.0;
        }
    }
    (
        Tensor::from_data(TensorData::new(targets, [n, cols, 1]), device),
        Tensor::from_data(TensorData::new(mask, [n, cols]), device),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_right_aligns_contexts_and_counts_positions_over_valid_tokens() {
        let contexts = vec![vec![1, 2, 3], vec![4]];
        let responses = vec![vec![5], vec![6, 7]];
        let l = Layout::new(&contexts, &responses, 0);
        assert_eq!((l.rows, l.cols, l.context_cols), (2, 5, 3));
        assert_eq!(l.tokens, [1, 2, 3, 5, 0, 0, 0, 4, 6, 7]);
        let valid: Vec<u8> = l.valid.iter().map(|&v| u8::from(v)).collect();
        assert_eq!(valid, [1, 1, 1, 1, 0, 0, 0, 1, 1, 1]);
        // The second row's context starts at position 0 though it sits at column 2.
        assert_eq!(l.positions, [0, 1, 2, 3, 4, 0, 0, 0, 1, 2]);
    }
}
