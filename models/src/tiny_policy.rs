//! [`TinyPolicy`]: the tiny decoder and the character tokenizer as a [`Policy`].

use std::path::Path;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use zoo_core::burn::module::Module;
use zoo_core::burn::prelude::*;
use zoo_core::burn::tensor::{Gradients, TensorData};
use zoo_core::checkpoint::{self, Metadata};
use zoo_core::params;
use zoo_core::policy::{
    Continuation, Layout, NamedTensors, Sample, Tokenizer, distinct, index_tensor, sampled_logprobs,
};
use zoo_core::{Error, Policy, Result, SamplingConfig};

use crate::tiny_decoder::{TinyDecoder, TinyDecoderConfig};
use crate::tokenizer::CharTokenizer;
use zoo_core::attention::KvCache;

/// The metadata key under which a checkpoint stores the architecture.
const CONFIG_KEY: &str = "zoo.tiny_decoder.config";

/// The tiny decoder as a policy.
#[derive(Debug)]
pub struct TinyPolicy {
    model: TinyDecoder,
    device: Device,
}

/// `[rows, 1, cols, cols]`: a query may attend to earlier-or-same valid columns only; a
/// padding column also to itself, so that no query is left without a key (its output is
/// never read: no valid query attends to it and its logits are not scored).
fn causal_blocked(layout: &Layout, device: &Device) -> Tensor<4, Bool> {
    let (n, s) = (layout.rows, layout.cols);
    let mut blocked = vec![false; n * s * s];
    for i in 0..n {
        for q in 0..s {
            for k in 0..s {
                blocked[(i * s + q) * s + k] = k > q || (k != q && !layout.valid[i * s + k]);
            }
        }
    }
    Tensor::from_data(TensorData::new(blocked, [n, 1, s, s]), device)
}

impl TinyPolicy {
    /// A freshly initialized policy, weights drawn from `rng`.
    pub fn new(config: &TinyDecoderConfig, rng: &mut ChaCha8Rng, device: &Device) -> Result<Self> {
        config.validate().map_err(Error::Config)?;
        if config.vocab_size != CharTokenizer::VOCAB {
            return Err(Error::Config(format!(
                "`vocab_size` is {} but the character tokenizer has {} symbols",
                config.vocab_size,
                CharTokenizer::VOCAB
            )));
        }
        // Parameters live on an autodiff device: the policy is trained.
        let device = device.clone().autodiff();
        Ok(Self {
            model: config.init(rng, &device),
            device,
        })
    }

    /// The decoder.
    pub fn model(&self) -> &TinyDecoder {
        &self.model
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.model.num_params()
    }

    /// Writes the weights (and the architecture, in the header) to `path` atomically, with
    /// extra `metadata`.
    pub fn save(&self, path: &Path, mut metadata: Metadata) -> Result<()> {
        metadata.extend(self.metadata());
        checkpoint::save_safetensors(path, &self.parameters(), &metadata)
    }

    /// Reads a policy written by [`TinyPolicy::save`].
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let meta = checkpoint::read_metadata(path)?;
        let config: TinyDecoderConfig = meta
            .get(CONFIG_KEY)
            .and_then(|c| serde_json::from_str(c).ok())
            .ok_or_else(|| Error::BadFile {
                path: path.to_path_buf(),
                reason: format!("no `{CONFIG_KEY}` in the header"),
                hint: "this is not a tiny-decoder checkpoint written by zoo".into(),
            })?;
        // Weights are replaced right away; the init draw only fixes shapes.
        let mut rng = zoo_core::rng::stream(0, 0, "shape-only");
        let mut policy = Self::new(&config, &mut rng, device)?;
        let weights = checkpoint::load_safetensors(path, device)?;
        policy.set_parameters(&weights)?;
        Ok(policy)
    }

    /// A model usable for inference: without an autodiff graph.
    fn inference_model(&self) -> TinyDecoder {
        self.model.valid()
    }
}

