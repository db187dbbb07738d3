//! The memory a training run of a real model needs, estimated from its shape and settings
//! (f32 everywhere, as zoo computes), for `zoo train --dry-run` and `zoo bench`.
//!
//! The rollout and the update are never alive together, so the peak is the resident state
//! (parameters, optimizer moments, snapshots) plus the larger of the two phases. The rollout
//! holds the KV cache and, at each decoding step, the sampler's `[rows, vocab]` temporaries.
//! The update holds one micro-batch's activations (what the autodiff graph keeps per token and
//! per layer; decomposed attention keeps about three `[heads, L, L]` tensors per row and
//! layer), its gradients and one chunk of the output head over the vocabulary. With bf16
//! compute the update's graph casts the weights on use and keeps every cast copy for its
//! backward pass; passes without a graph (the rollout) read one bf16 copy of every weight.
//!
//! What grows with the vocabulary `V`: the embedding and head parameters with their
//! gradients and moments, the head chunk (`positions × V`, 16 bytes a value), the sampler
//! (`rows × V`, 24 bytes a value).

use crate::config::LlmConfig;

/// The settings of a run that size its memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunShape {
    /// Responses per step (prompts × group size).
    pub rows: usize,
    /// The longest prompt, in tokens (chat template included).
    pub prompt_tokens: usize,
    /// The response length cap.
    pub max_new_tokens: usize,
    /// The most responses in one micro-batch.
    pub micro_batch_rows: usize,
    /// The most padded tokens in one micro-batch; 0: rows only.
    pub micro_batch_tokens: usize,
    /// Positions of the output head computed at once.
    pub head_chunk_positions: usize,
    /// Frozen copies of the weights the objective keeps (the initial policy, an EMA teacher).
    pub snapshots: usize,
    /// bf16 compute: activations and the KV cache take 2 bytes a value (the attention softmax,
    /// the logits and every weight, gradient and moment stay f32).
    pub bf16: bool,
    /// Activation recomputation: only each layer's input is kept, plus one layer's activations
    /// while it runs again.
    pub recompute: bool,
    /// LoRA: the adapters' parameter count (only they have gradients, moments and snapshots);
    /// 0 when every weight trains.
    pub lora_trainable: usize,
    /// LoRA with the frozen base stored in bf16 (2 bytes a base weight, no bf16 copies of it).
    pub bf16_base: bool,
}

/// Bytes, by item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MemoryEstimate {
    /// The trained weights.
    pub parameters: u64,
    /// One micro-batch's gradients and their running sum.
    pub gradients: u64,
    /// AdamW's two moments.
    pub optimizer: u64,
    /// Frozen copies (initial policy, EMA teacher).
    pub snapshots: u64,
    /// The rollout's KV cache over every row at full length.
    pub kv_cache: u64,
    /// What the graph keeps for one micro-batch.
    pub activations: u64,
    /// One chunk of the output head: logits, log-softmax and their gradients.
    pub head_chunk: u64,
    /// The sampler's `[rows, vocab]` temporaries at one decoding step: the logits, their
    /// log-softmax, the probabilities and their copy padded to whole blocks (f32 each) and the
    /// f64 probabilities of the exact draw: 24 bytes a value, an upper bound (measured on flex
    /// at SmolLM2's shape: 14-17 bytes a value of peak RSS per row, 256 to 1,024 rows).
    pub sampler: u64,
    /// bf16 copies of the weights in the update: every weight the graph keeps (cast on use),
    /// or with recomputation the no-graph forward's copy of every weight. 0 in f32.
    pub cast_weights_update: u64,
    /// The rollout's bf16 copy of every weight (made once per sampling call rather than cast
    /// at every decoding step). 0 in f32.
    pub cast_weights_rollout: u64,
}

impl MemoryEstimate {
    /// Parameters, optimizer state and snapshots: resident for the whole run.
    pub fn resident(&self) -> u64 {
        self.parameters + self.optimizer + self.snapshots
    }

    /// The rollout's memory beyond the resident state.
    pub fn rollout(&self) -> u64 {
        self.kv_cache + self.sampler + self.cast_weights_rollout
    }

    /// The update's memory beyond the resident state.
    pub fn update(&self) -> u64 {
        self.gradients + self.activations + self.head_chunk + self.cast_weights_update
    }

    /// The estimated peak: the resident state plus the larger of rollout and update.
    pub fn peak(&self) -> u64 {
        self.resident()
            .saturating_add(self.rollout().max(self.update()))
    }

