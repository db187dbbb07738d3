//! [`TabularPolicy`]: a tabular softmax policy for toy bandits, implementing [`Policy`].
//!
//! A *state* is the context followed by the response so far; each known state has its own
//! logit vector over the vocabulary (`π(· | state) = softmax(z_state)`), so log-probs and
//! whole distributions are exact and a hinted teacher context is simply another state. A
//! response ends when the next state is not in the table (or at end-of-sequence).
//!
//! Tokens: `0` pad, `1` begin, `2` end; `3 + a` is action (or question) `a`. Text is the
//! space-separated numbers `a`, so a verifier reads the decoded response `"2 0"` as actions 2, 0.

use std::collections::HashMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use zoo_core::burn;
use zoo_core::burn::module::{Module, Param};
use zoo_core::burn::prelude::*;
use zoo_core::burn::tensor::{Gradients, TensorData};
use zoo_core::params;
use zoo_core::policy::{NamedTensors, Sample, Tokenizer};
use zoo_core::{Error, Policy, Result, SamplingConfig};

/// The first non-special token.
pub const FIRST_SYMBOL: u32 = 3;

/// Space-separated numbers; number `a` is token `3 + a`.
#[derive(Debug, Clone, Copy)]
pub struct NumberTokenizer {
    vocab: usize,
}