impl TinyPolicy {
    /// Without a graph, when rows share contexts (a group's responses to one prompt): the
    /// logits `[n, t, v]` at the response positions, each distinct context run once into a KV
    /// cache that its rows then read. `None` when no context repeats.
    fn shared_context_logits(
        &self,
        contexts: &[Vec<u32>],
        responses: &[Vec<u32>],
    ) -> Option<Tensor<3>> {
        let (unique, row_to_unique) = distinct(contexts);
        let (n, t) = (responses.len(), responses.iter().map(Vec::len).max()?);
        if unique.len() == n || t == 0 || contexts.iter().any(Vec::is_empty) {
            return None;
        }
        let model = self.inference_model();
        let device = self.device.clone().inner();
        let empty: Vec<Vec<u32>> = vec![Vec::new(); unique.len()];
        let layout = Layout::new(&unique, &empty, CharTokenizer::PAD);
        let cols = layout.cols;
        let mut cache = KvCache::new(cols + t);
        let logits = model.forward(
            layout.tokens(&device),
            layout.positions(&device),
            causal_blocked(&layout, &device),
            Some(&mut cache),
        );
        let vocab = logits.dims()[2];
        let expand = index_tensor(&row_to_unique, &device);
        // The last context column predicts the first response token.
        let first = logits
            .slice([0..unique.len(), cols - 1..cols, 0..vocab])
            .select(0, expand.clone());
        if t == 1 {
            return Some(first);
        }
        cache.select_rows(expand);
        // The responses but their last token: positions continue from the context's length;
        // keys are the context's valid columns and the earlier response tokens.
        let lens: Vec<usize> = unique.iter().map(Vec::len).collect();
        let c = Continuation::new(
            responses,
            &row_to_unique,
            &lens,
            &layout.valid,
            cols,
            CharTokenizer::PAD,
        );
        let blocked: Vec<bool> = c.open.iter().map(|&open| !open).collect();
        let s = c.cols;
        let rest = model.forward(
            Tensor::from_data(TensorData::new(c.tokens, [n, s]), &device),
            Tensor::from_data(TensorData::new(c.positions, [n, s]), &device),
            Tensor::from_data(TensorData::new(blocked, [n, 1, s, cols + s]), &device),
            Some(&mut cache),
        );
        Some(Tensor::cat(vec![first, rest], 1))
    }
}

impl TinyPolicy {
    /// The batched sampler: `draw(row)` gives the row's next uniform number in [0, 1).
    fn sample_drawing(
        &self,
        prompts: &[Vec<u32>],
        sampling: &SamplingConfig,
        mut draw: impl FnMut(usize) -> f64,
    ) -> Vec<Sample> {
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
        let model = self.inference_model();
        let device = self.device.clone().inner();
        // Prefill each distinct prompt once (a group's rows share theirs), then expand the
        // cache and the last logits to one row per prompt row.
        let (unique, row_to_unique) = distinct(prompts);
        let empty: Vec<Vec<u32>> = vec![Vec::new(); unique.len()];
        let layout = Layout::new(&unique, &empty, CharTokenizer::PAD);
        let mut cols = layout.cols;
        // [n, cols so far], row-major by row
        let mut valid: Vec<bool> = row_to_unique
            .iter()
            .flat_map(|&u| layout.valid[u * cols..(u + 1) * cols].iter().copied())
            .collect();
        let mut next_position: Vec<i64> = (0..n)
            .map(|i| {
                valid[i * cols..(i + 1) * cols]
                    .iter()
                    .filter(|&&v| v)
                    .count() as i64
            })
            .collect();
        let mut cache = KvCache::new(cols + sampling.max_new_tokens);
        let logits = model.forward(
            layout.tokens(&device),
            layout.positions(&device),
            causal_blocked(&layout, &device),
            Some(&mut cache),
        );
        let vocab = logits.dims()[2];
        let mut last = logits
            .slice([0..unique.len(), cols - 1..cols, 0..vocab])
            .reshape([unique.len(), vocab]);
        if unique.len() != n {
            let expand = index_tensor(&row_to_unique, &device);
            cache.select_rows(expand.clone());
            last = last.select(0, expand);
        }
        let temperature = if sampling.temperature > 0.0 {
            sampling.temperature
        } else {
            1.0
        };
        for _ in 0..sampling.max_new_tokens {
            let host: Vec<f32> = last
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("logits convert to f32");
            let mut next = vec![CharTokenizer::PAD as i64; n];
            let mut active = vec![false; n];
            for i in 0..n {
                if out[i].finished {
                    continue;
                }
                let mut row = host[i * vocab..(i + 1) * vocab].to_vec();
                if out[i].tokens.len() < sampling.min_new_tokens {
                    row[CharTokenizer::EOS as usize] = f32::NEG_INFINITY;
                }
                let logprobs = log_softmax_host(&row, temperature);
                let token = if sampling.temperature > 0.0 {
                    sample_index(&logprobs, draw(i))
                } else {
                    argmax(&logprobs)
                };
                out[i].tokens.push(token as u32);
                out[i].logprobs.push(logprobs[token] as f32);
                if token as u32 == CharTokenizer::EOS {
                    out[i].finished = true;
                } else {
                    next[i] = token as i64;
                    active[i] = true;
                }
            }
            if !active.iter().any(|&a| a)
                || out
                    .iter()
                    .all(|s| s.tokens.len() >= sampling.max_new_tokens)
            {
                break;
            }
            // Append one column: a real token for active rows, padding (never attended) else.
            let mut grown = Vec::with_capacity(n * (cols + 1));
            for i in 0..n {
                grown.extend_from_slice(&valid[i * cols..(i + 1) * cols]);
                grown.push(active[i]);
            }
            valid = grown;
            cols += 1;
            let positions: Vec<i64> = next_position.clone();
            for i in 0..n {
                if active[i] {
                    next_position[i] += 1;
                }
            }
            let blocked: Vec<bool> = valid.iter().map(|&v| !v).collect();
            let logits = model.forward(
                Tensor::from_data(TensorData::new(next, [n, 1]), &device),
                Tensor::from_data(TensorData::new(positions, [n, 1]), &device),
                Tensor::from_data(TensorData::new(blocked, [n, 1, 1, cols]), &device),
                Some(&mut cache),
            );
            last = logits.reshape([n, vocab]);
        }
        out
    }
}

