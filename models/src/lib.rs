//! zoo-models: the policies zoo trains. For now the character tokenizer of the CPU world, a
//! tiny Llama-style decoder (RMSNorm, RoPE, SwiGLU, causal attention with a KV cache) and a
//! tabular softmax policy for toy bandits, each implementing [`zoo_core::Policy`].
//!
//! Module and field names mirror Hugging Face Llama checkpoints (`embed_tokens`,
//! `layers.N.self_attn.q_proj`, `input_layernorm`, ...), so the larger Llama/Qwen models can
//! follow the same shape.
#![warn(missing_docs)]

pub mod tabular;
pub mod tiny_decoder;
pub mod tiny_policy;
pub mod tokenizer;

pub use tabular::TabularPolicy;
pub use tiny_decoder::{TinyDecoder, TinyDecoderConfig};
pub use tiny_policy::TinyPolicy;
pub use tokenizer::CharTokenizer;