    /// `(item, bytes)` rows for printing.
    pub fn rows(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("parameters", self.parameters),
            ("optimizer state (AdamW m, v)", self.optimizer),
            ("snapshots (initial / EMA / periodic)", self.snapshots),
            ("KV cache (rollout)", self.kv_cache),
            ("sampler [rows, vocab] (rollout)", self.sampler),
            ("bf16 weight copy (rollout)", self.cast_weights_rollout),
            ("gradients (update)", self.gradients),
            ("activations per micro-batch", self.activations),
            ("output head chunk", self.head_chunk),
            ("bf16 weight copies (update)", self.cast_weights_update),
            ("peak", self.peak()),
        ]
    }
}

/// The estimate for `config` under `shape`.
pub fn estimate(config: &LlmConfig, shape: &RunShape) -> MemoryEstimate {
    const F32: u64 = 4;
    let act: u64 = if shape.bf16 { 2 } else { 4 };
    let p = config.num_params() as u64;
    let d = config.hidden_size as u64;
    let q = (config.num_attention_heads * config.head_dim) as u64;
    let kv = (config.num_key_value_heads * config.head_dim) as u64;
    let inner = config.intermediate_size as u64;
    let layers = config.num_hidden_layers as u64;
    let heads = config.num_attention_heads as u64;
    let length = (shape.prompt_tokens + shape.max_new_tokens).max(1) as u64;
    // One micro-batch: its rows and tokens.
    let mut rows = shape.micro_batch_rows.min(shape.rows).max(1) as u64;
    if shape.micro_batch_tokens > 0 {
        rows = rows.min((shape.micro_batch_tokens as u64 / length).max(1));
    }
    let tokens = rows * length;
    // Per token and layer: norms, q/k/v with their rotations, attention output, projections,
    // residual, and the SwiGLU gate, up, activation and product.
    let per_token_layer = 5 * d + 3 * q + 4 * kv + 4 * inner;
    let attention_per_row_layer = 3 * heads * length * length;
    let positions = (shape.head_chunk_positions as u64).min(tokens);
    let vocab = config.vocab_size as u64;
    // bf16 copies. Passes without a graph (sampling, scoring, the recomputing update's first
    // forward) read one bf16 copy of every weight, made per call; the graph casts on use and
    // keeps each cast for its backward pass.
    // With LoRA only the adapters train: gradients, moments and snapshots are theirs (a
    // snapshot shares the frozen base); a bf16 base needs no bf16 copy.
    let trained = match shape.lora_trainable {
        0 => p,
        n => n as u64,
    };
    let copied = if shape.bf16_base { trained } else { p };
    let (cast_update, cast_rollout) = match shape.bf16 {
        false => (0, 0),
        true => (2 * copied, 2 * copied),
    };
    let parameters = match (shape.lora_trainable, shape.bf16_base) {
        (0, _) => p * F32,
        (_, true) => (p - trained.min(p)) * 2 + trained * F32,
        (_, false) => p * F32,
    };
    MemoryEstimate {
        parameters,
        gradients: 2 * trained * F32,
        optimizer: 2 * trained * F32,
        snapshots: shape.snapshots as u64 * trained * F32,
        kv_cache: shape.rows as u64 * length * layers * 2 * kv * act,
        activations: if shape.recompute {
            (layers + 1) * tokens * d * act
                + tokens * per_token_layer * act
                + rows * attention_per_row_layer * F32
                + 2 * tokens * d * act
        } else {
            layers * (tokens * per_token_layer * act + rows * attention_per_row_layer * F32)
                + 2 * tokens * d * act
        },
        head_chunk: 4 * positions * vocab * F32,
        sampler: shape.rows as u64 * vocab * 24,
        cast_weights_update: cast_update,
        cast_weights_rollout: cast_rollout,
    }
}