impl Policy for TinyPolicy {
    fn tokenizer(&self) -> &dyn Tokenizer {
        &CharTokenizer
    }

    fn device(&self) -> Device {
        self.device.clone()
    }

    fn token_logits(&self, contexts: &[Vec<u32>], responses: &[Vec<u32>], grad: bool) -> Tensor<3> {
        assert_eq!(contexts.len(), responses.len(), "one context per response");
        let layout = Layout::new(contexts, responses, CharTokenizer::PAD);
        let context_cols = contexts.iter().map(Vec::len).max().unwrap_or(0);
        let response_cols = layout.cols - context_cols;
        let n = layout.rows;
        let (model, device) = if grad {
            (self.model.clone(), self.device.clone())
        } else {
            (self.inference_model(), self.device.clone().inner())
        };
        let vocab = self.model.config().vocab_size;
        if response_cols == 0 {
            return Tensor::zeros([n, 0, vocab], &device);
        }
        let logits = model.forward(
            layout.tokens(&device),
            layout.positions(&device),
            causal_blocked(&layout, &device),
            None,
        );
        // Column c predicts the token at column c + 1: the response starts at `context_cols`.
        logits.slice([0..n, context_cols - 1..layout.cols - 1, 0..vocab])
    }

    fn token_logprobs(
        &self,
        contexts: &[Vec<u32>],
        responses: &[Vec<u32>],
        temperature: f32,
        grad: bool,
    ) -> Tensor<2> {
        let logits = match (!grad)
            .then(|| self.shared_context_logits(contexts, responses))
            .flatten()
        {
            Some(logits) => logits,
            None => self.token_logits(contexts, responses, grad),
        };
        sampled_logprobs(logits, responses, temperature)
    }

    fn sample(
        &self,
        prompts: &[Vec<u32>],
        sampling: &SamplingConfig,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Sample> {
        self.sample_drawing(prompts, sampling, |_| rng.random())
    }

    fn sample_rows(
        &self,
        prompts: &[Vec<u32>],
        sampling: &SamplingConfig,
        streams: &mut [ChaCha8Rng],
    ) -> Vec<Sample> {
        assert_eq!(prompts.len(), streams.len(), "one stream per row");
        self.sample_drawing(prompts, sampling, |row| streams[row].random())
    }

    fn gradients(&self, grads: &Gradients) -> NamedTensors {
        params::gradients(&self.model, grads)
    }

    fn parameters(&self) -> NamedTensors {
        params::parameters(&self.model)
    }

    fn set_parameters(&mut self, values: &NamedTensors) -> Result<()> {
        self.model = params::replace_parameters(self.model.clone(), values, &self.device)?;
        Ok(())
    }

    fn metadata(&self) -> Metadata {
        Metadata::from([(
            CONFIG_KEY.to_string(),
            serde_json::to_string(self.model.config()).expect("config serializes"),
        )])
    }

    fn snapshot(&self) -> Box<dyn Policy> {
        Box::new(TinyPolicy {
            model: self.model.clone().no_grad(),
            device: self.device.clone(),
        })
    }

    /// `2·(matrix parameters) + 4·layers·d·context`, the LLMs' formula: every weight but the
    /// (untied) embedding is one multiply-add per token, and attention reads `context` keys
    /// and values per head dimension.
    fn flops_per_token(&self, context: usize) -> Option<f64> {
        let c = self.model.config();
        let matrices = self.num_params() - c.vocab_size * c.hidden_size;
        let attention = 4 * c.num_hidden_layers * c.hidden_size;
        Some(2.0 * matrices as f64 + attention as f64 * context as f64)
    }
}

/// `log softmax(row / temperature)` in f64.
fn log_softmax_host(row: &[f32], temperature: f32) -> Vec<f64> {
    let scaled: Vec<f64> = row.iter().map(|&x| x as f64 / temperature as f64).collect();
    let max = scaled.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let log_sum = scaled.iter().map(|x| (x - max).exp()).sum::<f64>().ln() + max;
    scaled.iter().map(|x| x - log_sum).collect()
}

fn sample_index(logprobs: &[f64], u: f64) -> usize {
    let mut cumulative = 0.0;
    for (i, lp) in logprobs.iter().enumerate() {
        cumulative += lp.exp();
        if u < cumulative {
            return i;
        }
    }
    logprobs.len() - 1
}

fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use zoo_core::rng;

