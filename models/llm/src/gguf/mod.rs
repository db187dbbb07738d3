//! GGUF v3 files (llama.cpp): metadata, tensors dequantized to f32, names mapped to Hugging Face
//! names, and the tokenizer stored in the metadata.
//!
//! The layout (gguf-py `GGUFReader`, ggml `gguf.cpp`), all little-endian:
//!
//! ```text
//! "GGUF" | version u32 (2 or 3) | tensor_count u64 | kv_count u64
//! kv_count × (key: string, value_type u32, value)       string = u64 length + UTF-8 bytes
//! tensor_count × (name: string, n_dims u32, ne[n_dims] u64, ggml_type u32, offset u64)
//! padding to `general.alignment` (default 32) | tensor data (offsets relative to here)
//! ```
//!
//! `ne[0]` varies fastest, so the row-major (Hugging Face) shape is `ne` reversed and the flat
//! element order is the same in both. Quantized types store `ne[0]` in blocks of 32 (or 256);
//! this reader dequantizes F32, F16, BF16, Q8_0, Q4_0, Q4_1 and the K-quants Q2_K..Q6_K.
//!
//! llama.cpp's converter (`convert_hf_to_gguf.py`, `LlamaModel.permute`) reorders the rows of
//! Llama's `q_proj`/`k_proj` weights and biases for its interleaved RoPE; the reader undoes that for
//! `general.architecture == "llama"` (Qwen2/Qwen3 are stored unpermuted).
//!
//! Files by responsibility: [`parse`] reads and validates the header, [`quants`] dequantizes
//! ggml's block types, [`names`] maps llama.cpp's tensor names and RoPE settings back to
//! Hugging Face's, [`file`] is the opened file as a weight source, and [`tokenizer`] reads the
//! tokenizer from the metadata.

mod file;
mod names;
mod parse;
mod quants;
#[cfg(test)]
mod tests;
mod tokenizer;

pub use file::Gguf;
pub use parse::{MetaValue, TensorInfo};
pub use tokenizer::GgufTokenizer;
