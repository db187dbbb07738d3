//! zoo-llm: real language models behind zoo's `Policy` trait.
//!
//! One decoder implementation serves the Llama family as Hugging Face defines it: `llama`
//! (SmolLM2, Llama-3.x with `llama3` RoPE scaling), `qwen2` (q/k/v bias) and `qwen3` (QK-norm,
//! explicit `head_dim`). Weights come from a Hugging Face folder (safetensors, single or
//! sharded) or a GGUF file; the tokenizer and chat template come with them.
//!
//! | module | what |
//! |---|---|
//! | [`attention_check`] | a backend's fused attention against the hand-written one (mask conventions) |
//! | [`config`] | `config.json` (transformers 4.x and 5.x keys), unsupported settings refused by key |
//! | [`weights`] | safetensors reading (memory-mapped, bf16/f16/f32 to f32), names checked both ways |
//! | [`gguf`] | GGUF v3 reading: metadata, dequantization, llama.cpp names to HF names |
//! | [`tokenizer`] | the `tokenizers` crate, chat templates (`minijinja`), stop tokens |
//! | [`llama`] | the decoder (HF names, `[out, in]` weights), KV cache, chunked head |
//! | [`lora`] | LoRA adapters as PEFT makes them: attach, load, write, merge |
//! | [`policy`] | [`LlmPolicy`]: sampling on the device, chunked scoring, training |
//! | [`source`] | `--model DIR_OR_GGUF` to a policy |
//! | [`shapes`] | named shapes of published models, random-weight policies for benchmarks |
//! | [`memory`] | the memory estimate of a run (`zoo train --dry-run`, `zoo bench`) |
#![warn(missing_docs)]

pub mod attention_check;
pub mod config;
pub mod gguf;
pub mod llama;
pub mod lora;
pub mod memory;
pub mod policy;
pub mod shapes;
pub mod source;
pub mod tokenizer;
pub mod weights;

pub use config::LlmConfig;
pub use policy::LlmPolicy;
pub use tokenizer::HfTokenizer;