    fn policy() -> TinyPolicy {
        let config = TinyDecoderConfig::small();
        TinyPolicy::new(
            &config,
            &mut rng::stream(7, 0, "init"),
            &Device::flex().autodiff(),
        )
        .unwrap()
    }

    #[test]
    fn sampling_logprobs_equal_teacher_forced_logprobs() {
        let policy = policy();
        // A repeated prompt: prefilled once, its cache expanded to both rows.
        let prompts: Vec<Vec<u32>> = ["12+345=", "9+9=", "1234+5678=", "9+9="]
            .iter()
            .map(|p| CharTokenizer.encode_prompt(p).unwrap())
            .collect();
        for temperature in [1.0f32, 0.7] {
            let sampling = SamplingConfig {
                temperature,
                max_new_tokens: 12,
                min_new_tokens: 0,
            };
            let samples = policy.sample(&prompts, &sampling, &mut rng::stream(1, 0, "s"));
            let responses: Vec<Vec<u32>> = samples.iter().map(|s| s.tokens.clone()).collect();
            let forced = policy.token_logprobs(&prompts, &responses, temperature, false);
            let forced = zoo_core::TokenMatrix::from_tensor(forced);
            for (i, s) in samples.iter().enumerate() {
                assert!(!s.tokens.is_empty());
                for (t, &lp) in s.logprobs.iter().enumerate() {
                    approx::assert_abs_diff_eq!(forced.get(i, t), lp, epsilon = 1e-4);
                }
                for t in s.tokens.len()..forced.cols {
                    assert_eq!(forced.get(i, t), 0.0, "padding is exactly 0");
                }
            }
        }
    }

    #[test]
    fn min_new_tokens_gives_every_response_that_length_and_renormalizes_without_eos() {
        let policy = policy();
        let prompts: Vec<Vec<u32>> = ["1+2=", "99+1=", "5+5="]
            .iter()
            .cycle()
            .take(12)
            .map(|p| CharTokenizer.encode_prompt(p).unwrap())
            .collect();
        let sampling = |min_new_tokens| SamplingConfig {
            temperature: 1.0,
            max_new_tokens: 16,
            min_new_tokens,
        };
        // Without the floor, this random model stops early somewhere.
        let free = policy.sample(&prompts, &sampling(0), &mut rng::stream(2, 0, "s"));
        assert!(free.iter().any(|s| s.finished && s.tokens.len() < 16));
        let exact = policy.sample(&prompts, &sampling(16), &mut rng::stream(2, 0, "s"));
        let responses: Vec<Vec<u32>> = exact.iter().map(|s| s.tokens.clone()).collect();
        let forced = zoo_core::TokenMatrix::from_tensor(
            policy.token_logprobs(&prompts, &responses, 1.0, false),
        );
        for (i, s) in exact.iter().enumerate() {
            assert_eq!(s.tokens.len(), 16);
            assert!(!s.tokens.contains(&CharTokenizer::EOS));
            for (t, &lp) in s.logprobs.iter().enumerate() {
                // log p(x | no EOS) = log p(x) − log(1 − p(EOS)) ≥ log p(x)
                assert!(lp >= forced.get(i, t) - 1e-4, "row {i} token {t}");
            }
        }
        assert!(
            exact
                .iter()
                .enumerate()
                .any(|(i, s)| s.logprobs[0] > forced.get(i, 0) + 1e-3),
            "somewhere EOS had mass to give back"
        );
    }