impl Tokenizer for NumberTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.split_whitespace()
            .map(|word| {
                let n: u32 = word.parse().map_err(|_| Error::Tokenize {
                    text: text.to_string(),
                    ch: word.chars().next().unwrap_or(' '),
                })?;
                let token = n + FIRST_SYMBOL;
                if token as usize >= self.vocab {
                    return Err(Error::Config(format!(
                        "symbol {n} is outside the tabular vocabulary of {} symbols",
                        self.vocab - FIRST_SYMBOL as usize
                    )));
                }
                Ok(token)
            })
            .collect()
    }

    fn decode(&self, tokens: &[u32]) -> String {
        tokens
            .iter()
            .filter(|&&t| t >= FIRST_SYMBOL)
            .map(|t| (t - FIRST_SYMBOL).to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn bos(&self) -> u32 {
        1
    }

    fn eos(&self) -> u32 {
        2
    }

    fn pad(&self) -> u32 {
        0
    }

    fn vocab_size(&self) -> usize {
        self.vocab
    }
}

/// The trainable table: row `s` holds the logits of state `s`.
#[derive(Module, Debug)]
pub struct LogitTable {
    logits: Param<Tensor<2>>,
}

/// A tabular softmax policy over a fixed set of states.
#[derive(Debug)]
pub struct TabularPolicy {
    table: LogitTable,
    states: HashMap<Vec<u32>, usize>,
    tokenizer: NumberTokenizer,
    device: Device,
}

impl TabularPolicy {
    /// A policy over `states` (token sequences: context then response prefix), each with its
    /// initial logits (`vocab` finite entries; use e.g. −30 for tokens a state never emits).
    pub fn new(states: Vec<(Vec<u32>, Vec<f32>)>, vocab: usize, device: &Device) -> Result<Self> {
        Self::shared(
            states.into_iter().map(|(s, z)| (vec![s], z)).collect(),
            vocab,
            device,
        )
    }

    /// A policy whose rows may be shared by several states (e.g. one step-1 choice for every
    /// question): each row lists its states and its initial logits.
    pub fn shared(
        rows: Vec<(Vec<Vec<u32>>, Vec<f32>)>,
        vocab: usize,
        device: &Device,
    ) -> Result<Self> {
        let mut index = HashMap::new();
        let mut data = Vec::with_capacity(rows.len() * vocab);
        for (k, (states, logits)) in rows.iter().enumerate() {
            if logits.len() != vocab || logits.iter().any(|z| !z.is_finite()) {
                return Err(Error::Config(format!(
                    "row {k} needs {vocab} finite logits, got {}",
                    logits.len()
                )));
            }
            for state in states {
                if index.insert(state.clone(), k).is_some() {
                    return Err(Error::Config(format!("state {state:?} is listed twice")));
                }
            }
            data.extend_from_slice(logits);
        }
        if rows.is_empty() {
            return Err(Error::Config(
                "a tabular policy needs at least one state".into(),
            ));
        }
        let device = device.clone().autodiff();
        let logits = Tensor::from_data(TensorData::new(data, [rows.len(), vocab]), &device);
        Ok(Self {
            table: LogitTable {
                logits: Param::from_tensor(logits),
            },
            states: index,
            tokenizer: NumberTokenizer { vocab },
            device,
        })
    }

    /// The row of `state`, if it is in the table.
    pub fn state(&self, state: &[u32]) -> Option<usize> {
        self.states.get(state).copied()
    }

    /// The current logits `[states, vocab]` on the host, row-major.
    pub fn logits(&self) -> Vec<f32> {
        self.table
            .logits
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 logits")
    }

    /// `π(· | state)` at temperature 1, if the state is known.
    pub fn distribution(&self, state: &[u32]) -> Option<Vec<f64>> {
        let row = self.state(state)?;
        let vocab = self.tokenizer.vocab;
        let logits = self.logits();
        Some(softmax(&logits[row * vocab..(row + 1) * vocab], 1.0))
    }
}

fn softmax(z: &[f32], temperature: f32) -> Vec<f64> {
    let max = z.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let e: Vec<f64> = z
        .iter()
        .map(|&x| ((x as f64 - max) / temperature as f64).exp())
        .collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

impl TabularPolicy {
    /// One response to `prompt`, drawing from `rng`, with the table's logits at hand.
    fn sample_one(
        &self,
        logits: &[f32],
        prompt: &[u32],
        sampling: &SamplingConfig,
        rng: &mut ChaCha8Rng,
    ) -> Sample {
        let vocab = self.tokenizer.vocab;
        let mut state = prompt.to_vec();
        let mut sample = Sample {
            tokens: Vec::new(),
            logprobs: Vec::new(),
            finished: false,
        };
        for _ in 0..sampling.max_new_tokens {
            let Some(row) = self.state(&state) else {
                sample.finished = true;
                break;
            };
            let z = &logits[row * vocab..(row + 1) * vocab];
            let temperature = if sampling.temperature > 0.0 {
                sampling.temperature
            } else {
                1.0
            };
            let p = softmax(z, temperature);
            let token = if sampling.temperature > 0.0 {
                let u: f64 = rng.random();
                let mut acc = 0.0;
                p.iter()
                    .position(|&q| {
                        acc += q;
                        u < acc
                    })
                    .unwrap_or(vocab - 1)
            } else {
                (0..vocab)
                    .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                    .unwrap_or(0)
            };
            sample.tokens.push(token as u32);
            sample.logprobs.push(p[token].ln() as f32);
            state.push(token as u32);
            if token as u32 == self.tokenizer.eos() {
                sample.finished = true;
                break;
            }
        }
        if !sample.finished && self.state(&state).is_none() {
            sample.finished = true;
        }
        sample
    }
}

impl Policy for TabularPolicy {
    fn tokenizer(&self) -> &dyn Tokenizer {
        &self.tokenizer
    }

    fn device(&self) -> Device {
        self.device.clone()
    }

    /// Rows of unknown states (and padded positions) read state 0, which padding masks out.
    fn token_logits(&self, contexts: &[Vec<u32>], responses: &[Vec<u32>], grad: bool) -> Tensor<3> {
        let n = responses.len();
        let t = responses.iter().map(Vec::len).max().unwrap_or(0);
        let vocab = self.tokenizer.vocab;
        let (table, device) = if grad {
            (self.table.logits.val(), self.device.clone())
        } else {
            (self.table.valid().logits.val(), self.device.clone().inner())
        };
        if t == 0 {
            return Tensor::zeros([n, 0, vocab], &device);
        }
        let mut rows = vec![0i64; n * t];
        for (i, (context, response)) in contexts.iter().zip(responses).enumerate() {
            let mut state = context.clone();
            for (j, &token) in response.iter().enumerate() {
                rows[i * t + j] = self.state(&state).unwrap_or(0) as i64;
                state.push(token);
            }
        }
        let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [n * t]), &device);
        table.select(0, rows).reshape([n, t, vocab])
    }

    fn sample(
        &self,
        prompts: &[Vec<u32>],
        sampling: &SamplingConfig,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Sample> {
        let logits = self.logits();
        prompts
            .iter()
            .map(|prompt| self.sample_one(&logits, prompt, sampling, rng))
            .collect()
    }

    fn sample_rows(
        &self,
        prompts: &[Vec<u32>],
        sampling: &SamplingConfig,
        streams: &mut [ChaCha8Rng],
    ) -> Vec<Sample> {
        assert_eq!(prompts.len(), streams.len(), "one stream per row");
        let logits = self.logits();
        prompts
            .iter()
            .zip(streams)
            .map(|(prompt, rng)| self.sample_one(&logits, prompt, sampling, rng))
            .collect()
    }

    fn gradients(&self, grads: &Gradients) -> NamedTensors {
        params::gradients(&self.table, grads)
    }

    fn parameters(&self) -> NamedTensors {
        params::parameters(&self.table)
    }

    fn set_parameters(&mut self, values: &NamedTensors) -> Result<()> {
        self.table = params::replace_parameters(self.table.clone(), values, &self.device)?;
        Ok(())
    }

    fn snapshot(&self) -> Box<dyn Policy> {
        Box::new(TabularPolicy {
            table: self.table.clone().no_grad(),
            states: self.states.clone(),
            tokenizer: self.tokenizer,
            device: self.device.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use zoo_core::policy::sampled_logprobs;

    /// A K-armed bandit: one question (token 3), arms 0..K.
    fn k_armed(z: &[f32]) -> TabularPolicy {
        let vocab = FIRST_SYMBOL as usize + z.len();
        let mut logits = vec![-30.0f32; vocab];
        logits[FIRST_SYMBOL as usize..].copy_from_slice(z);
        TabularPolicy::new(vec![(vec![1, 3], logits)], vocab, &Device::flex()).unwrap()
    }

    #[test]
    fn log_probs_are_the_exact_softmax_and_their_gradient_is_e_a_minus_pi() {
        let z = [0.3f32, -1.2, 2.0, 0.1];
        let policy = k_armed(&z);
        let p = softmax(&z, 1.0);
        let context = vec![vec![1u32, 3]];
        for a in 0..4 {
            let response = vec![vec![FIRST_SYMBOL + a as u32]];
            let logits = policy.token_logits(&context, &response, true);
            let lp = sampled_logprobs(logits, &response, 1.0);
            let value = lp.clone().into_scalar::<f64>();
            assert!((value - p[a].ln()).abs() < 1e-5, "arm {a}");
            let grads = policy.backward(lp.reshape([1]));
            let g: Vec<f32> = grads["logits"]
                .value
                .clone()
                .into_data()
                .try_into_vec()
                .unwrap();
            for (b, &pb) in p.iter().enumerate() {
                let expected = if a == b { 1.0 - pb } else { -pb };
                let got = g[FIRST_SYMBOL as usize + b] as f64;
                assert!(
                    (got - expected).abs() < 1e-5,
                    "∂ log π_{a} / ∂ z_{b}: {got} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn sampling_follows_the_table_and_stops_at_unknown_states() {
        let policy = k_armed(&[0.0, 3.0, 0.0, -3.0]);
        let prompts = vec![vec![1u32, 3]; 4000];
        let samples = policy.sample(
            &prompts,
            &SamplingConfig {
                temperature: 1.0,
                max_new_tokens: 5,
                min_new_tokens: 0,
            },
            &mut ChaCha8Rng::seed_from_u64(7),
        );
        assert!(samples.iter().all(|s| s.tokens.len() == 1 && s.finished));
        let p = softmax(&[0.0, 3.0, 0.0, -3.0], 1.0);
        let share = samples
            .iter()
            .filter(|s| s.tokens[0] == FIRST_SYMBOL + 1)
            .count() as f64
            / 4000.0;
        // Four standard errors of a binomial share.
        let se = (p[1] * (1.0 - p[1]) / 4000.0).sqrt();
        assert!((share - p[1]).abs() < 4.0 * se, "{share} vs {}", p[1]);
        assert_eq!(policy.tokenizer().decode(&samples[0].tokens).len(), 1);
    }
}