/// `bytes` as GiB (or MiB below one GiB), for people.
pub fn human(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes as f64 >= 1024.0 * MIB {
        format!("{:.2} GiB", bytes as f64 / (1024.0 * MIB))
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qwen() -> LlmConfig {
        crate::shapes::config_of("qwen2.5-0.5b").unwrap()
    }

    fn shape() -> RunShape {
        RunShape {
            rows: 512,
            prompt_tokens: 200,
            max_new_tokens: 1024,
            micro_batch_rows: 64,
            micro_batch_tokens: 8192,
            head_chunk_positions: 1024,
            snapshots: 0,
            bf16: false,
            recompute: false,
            lora_trainable: 0,
            bf16_base: false,
        }
    }

    #[test]
    fn qwen_sizes_match_the_design_notes() {
        // llm-design.md §4: 1.98 GB of f32 parameters, 15.4 GB of f32 KV cache at 512 × 1224.
        let m = estimate(&qwen(), &shape());
        assert_eq!(m.parameters, 494_032_768 * 4);
        assert_eq!(m.optimizer, 2 * m.parameters);
        assert!(
            (m.kv_cache as f64 / 1e9 - 15.4).abs() < 0.05,
            "{}",
            m.kv_cache
        );
        // One chunk of 1024 positions over 151,936 ids, four f32 copies: 2.5 GB.
        assert_eq!(m.head_chunk, 4 * 1024 * 151_936 * 4);
    }

    #[test]
    fn the_token_budget_bounds_the_activations_and_the_vocabulary_the_head_sampler_and_casts() {
        let small = estimate(&qwen(), &shape());
        let large = estimate(
            &qwen(),
            &RunShape {
                micro_batch_tokens: 4 * 8192,
                ..shape()
            },
        );
        assert!(large.activations > 3 * small.activations);
        let mut wide = qwen();
        wide.vocab_size *= 2;
        let wide = estimate(&wide, &shape());
        assert_eq!(wide.activations, small.activations);
        assert_eq!(wide.head_chunk, 2 * small.head_chunk);
        let bf16 = estimate(
            &qwen(),
            &RunShape {
                bf16: true,
                ..shape()
            },
        );
        assert_eq!(2 * bf16.kv_cache, small.kv_cache);
        let recompute = estimate(
            &qwen(),
            &RunShape {
                recompute: true,
                ..shape()
            },
        );
        assert!(10 * recompute.activations < small.activations);
        assert!(bf16.activations < small.activations);
        assert_eq!(bf16.parameters, small.parameters);
        assert_eq!(
            small.peak(),
            small.resident() + small.gradients + small.activations + small.head_chunk
        );
        // The sampler and the bf16 copies grow with the vocabulary too.
        assert_eq!(wide.sampler, 2 * small.sampler);
        assert_eq!(small.sampler, 512 * 151_936 * 24);
        assert_eq!(
            (small.cast_weights_update, small.cast_weights_rollout),
            (0, 0)
        );
        assert_eq!(bf16.cast_weights_update, 2 * bf16.parameters / 4);
        assert_eq!(bf16.cast_weights_rollout, 2 * bf16.parameters / 4);
    }

    #[test]
    fn the_rollout_counts_the_samplers_temporaries() {
        // Short responses and many rows: the sampler, not the KV cache, sizes the rollout.
        let wide = RunShape {
            rows: 512,
            prompt_tokens: 16,
            max_new_tokens: 2,
            ..shape()
        };
        let m = estimate(&qwen(), &wide);
        assert!(m.sampler > m.kv_cache, "{m:?}");
        assert_eq!(m.rollout(), m.kv_cache + m.sampler);
        assert!(m.peak() >= m.resident() + m.sampler);
    }

    /// LoRA (rank 16 on all seven projections) at the design shape (64 x 8 x 1024, bf16
    /// compute, micro-batches of 8,192 tokens): only the adapters have gradients and moments,
    /// and a bf16 base halves the base. Prints the table of docs/models.md.
    #[test]
    fn lora_keeps_gradients_and_moments_of_the_adapters_only() {
        let lora = crate::lora::LoraConfig::default();
        for name in ["qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b"] {
            let config = crate::shapes::config_of(name).unwrap();
            let trainable = crate::lora::trainable_params(&config, &lora);
            let shape = |lora_trainable, bf16_base| RunShape {
                rows: 512,
                prompt_tokens: 200,
                max_new_tokens: 1024,
                micro_batch_rows: 64,
                micro_batch_tokens: 8192,
                head_chunk_positions: 2048,
                snapshots: 1,
                bf16: true,
                recompute: false,
                lora_trainable,
                bf16_base,
            };
            let full = estimate(&config, &shape(0, false));
            let adapters = estimate(&config, &shape(trainable, false));
            let small = estimate(&config, &shape(trainable, true));
            let p = config.num_params() as u64;
            assert_eq!(adapters.optimizer, 8 * trainable as u64);
            assert_eq!(adapters.gradients, 8 * trainable as u64);
            assert_eq!(adapters.parameters, 4 * p);
            assert_eq!(
                small.parameters,
                2 * (p - trainable as u64) + 4 * trainable as u64
            );
            assert!(small.peak() < adapters.peak() && adapters.peak() < full.peak());
            eprintln!(
                "| {name} | {:.1}M ({:.2}%) | {} | {} | {} | {} | {} | {} |",
                trainable as f64 / 1e6,
                100.0 * trainable as f64 / p as f64,
                human(full.resident()),
                human(full.peak()),
                human(adapters.resident()),
                human(adapters.peak()),
                human(small.resident()),
                human(small.peak()),
            );
        }
    }
}