    #[test]
    fn scoring_groups_through_one_context_pass_equals_scoring_each_row() {
        let policy = policy();
        let prompts: Vec<Vec<u32>> = ["12+345=", "9+9=", "1234+5678="]
            .iter()
            .map(|p| CharTokenizer.encode_prompt(p).unwrap())
            .collect();
        let order = [0, 1, 2, 0, 1, 2, 2, 0, 1];
        let contexts: Vec<Vec<u32>> = order.iter().map(|&p| prompts[p].clone()).collect();
        let responses: Vec<Vec<u32>> = (0..9)
            .map(|i| {
                (0..(i * 5) % 7)
                    .map(|k| (3 + (i + k) % 12) as u32)
                    .collect()
            })
            .collect();
        // With a graph every row runs alone; without one each context runs once.
        let each = policy
            .token_logprobs(&contexts, &responses, 0.8, true)
            .detach();
        let shared = policy.token_logprobs(&contexts, &responses, 0.8, false);
        let each = zoo_core::TokenMatrix::from_tensor(each);
        let shared = zoo_core::TokenMatrix::from_tensor(shared);
        assert_eq!((each.rows, each.cols), (shared.rows, shared.cols));
        for (a, b) in each.data.iter().zip(&shared.data) {
            approx::assert_abs_diff_eq!(a, b, epsilon = 1e-5);
        }
        assert!(each.data.iter().any(|&x| x < -0.01));
    }

    #[test]
    fn sampling_is_reproducible_for_a_seed() {
        let policy = policy();
        let prompts = vec![CharTokenizer.encode_prompt("12+34=").unwrap(); 4];
        let sampling = SamplingConfig {
            temperature: 1.0,
            max_new_tokens: 10,
            min_new_tokens: 0,
        };
        let a = policy.sample(&prompts, &sampling, &mut rng::stream(3, 1, "s"));
        let b = policy.sample(&prompts, &sampling, &mut rng::stream(3, 1, "s"));
        assert_eq!(a, b);
    }

    #[test]
    fn padded_response_tokens_get_zero_gradient() {
        let policy = policy();
        let contexts = vec![CharTokenizer.encode_prompt("1+2=").unwrap(); 2];
        let responses = vec![vec![5, 6, 2], vec![7]];
        let logprobs = policy.token_logprobs(&contexts, &responses, 1.0, true);
        // Only the padded position (row 1, col 1..) would carry this weight: gradient must be 0.
        let weights = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 0.0, 0.0, 0.0, 5.0, 7.0], [2, 3]),
            &policy.device(),
        );
        let grads = policy.backward(logprobs.mul(weights).sum());
        for (name, g) in grads {
            let max = g.value.abs().max().into_scalar::<f32>();
            assert_eq!(max, 0.0, "{name}");
        }
    }

    #[test]
    fn left_padding_does_not_change_logprobs() {
        let policy = policy();
        let short = CharTokenizer.encode_prompt("1+2=").unwrap();
        let long = CharTokenizer.encode_prompt("1234+5678=").unwrap();
        let response = vec![5u32, 6, 2];
        let alone = policy.token_logprobs(
            std::slice::from_ref(&short),
            std::slice::from_ref(&response),
            1.0,
            false,
        );
        let batched = policy.token_logprobs(&[long, short], &[vec![4], response], 1.0, false);
        let alone = zoo_core::TokenMatrix::from_tensor(alone);
        let batched = zoo_core::TokenMatrix::from_tensor(batched);
        for t in 0..3 {
            approx::assert_abs_diff_eq!(alone.get(0, t), batched.get(1, t), epsilon = 1e-5);
        }
    }

    #[test]
    fn save_and_load_round_trip_exactly() {
        let policy = policy();
        let dir = std::env::temp_dir().join(format!("zoo-tiny-{}", std::process::id()));
        fs_err_create(&dir);
        let path = dir.join("m.safetensors");
        policy.save(&path, Metadata::new()).unwrap();
        let loaded = TinyPolicy::load(&path, &policy.device()).unwrap();
        let a = policy.parameters();
        let b = loaded.parameters();
        assert_eq!(a.len(), b.len());
        for (name, t) in &a {
            let x = t.value.clone().into_data().try_into_vec::<f32>().unwrap();
            let y = b[name]
                .value
                .clone()
                .into_data()
                .try_into_vec::<f32>()
                .unwrap();
            assert_eq!(x, y, "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn fs_err_create(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
    }

    #[test]
    fn default_model_has_about_646k_parameters() {
        let policy = TinyPolicy::new(
            &TinyDecoderConfig::default(),
            &mut rng::stream(0, 0, "init"),
            &Device::flex(),
        )
        .unwrap();
        assert_eq!(policy.num_params(), 645_760);
        assert!(
            policy
                .parameters()
                .contains_key("layers.2.self_attn.q_proj.weight")
        );
    }
}
