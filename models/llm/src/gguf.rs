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
//! this reader dequantizes F32, F16, BF16, Q8_0, Q4_0 and Q4_1.
//!
//! llama.cpp's converter (`convert_hf_to_gguf.py`, `LlamaModel.permute`) reorders the rows of
//! Llama's `q_proj`/`k_proj` weights and biases for its interleaved RoPE; the reader undoes that for
//! `general.architecture == "llama"` (Qwen2/Qwen3 are stored unpermuted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use zoo_core::{Error, Result};

use crate::weights::WeightSource;

/// The tokenizer a GGUF file carries in its `tokenizer.ggml.*` metadata.
#[derive(Debug, Clone, Default)]
pub struct GgufTokenizer {
    /// `tokenizer.ggml.model`: `gpt2` (byte-level BPE) or `llama` (SentencePiece BPE).
    pub model: String,
    /// `tokenizer.ggml.pre`: llama.cpp's name of the pre-tokenizer (`smollm`, `qwen2`, `llama-bpe`, ...).
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`, by id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`, by id (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges`: `"a b"` pairs, by rank.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: bool,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}

/// One metadata value, as GGUF types it (value types 0..=12).
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// `UINT8` (0).
    U8(u8),
    /// `INT8` (1).
    I8(i8),
    /// `UINT16` (2).
    U16(u16),
    /// `INT16` (3).
    I16(i16),
    /// `UINT32` (4).
    U32(u32),
    /// `INT32` (5).
    I32(i32),
    /// `FLOAT32` (6).
    F32(f32),
    /// `BOOL` (7).
    Bool(bool),
    /// `STRING` (8): UTF-8.
    String(String),
    /// `ARRAY` (9): elements of one type (arrays of arrays allowed).
    Array(Vec<MetaValue>),
    /// `UINT64` (10).
    U64(u64),
    /// `INT64` (11).
    I64(i64),
    /// `FLOAT64` (12).
    F64(f64),
}

impl MetaValue {
    /// The GGUF name of the value's type (`UINT32`, `STRING`, `ARRAY`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U8(_) => "UINT8",
            MetaValue::I8(_) => "INT8",
            MetaValue::U16(_) => "UINT16",
            MetaValue::I16(_) => "INT16",
            MetaValue::U32(_) => "UINT32",
            MetaValue::I32(_) => "INT32",
            MetaValue::F32(_) => "FLOAT32",
            MetaValue::Bool(_) => "BOOL",
            MetaValue::String(_) => "STRING",
            MetaValue::Array(_) => "ARRAY",
            MetaValue::U64(_) => "UINT64",
            MetaValue::I64(_) => "INT64",
            MetaValue::F64(_) => "FLOAT64",
        }
    }

    /// An integer value of any width as `i64`; `None` for other types or a `UINT64` above
    /// `i64::MAX`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::I8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::I16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::I32(v) => Some(v.into()),
            MetaValue::U64(v) => i64::try_from(v).ok(),
            MetaValue::I64(v) => Some(v),
            _ => None,
        }
    }

    /// A non-negative integer value of any width as `u64`; `None` for other types and negatives.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U64(v) => Some(v),
            _ => self.as_i64().and_then(|v| u64::try_from(v).ok()),
        }
    }

    /// A float or integer value as `f64`. `FLOAT32` values go through their shortest decimal form,
    /// so `1e-5f32` gives `1e-5`, not `9.999999747378752e-6`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(f32_to_f64_decimal(v)),
            MetaValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    /// A `BOOL` value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// A `STRING` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// An `ARRAY` value's elements.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// `x` as the `f64` of its shortest decimal representation.
fn f32_to_f64_decimal(x: f32) -> f64 {
    if x.is_finite() {
        x.to_string().parse().unwrap_or(x as f64)
    } else {
        x as f64
    }
}

/// ggml tensor types: `(id, name, elements per block, bytes per block)`, from gguf-py's
/// `GGMLQuantizationType` and `GGML_QUANT_SIZES` (ids 4, 5, 31..=33, 36..=38 are retired).
const GGML_TYPES: &[(u32, &str, usize, usize)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 40),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
];

const GGML_F32: u32 = 0;
const GGML_F16: u32 = 1;
const GGML_Q4_0: u32 = 2;
const GGML_Q4_1: u32 = 3;
const GGML_Q8_0: u32 = 8;
const GGML_BF16: u32 = 30;

/// `(name, elements per block, bytes per block)` of ggml type `id`, if known.
fn ggml_type(id: u32) -> Option<(&'static str, usize, usize)> {
    GGML_TYPES
        .iter()
        .find(|t| t.0 == id)
        .map(|&(_, name, block, bytes)| (name, block, bytes))
}

/// The name of ggml type `id` (`Q4_1`), or `type 99` when unknown.
fn ggml_type_name(id: u32) -> String {
    ggml_type(id).map_or_else(|| format!("type {id}"), |t| t.0.to_string())
}

/// Dequantizes `n` elements of ggml type `ty` from `bytes` (exactly `n / block * block_bytes`
/// long, `n` a multiple of the block size). `None` for types this reader does not decode.
///
/// Block layouts (ggml `ggml-common.h`, `dequantize_row_*` in `ggml-quants.c`), block of 32:
/// - `Q8_0`: f16 `d`, 32 × i8 `q`: `x = d·q`.
/// - `Q4_0`: f16 `d`, 16 bytes: byte `j` holds element `j` (low nibble) and `j + 16` (high
///   nibble): `x = d·(q − 8)`.
/// - `Q4_1`: f16 `d`, f16 `m`, 16 bytes as `Q4_0`: `x = d·q + m`.
fn dequantize(ty: u32, bytes: &[u8], n: usize) -> Option<Vec<f32>> {
    let f16 = |b: &[u8]| half::f16::from_le_bytes([b[0], b[1]]).to_f32();
    let mut out = Vec::with_capacity(n);
    match ty {
        GGML_F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        GGML_F16 => out.extend(bytes.chunks_exact(2).map(f16)),
        GGML_BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        GGML_Q8_0 => {
            for block in bytes.chunks_exact(34) {
                let d = f16(&block[..2]);
                out.extend(block[2..].iter().map(|&q| d * f32::from(q as i8)));
            }
        }
        GGML_Q4_0 => {
            for block in bytes.chunks_exact(18) {
                let d = f16(&block[..2]);
                let qs = &block[2..];
                out.extend(qs.iter().map(|&q| d * (f32::from(q & 0x0F) - 8.0)));
                out.extend(qs.iter().map(|&q| d * (f32::from(q >> 4) - 8.0)));
            }
        }
        GGML_Q4_1 => {
            for block in bytes.chunks_exact(20) {
                let d = f16(&block[..2]);
                let m = f16(&block[2..4]);
                let qs = &block[4..];
                out.extend(qs.iter().map(|&q| d * f32::from(q & 0x0F) + m));
                out.extend(qs.iter().map(|&q| d * f32::from(q >> 4) + m));
            }
        }
        _ => return None,
    }
    debug_assert_eq!(out.len(), n);
    Some(out)
}

/// Undoes `convert_hf_to_gguf.py`'s `LlamaModel.permute` on the rows of a row-major
/// `[rows, cols]` matrix (`cols == 1` for a bias). The converter did
/// `w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols)`, i.e. stored
/// HF row `h·hd + j·hd/2 + i` at row `h·hd + 2i + j` (`hd = rows / n_head`, `j ∈ {0, 1}`).
/// Requires `rows % (2·n_head) == 0`.
fn unpermute_rows(p: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
    let hd = rows / n_head;
    let half = hd / 2;
    let mut w = vec![0.0; p.len()];
    for h in 0..n_head {
        for i in 0..half {
            for j in 0..2 {
                let src = h * hd + 2 * i + j;
                let dst = h * hd + j * half + i;
                w[dst * cols..(dst + 1) * cols].copy_from_slice(&p[src * cols..(src + 1) * cols]);
            }
        }
    }
    w
}

/// What a llama.cpp tensor name is on the Hugging Face side.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HfName {
    /// A model weight, by its HF name.
    Weight(String),
    /// Not a model weight (`rope_freqs.weight`: llama3 RoPE factors, carried by the config).
    Skip,
}

/// The HF name of llama.cpp tensor `name`; `None` when the name is not one of the Llama/Qwen2/Qwen3
/// decoder's.
fn hf_name(name: &str) -> Option<HfName> {
    let top = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        "rope_freqs.weight" => return Some(HfName::Skip),
        _ => None,
    };
    if let Some(top) = top {
        return Some(HfName::Weight(top.to_string()));
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) || layer.len() > 9 {
        return None;
    }
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    let hf_module = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    let has_bias = matches!(module, "attn_q" | "attn_k" | "attn_v" | "attn_output");
    match kind {
        "weight" => {}
        "bias" if has_bias => {}
        _ => return None,
    }
    Some(HfName::Weight(format!(
        "model.layers.{layer}.{hf_module}.{kind}"
    )))
}

/// The architectures this reader maps: `general.architecture` → (HF class, HF `model_type`).
const ARCHITECTURES: &[(&str, &str, &str)] = &[
    ("llama", "LlamaForCausalLM", "llama"),
    ("qwen2", "Qwen2ForCausalLM", "qwen2"),
    ("qwen3", "Qwen3ForCausalLM", "qwen3"),
];

/// GGML_MAX_DIMS.
const MAX_DIMS: usize = 4;
/// Deepest nesting of metadata arrays accepted (real files use 1).
const MAX_ARRAY_DEPTH: usize = 8;

/// One tensor of a GGUF file.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// The llama.cpp name (`blk.0.attn_q.weight`).
    pub name: String,
    /// The Hugging Face name (`model.layers.0.self_attn.q_proj.weight`); `None` for tensors that
    /// are not model weights (`rope_freqs.weight`).
    pub hf_name: Option<String>,
    /// The ggml dimensions `ne`, fastest-varying first (the HF shape reversed).
    pub ggml_dims: Vec<u64>,
    /// The ggml type id (`0` F32, `1` F16, `8` Q8_0, ...).
    pub ggml_type: u32,
    /// Where the data starts in the file, in bytes.
    start: usize,
    /// Bytes of data; `None` when the type is unknown to this reader.
    len: Option<usize>,
}

impl TensorInfo {
    /// The ggml type's name (`Q4_1`), or `type N` when the id is unknown.
    pub fn type_name(&self) -> String {
        ggml_type_name(self.ggml_type)
    }

    /// The row-major (Hugging Face) shape: [`Self::ggml_dims`] reversed.
    pub fn shape(&self) -> Vec<usize> {
        self.ggml_dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.ggml_dims.iter().map(|&d| d as usize).product()
    }
}

/// The bytes of a GGUF file: memory-mapped, or (in tests) owned.
enum Bytes {
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

/// The header as parsed from the bytes, before names are mapped.
struct Header {
    version: u32,
    metadata: BTreeMap<String, MetaValue>,
    tensors: Vec<TensorInfo>,
}

/// A header parse failure: what is wrong, and whether it is a truncation (which gets its own hint).
struct ParseError {
    reason: String,
    truncated: bool,
}

impl ParseError {
    fn bad(reason: impl Into<String>) -> Self {
        ParseError {
            reason: reason.into(),
            truncated: false,
        }
    }
}

type Parse<T> = std::result::Result<T, ParseError>;

/// A reading position in the file.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes; `what` names them for the truncation message.
    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Parse<&'a [u8]> {
        if n > self.remaining() {
            return Err(ParseError {
                reason: format!(
                    "the file ends inside {}: {n} bytes needed at byte {}, the file has {} bytes",
                    what(),
                    self.pos,
                    self.buf.len()
                ),
                truncated: true,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Parse<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Parse<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Parse<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A length (`u64`) that must fit in what is left of the file, at `min_item` bytes per item.
    fn len(&mut self, min_item: usize, what: &dyn Fn() -> String) -> Parse<usize> {
        let n = self.u64(what)?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(min_item))
            .is_some_and(|bytes| bytes <= self.remaining());
        if !fits {
            return Err(ParseError {
                reason: format!(
                    "{} has length {n}, more than the {} bytes left in the file",
                    what(),
                    self.remaining()
                ),
                truncated: true,
            });
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Parse<String> {
        let n = self.len(1, what)?;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| ParseError::bad(format!("{} is not valid UTF-8", what())))
    }

    /// A metadata value of GGUF value type `ty`; `depth` counts enclosing arrays.
    fn value(&mut self, ty: u32, depth: usize, what: &dyn Fn() -> String) -> Parse<MetaValue> {
        Ok(match ty {
            0 => MetaValue::U8(self.array::<1>(what)?[0]),
            1 => MetaValue::I8(i8::from_le_bytes(self.array(what)?)),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(what)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(what)?)),
            4 => MetaValue::U32(self.u32(what)?),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(what)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(what)?)),
            7 => MetaValue::Bool(self.array::<1>(what)?[0] != 0),
            8 => MetaValue::String(self.string(what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(ParseError::bad(format!(
                        "{} nests arrays more than {MAX_ARRAY_DEPTH} deep",
                        what()
                    )));
                }
                let elem = self.u32(what)?;
                let min_item = value_min_size(elem).ok_or_else(|| {
                    ParseError::bad(format!("{} has unknown element type {elem}", what()))
                })?;
                let n = self.len(min_item, what)?;
                let mut items = Vec::with_capacity(n);
                for i in 0..n {
                    items.push(self.value(elem, depth + 1, &|| format!("{}[{i}]", what()))?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(self.u64(what)?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(what)?)),
            _ => {
                return Err(ParseError::bad(format!(
                    "{} has unknown value type {ty} (GGUF defines 0..=12)",
                    what()
                )));
            }
        })
    }
}

/// The fewest bytes a value of GGUF value type `ty` takes; `None` for unknown types.
fn value_min_size(ty: u32) -> Option<usize> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => return None,
    })
}

/// Parses and validates the header of the GGUF file `buf`: every length and every tensor's
/// extent is checked against `buf.len()`.
fn parse_header(buf: &[u8]) -> Parse<Header> {
    let mut c = Cursor { buf, pos: 0 };
    let magic = c.take(4, &|| "the magic number".into())?;
    if magic != b"GGUF" {
        return Err(ParseError::bad(format!(
            "not a GGUF file: it starts with {:?}, not \"GGUF\"",
            String::from_utf8_lossy(magic)
        )));
    }
    let version = c.u32(&|| "the version".into())?;
    if version != 2 && version != 3 {
        let swapped = version.swap_bytes();
        return Err(ParseError::bad(if swapped == 2 || swapped == 3 {
            format!("big-endian GGUF (version {swapped}); zoo reads little-endian files")
        } else {
            format!("GGUF version {version}; zoo reads versions 2 and 3")
        }));
    }
    let tensor_count = c.u64(&|| "the tensor count".into())?;
    let kv_count = c.u64(&|| "the metadata count".into())?;
    // A key-value takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at least
    // 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes.
    let rest = c.remaining() as u64;
    if kv_count > rest / 13 || tensor_count > rest / 24 {
        return Err(ParseError {
            reason: format!(
                "the header claims {kv_count} metadata entries and {tensor_count} tensors, more than \
                 the {rest} bytes after it can hold"
            ),
            truncated: true,
        });
    }

    let mut metadata = BTreeMap::new();
    for i in 0..kv_count {
        let key = c.string(&|| format!("the key of metadata entry {i}"))?;
        let ty = c.u32(&|| format!("the type of metadata `{key}`"))?;
        let value = c.value(ty, 0, &|| format!("metadata `{key}`"))?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(ParseError::bad(format!(
                "metadata key `{key}` appears twice"
            )));
        }
    }

    let alignment = match metadata.get("general.alignment") {
        None => 32,
        Some(v) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 30 => a as usize,
            _ => {
                return Err(ParseError::bad(format!(
                    "`general.alignment` is {v:?}; it must be a power of two"
                )));
            }
        },
    };

    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(tensor_count as usize);
    let mut offsets = Vec::with_capacity(tensor_count as usize);
    let mut seen = std::collections::HashSet::new();
    for i in 0..tensor_count {
        let name = c.string(&|| format!("the name of tensor {i}"))?;
        let what = |part: &str| format!("the {part} of tensor `{name}`");
        let n_dims = c.u32(&|| what("dimension count"))? as usize;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(ParseError::bad(format!(
                "tensor `{name}` has {n_dims} dimensions; ggml allows 1 to {MAX_DIMS}"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            dims.push(c.u64(&|| what("dimensions"))?);
        }
        let ggml_type = c.u32(&|| what("type"))?;
        let offset = c.u64(&|| what("offset"))?;
        if !seen.insert(name.clone()) {
            return Err(ParseError::bad(format!("tensor `{name}` appears twice")));
        }
        let numel = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64 && usize::try_from(n).is_ok());
        if numel.is_none() {
            return Err(ParseError::bad(format!(
                "tensor `{name}` has dimensions {dims:?}, too many elements"
            )));
        }
        offsets.push(offset);
        tensors.push(TensorInfo {
            name,
            hf_name: None,
            ggml_dims: dims,
            ggml_type,
            start: 0,
            len: None,
        });
    }

    // The data section starts at the next multiple of the alignment.
    let data_start = c.pos.div_ceil(alignment) * alignment;
    for (t, offset) in tensors.iter_mut().zip(offsets) {
        if offset % alignment as u64 != 0 {
            return Err(ParseError::bad(format!(
                "tensor `{}` has offset {offset}, not a multiple of the alignment {alignment}",
                t.name
            )));
        }
        let start = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(data_start));
        let Some(start) = start else {
            return Err(past_the_end(t, u64::MAX, buf.len()));
        };
        t.start = start;
        let Some((type_name, block, block_bytes)) = ggml_type(t.ggml_type) else {
            continue; // unknown type: refused when read
        };
        let numel = t.numel();
        if t.ggml_dims[0] % block as u64 != 0 {
            return Err(ParseError::bad(format!(
                "tensor `{}` ({type_name}) has rows of {} elements, not a multiple of the block \
                 size {block}",
                t.name, t.ggml_dims[0]
            )));
        }
        let len = (numel / block).checked_mul(block_bytes);
        let end = len.and_then(|l| start.checked_add(l));
        match (len, end) {
            (Some(len), Some(end)) if end <= buf.len() => t.len = Some(len),
            _ => {
                let end = end.map_or(u64::MAX, |e| e as u64);
                return Err(past_the_end(t, end, buf.len()));
            }
        }
    }
    Ok(Header {
        version,
        metadata,
        tensors,
    })
}

fn past_the_end(t: &TensorInfo, end: u64, file_len: usize) -> ParseError {
    ParseError {
        reason: format!(
            "tensor `{}` ({}, ggml dims {:?}) ends at byte {end}, past the end of the file \
             ({file_len} bytes)",
            t.name,
            t.type_name(),
            t.ggml_dims
        ),
        truncated: true,
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
    fn from_bytes(path: PathBuf, bytes: Bytes) -> Result<Self> {
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

    fn bad(&self, reason: impl Into<String>, hint: impl Into<String>) -> Error {
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
    fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    fn wrong_type(&self, key: &str, v: &MetaValue, want: &str) -> Error {
        self.bad(
            format!("metadata `{key}` is a {}, expected {want}", v.type_name()),
            "the file is damaged or from an unsupported converter; convert the model again",
        )
    }

    fn missing(&self, key: &str) -> Error {
        self.bad(
            format!("metadata `{key}` is missing"),
            "convert the model again with a current llama.cpp `convert_hf_to_gguf.py`",
        )
    }

    /// Metadata `key` as a non-negative integer, if present.
    fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        self.get(key)
            .map(|v| {
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| self.wrong_type(key, v, "a single non-negative integer"))
            })
            .transpose()
    }

    fn req_usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?.ok_or_else(|| self.missing(key))
    }

    /// Metadata `key` as a token id, if present.
    fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
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

    fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        self.get(key)
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| self.wrong_type(key, v, "a number"))
            })
            .transpose()
    }

    fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        self.get(key)
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.wrong_type(key, v, "a string"))
            })
            .transpose()
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key)
            .map(|v| v.as_bool().ok_or_else(|| self.wrong_type(key, v, "a bool")))
            .transpose()
    }

    /// Metadata `key` as an array, if present.
    fn opt_array(&self, key: &str) -> Result<Option<&[MetaValue]>> {
        self.get(key)
            .map(|v| {
                v.as_array()
                    .ok_or_else(|| self.wrong_type(key, v, "an array"))
            })
            .transpose()
    }

    fn tensor_by_gguf_name(&self, name: &str) -> Option<&TensorInfo> {
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
    fn read_tensor(&self, t: &TensorInfo) -> Result<Vec<f32>> {
        let unsupported = || {
            self.bad(
                format!(
                    "tensor `{}` is {} (ggml type {}); zoo dequantizes F32, F16, BF16, Q8_0, Q4_0 \
                     and Q4_1",
                    t.name,
                    t.type_name(),
                    t.ggml_type
                ),
                "re-quantize the F16/BF16 GGUF to Q8_0 or Q4_1 with llama.cpp \
                 (`llama-quantize model-f16.gguf model-q8_0.gguf Q8_0`), or use the model's Hugging \
                 Face safetensors folder",
            )
        };
        let len = t.len.ok_or_else(unsupported)?;
        let bytes = &self.bytes[t.start..t.start + len];
        dequantize(t.ggml_type, bytes, t.numel()).ok_or_else(unsupported)
    }
}

/// Recovers HF's `llama3` `rope_scaling` from llama.cpp's `rope_freqs` tensor.
///
/// The converter (`LlamaModel.generate_extra_tensors`) wrote, for each frequency
/// `f_i = theta^(-2i/head_dim)` with wavelength `λ_i = 2π/f_i`: `1` when
/// `λ_i < old_ctx/high_freq_factor`, `factor` when `λ_i > old_ctx/low_freq_factor`, else
/// `1/((1-s)/factor + s)` with `s = (old_ctx/λ_i - low_freq_factor)/(high - low)`. `factor` is
/// the largest entry; `s` is linear in `1/λ` with slope `old_ctx/(high-low)` and intercept
/// `-low/(high-low)`, so the smooth entries give `low` and `high` once `old_ctx` is known
/// (`{arch}.rope.scaling.original_context_length`, else the converter's default 8192). The result
/// is checked by recomputing every factor.
fn llama3_scaling(
    factors: &[f32],
    theta: f64,
    head_dim: usize,
    old_ctx: usize,
) -> std::result::Result<Option<Value>, String> {
    const TOL: f64 = 1e-4;
    let factors: Vec<f64> = factors.iter().map(|&f| f64::from(f)).collect();
    if factors.iter().any(|f| !f.is_finite() || *f < 1.0 - TOL) {
        return Err(format!(
            "`rope_freqs.weight` holds factors below 1 or not finite ({factors:?}); it is not \
             llama3 RoPE scaling"
        ));
    }
    let factor = factors.iter().copied().fold(1.0, f64::max);
    if factor <= 1.0 + TOL {
        return Ok(None);
    }
    let inv_wavelen = |i: usize| {
        let freq = theta.powf(-((2 * i) as f64) / head_dim as f64);
        freq / (2.0 * std::f64::consts::PI)
    };
    // The smooth region: (x = 1/λ, s).
    let smooth: Vec<(f64, f64)> = factors
        .iter()
        .enumerate()
        .filter(|(_, f)| **f > 1.0 + TOL && **f < factor * (1.0 - TOL))
        .map(|(i, f)| {
            (
                inv_wavelen(i),
                (1.0 / f - 1.0 / factor) / (1.0 - 1.0 / factor),
            )
        })
        .collect();
    let old = old_ctx as f64;
    let (low, high) = if smooth.len() >= 2 {
        // Least squares s = a·x + b.
        let n = smooth.len() as f64;
        let mx = smooth.iter().map(|p| p.0).sum::<f64>() / n;
        let ms = smooth.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = smooth.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxs: f64 = smooth.iter().map(|p| (p.0 - mx) * (p.1 - ms)).sum();
        let a = sxs / sxx;
        let b = ms - a * mx;
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        let low = round(-b * old / a);
        (low, round(low + old / a))
    } else {
        (1.0, 4.0) // the converter's defaults; checked below
    };
    let table = llama3_factors(theta, head_dim, factor, low, high, old);
    let worst = table
        .iter()
        .zip(&factors)
        .map(|(a, b)| (a - b).abs() / b)
        .fold(0.0, f64::max);
    if !(low > 0.0 && high > low) || worst > TOL {
        return Err(format!(
            "`rope_freqs.weight` does not match llama3 RoPE scaling (best fit: factor {factor}, \
             low_freq_factor {low}, high_freq_factor {high}, original context {old_ctx}; relative \
             error {worst:.2e})"
        ));
    }
    let factor = (factor * 1e4).round() / 1e4;
    Ok(Some(json!({
        "rope_type": "llama3",
        "factor": factor,
        "low_freq_factor": low,
        "high_freq_factor": high,
        "original_max_position_embeddings": old_ctx,
    })))
}

/// The factors `convert_hf_to_gguf.py` writes to `rope_freqs` for llama3 scaling (`head_dim/2`).
fn llama3_factors(
    theta: f64,
    head_dim: usize,
    factor: f64,
    low: f64,
    high: f64,
    old_ctx: f64,
) -> Vec<f64> {
    let (low_wavelen, high_wavelen) = (old_ctx / low, old_ctx / high);
    (0..head_dim / 2)
        .map(|i| {
            let freq = 1.0 / theta.powf((2 * i) as f64 / head_dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor
            } else {
                let s = (old_ctx / wavelen - low) / (high - low);
                1.0 / ((1.0 - s) / factor + s)
            }
        })
        .collect()
}

fn bad_file(path: &Path, reason: impl Into<String>, hint: impl Into<String>) -> Error {
    Error::BadFile {
        path: path.to_path_buf(),
        reason: reason.into(),
        hint: hint.into(),
    }
}

impl Gguf {
    /// The tokenizer stored in the metadata: `tokenizer.ggml.{model, pre, tokens, token_type,
    /// merges, bos_token_id, eos_token_id, padding_token_id, unknown_token_id, add_bos_token}` and
    /// `tokenizer.chat_template`. Without `add_bos_token`, BOS is added for SentencePiece
    /// (`llama`) vocabularies and Llama-3's `llama-bpe` pre-tokenizer, as llama.cpp does.
    pub fn tokenizer(&self) -> Result<GgufTokenizer> {
        let model = self
            .opt_str("tokenizer.ggml.model")?
            .ok_or_else(|| {
                self.bad(
                    "the file has no tokenizer (`tokenizer.ggml.model` is missing)",
                    "use a GGUF converted with its tokenizer, or the Hugging Face folder",
                )
            })?
            .to_string();
        let strings = |key: &str| -> Result<Vec<String>> {
            let Some(items) = self.opt_array(key)? else {
                return Ok(Vec::new());
            };
            items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.wrong_type(key, v, "an array of strings"))
                })
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        if tokens.is_empty() {
            return Err(self.bad(
                "the tokenizer has no tokens (`tokenizer.ggml.tokens` is missing or empty)",
                "use a GGUF converted with its tokenizer, or the Hugging Face folder",
            ));
        }
        let merges = strings("tokenizer.ggml.merges")?;
        let key = "tokenizer.ggml.token_type";
        let token_types = match self.opt_array(key)? {
            None => Vec::new(),
            Some(items) => items
                .iter()
                .map(|v| {
                    v.as_i64()
                        .and_then(|t| i32::try_from(t).ok())
                        .ok_or_else(|| self.wrong_type(key, v, "an array of integers"))
                })
                .collect::<Result<_>>()?,
        };
        if !token_types.is_empty() && token_types.len() != tokens.len() {
            return Err(self.bad(
                format!(
                    "{} token types for {} tokens",
                    token_types.len(),
                    tokens.len()
                ),
                "the file is damaged; convert the model again",
            ));
        }
        let pre = self.opt_str("tokenizer.ggml.pre")?.map(str::to_string);
        let id = |key: &str| -> Result<Option<u32>> {
            let id = self.opt_u32(key)?;
            match id {
                Some(i) if i as usize >= tokens.len() => Err(self.bad(
                    format!("`{key}` is {i}, outside the {} tokens", tokens.len()),
                    "the file is damaged; convert the model again",
                )),
                _ => Ok(id),
            }
        };
        let add_bos = self.opt_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(
            model == "llama" || matches!(pre.as_deref(), Some("llama-bpe" | "llama3" | "llama-v3")),
        );
        Ok(GgufTokenizer {
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            pad: id("tokenizer.ggml.padding_token_id")?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            add_bos,
            chat_template: self.opt_str("tokenizer.chat_template")?.map(str::to_string),
            model,
            pre,
            tokens,
            token_types,
            merges,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    /// A minimal GGUF writer: metadata of every type, tensors as raw bytes with their ggml type.
    #[derive(Clone)]
    struct Writer {
        version: u32,
        alignment: usize,
        kvs: Vec<(String, MetaValue)>,
        /// (name, ggml dims, ggml type, data)
        tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
    }

    fn type_id(v: &MetaValue) -> u32 {
        match v {
            MetaValue::U8(_) => 0,
            MetaValue::I8(_) => 1,
            MetaValue::U16(_) => 2,
            MetaValue::I16(_) => 3,
            MetaValue::U32(_) => 4,
            MetaValue::I32(_) => 5,
            MetaValue::F32(_) => 6,
            MetaValue::Bool(_) => 7,
            MetaValue::String(_) => 8,
            MetaValue::Array(_) => 9,
            MetaValue::U64(_) => 10,
            MetaValue::I64(_) => 11,
            MetaValue::F64(_) => 12,
        }
    }

    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    fn put_value(out: &mut Vec<u8>, v: &MetaValue) {
        match v {
            MetaValue::U8(x) => out.extend(x.to_le_bytes()),
            MetaValue::I8(x) => out.extend(x.to_le_bytes()),
            MetaValue::U16(x) => out.extend(x.to_le_bytes()),
            MetaValue::I16(x) => out.extend(x.to_le_bytes()),
            MetaValue::U32(x) => out.extend(x.to_le_bytes()),
            MetaValue::I32(x) => out.extend(x.to_le_bytes()),
            MetaValue::F32(x) => out.extend(x.to_le_bytes()),
            MetaValue::Bool(x) => out.push(u8::from(*x)),
            MetaValue::String(s) => put_str(out, s),
            MetaValue::Array(items) => {
                out.extend(items.first().map_or(0, type_id).to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for item in items {
                    put_value(out, item);
                }
            }
            MetaValue::U64(x) => out.extend(x.to_le_bytes()),
            MetaValue::I64(x) => out.extend(x.to_le_bytes()),
            MetaValue::F64(x) => out.extend(x.to_le_bytes()),
        }
    }

    impl Writer {
        fn new(arch: &str) -> Self {
            Writer {
                version: 3,
                alignment: 32,
                kvs: vec![(
                    "general.architecture".into(),
                    MetaValue::String(arch.into()),
                )],
                tensors: Vec::new(),
            }
        }

        fn kv(&mut self, key: &str, v: MetaValue) -> &mut Self {
            self.kvs.push((key.into(), v));
            self
        }

        /// A tensor given by its HF (row-major) shape.
        fn tensor(&mut self, name: &str, hf_shape: &[u64], ty: u32, data: Vec<u8>) -> &mut Self {
            let dims = hf_shape.iter().rev().copied().collect();
            self.tensors.push((name.into(), dims, ty, data));
            self
        }

        fn f32_tensor(&mut self, name: &str, hf_shape: &[u64], values: &[f32]) -> &mut Self {
            let n: u64 = hf_shape.iter().product();
            assert_eq!(n as usize, values.len(), "{name}");
            let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.tensor(name, hf_shape, GGML_F32, data)
        }

        fn bytes(&self) -> Vec<u8> {
            let mut out = b"GGUF".to_vec();
            out.extend(self.version.to_le_bytes());
            out.extend((self.tensors.len() as u64).to_le_bytes());
            out.extend((self.kvs.len() as u64).to_le_bytes());
            for (k, v) in &self.kvs {
                put_str(&mut out, k);
                out.extend(type_id(v).to_le_bytes());
                put_value(&mut out, v);
            }
            let mut offset = 0usize;
            let mut offsets = Vec::new();
            for (name, dims, ty, data) in &self.tensors {
                put_str(&mut out, name);
                out.extend((dims.len() as u32).to_le_bytes());
                for d in dims {
                    out.extend(d.to_le_bytes());
                }
                out.extend(ty.to_le_bytes());
                out.extend((offset as u64).to_le_bytes());
                offsets.push(offset);
                offset = (offset + data.len()).div_ceil(self.alignment) * self.alignment;
            }
            out.resize(out.len().div_ceil(self.alignment) * self.alignment, 0);
            let data_start = out.len();
            for ((_, _, _, data), off) in self.tensors.iter().zip(offsets) {
                out.resize(data_start + off, 0);
                out.extend(data);
            }
            out
        }

        fn open(&self) -> Result<Gguf> {
            parse(self.bytes())
        }
    }

    fn parse(bytes: Vec<u8>) -> Result<Gguf> {
        Gguf::from_bytes(PathBuf::from("test.gguf"), Bytes::Owned(bytes))
    }

    fn err_text(r: Result<impl std::fmt::Debug>) -> String {
        r.expect_err("expected an error").to_string()
    }

    fn s(v: &str) -> MetaValue {
        MetaValue::String(v.into())
    }

    fn f16_bytes(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    /// A small deterministic generator (no test dependency on `rand`'s stream).
    fn lcg(seed: u64) -> impl FnMut() -> f32 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    /// The converter's permutation written from its formula:
    /// `w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols)`, computed
    /// with explicit strides (row-major).
    fn permute_like_converter(w: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
        let half = rows / n_head / 2;
        // input view (n_head, 2, half, cols), strides:
        let in_strides = [2 * half * cols, half * cols, cols, 1];
        // output (n_head, half, 2, cols) = input with axes 1 and 2 swapped
        let mut out = Vec::with_capacity(w.len());
        for h in 0..n_head {
            for a in 0..half {
                for b in 0..2 {
                    for c in 0..cols {
                        // out[h, a, b, c] = in[h, b, a, c]
                        out.push(w[h * in_strides[0] + b * in_strides[1] + a * in_strides[2] + c]);
                    }
                }
            }
        }
        out
    }

    /// A tiny Llama-like model: 2 layers, hidden 8, 2 heads (head_dim 4), 1 kv head, ffn 16,
    /// vocab 32, F32 weights from `lcg`. Returns the writer and the HF q/k weights as written
    /// (the file holds them permuted, as the converter writes them, when `permute`).
    struct Tiny {
        w: Writer,
        q0: Vec<f32>,
        k0: Vec<f32>,
    }

    fn tiny(arch: &str, permute: bool, tied: bool) -> Tiny {
        let mut rnd = lcg(7);
        let mut vals = |n: usize| (0..n).map(|_| rnd()).collect::<Vec<f32>>();
        let mut w = Writer::new(arch);
        w.kv(&format!("{arch}.block_count"), MetaValue::U32(2))
            .kv(&format!("{arch}.context_length"), MetaValue::U32(128))
            .kv(&format!("{arch}.embedding_length"), MetaValue::U32(8))
            .kv(&format!("{arch}.feed_forward_length"), MetaValue::U32(16))
            .kv(&format!("{arch}.attention.head_count"), MetaValue::U32(2))
            .kv(
                &format!("{arch}.attention.head_count_kv"),
                MetaValue::U32(1),
            )
            .kv(&format!("{arch}.rope.freq_base"), MetaValue::F32(100000.0))
            .kv(
                &format!("{arch}.attention.layer_norm_rms_epsilon"),
                MetaValue::F32(1e-5),
            )
            .kv(&format!("{arch}.rope.dimension_count"), MetaValue::U32(4))
            .kv("tokenizer.ggml.bos_token_id", MetaValue::U32(1))
            .kv("tokenizer.ggml.eos_token_id", MetaValue::U32(2));
        w.f32_tensor("token_embd.weight", &[32, 8], &vals(32 * 8));
        let (mut q0, mut k0) = (Vec::new(), Vec::new());
        for l in 0..2 {
            let q = vals(8 * 8);
            let k = vals(4 * 8);
            let (qf, kf) = if permute {
                (
                    permute_like_converter(&q, 8, 8, 2),
                    permute_like_converter(&k, 4, 8, 1),
                )
            } else {
                (q.clone(), k.clone())
            };
            if l == 0 {
                (q0, k0) = (q, k);
            }
            w.f32_tensor(&format!("blk.{l}.attn_norm.weight"), &[8], &vals(8))
                .f32_tensor(&format!("blk.{l}.attn_q.weight"), &[8, 8], &qf)
                .f32_tensor(&format!("blk.{l}.attn_k.weight"), &[4, 8], &kf)
                .f32_tensor(&format!("blk.{l}.attn_v.weight"), &[4, 8], &vals(32))
                .f32_tensor(&format!("blk.{l}.attn_output.weight"), &[8, 8], &vals(64))
                .f32_tensor(&format!("blk.{l}.ffn_norm.weight"), &[8], &vals(8))
                .f32_tensor(&format!("blk.{l}.ffn_gate.weight"), &[16, 8], &vals(128))
                .f32_tensor(&format!("blk.{l}.ffn_up.weight"), &[16, 8], &vals(128))
                .f32_tensor(&format!("blk.{l}.ffn_down.weight"), &[8, 16], &vals(128));
            if arch == "qwen2" {
                w.f32_tensor(&format!("blk.{l}.attn_q.bias"), &[8], &vals(8))
                    .f32_tensor(&format!("blk.{l}.attn_k.bias"), &[4], &vals(4))
                    .f32_tensor(&format!("blk.{l}.attn_v.bias"), &[4], &vals(4));
            }
            if arch == "qwen3" {
                w.f32_tensor(&format!("blk.{l}.attn_q_norm.weight"), &[4], &vals(4))
                    .f32_tensor(&format!("blk.{l}.attn_k_norm.weight"), &[4], &vals(4));
            }
        }
        w.f32_tensor("output_norm.weight", &[8], &vals(8));
        if !tied {
            w.f32_tensor("output.weight", &[32, 8], &vals(256));
        }
        Tiny { w, q0, k0 }
    }

    #[test]
    fn dequantizes_f32_f16_bf16() {
        let xs = [0.0f32, 1.0, -2.5, 65504.0, 0.099975586];
        let f32b: Vec<u8> = xs.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(dequantize(GGML_F32, &f32b, 5).unwrap(), xs);
        let f16b: Vec<u8> = xs.iter().flat_map(|&v| f16_bytes(v)).collect();
        assert_eq!(dequantize(GGML_F16, &f16b, 5).unwrap(), xs);
        // bf16 keeps the top 16 bits of the f32: 1.5 = 0x3FC0, -3.0 = 0xC040
        let bf: Vec<u8> = [0x3FC0u16, 0xC040, 0x0000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(dequantize(GGML_BF16, &bf, 3).unwrap(), [1.5, -3.0, 0.0]);
        assert_eq!(bf16::from_f32(1.5).to_bits(), 0x3FC0);
    }

    #[test]
    fn dequantizes_q8_0_block() {
        // d = 0.5 (f16 0x3800), q = -16..16
        let mut block = vec![0x00, 0x38];
        block.extend((-16i8..16).map(|q| q as u8));
        let x = dequantize(GGML_Q8_0, &block, 32).unwrap();
        let want: Vec<f32> = (-16..16).map(|q| q as f32 * 0.5).collect();
        assert_eq!(x, want);
        // two blocks, the second with d = -0.25 and q = 127, -128
        let mut two = block.clone();
        two.extend(f16_bytes(-0.25));
        two.extend([127u8, 128u8]);
        two.extend([0u8; 30]);
        let x = dequantize(GGML_Q8_0, &two, 64).unwrap();
        assert_eq!(&x[32..34], &[-31.75, 32.0]);
        assert_eq!(x[63], 0.0);
    }

    #[test]
    fn dequantizes_q4_0_block() {
        // d = 2.0; byte j = lo | hi << 4 with lo = j, hi = 15 - j
        let mut block = f16_bytes(2.0).to_vec();
        block.extend((0u8..16).map(|j| j | ((15 - j) << 4)));
        let x = dequantize(GGML_Q4_0, &block, 32).unwrap();
        for j in 0..16 {
            assert_eq!(x[j], 2.0 * (j as f32 - 8.0), "low nibble of byte {j}");
            assert_eq!(x[16 + j], 2.0 * (7.0 - j as f32), "high nibble of byte {j}");
        }
        assert_eq!((x[0], x[15], x[16], x[31]), (-16.0, 14.0, 14.0, -16.0));
    }

    #[test]
    fn dequantizes_q4_1_block() {
        // d = 0.5, m = -1.0; byte j = lo | hi << 4 with lo = j, hi = (j * 3) % 16
        let mut block = f16_bytes(0.5).to_vec();
        block.extend(f16_bytes(-1.0));
        block.extend((0u8..16).map(|j| j | (((j * 3) % 16) << 4)));
        let x = dequantize(GGML_Q4_1, &block, 32).unwrap();
        for j in 0..16usize {
            assert_eq!(x[j], 0.5 * j as f32 - 1.0);
            assert_eq!(x[16 + j], 0.5 * ((j * 3) % 16) as f32 - 1.0);
        }
        assert_eq!((x[0], x[15], x[17]), (-1.0, 6.5, 0.5));
    }

    #[test]
    fn reads_quantized_tensors_through_the_file() {
        let mut w = Writer::new("qwen3");
        let mut q8 = f16_bytes(0.5).to_vec();
        q8.extend((0..32).map(|q: i8| q as u8));
        let mut q4 = f16_bytes(1.0).to_vec();
        q4.extend([0x98u8; 16]); // low 8 → 0, high 9 → 1
        // F16 [2, 3]: HF row-major
        let f: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|&v| f16_bytes(v))
            .collect();
        w.tensor("token_embd.weight", &[1, 32], GGML_Q8_0, q8)
            .tensor("output.weight", &[1, 32], GGML_Q4_0, q4)
            .tensor("output_norm.weight", &[2, 3], GGML_F16, f);
        let g = w.open().unwrap();
        let e = g.tensor_f32("model.embed_tokens.weight").unwrap();
        assert_eq!(e, (0..32).map(|q| q as f32 * 0.5).collect::<Vec<_>>());
        let o = g.tensor_f32("lm_head.weight").unwrap();
        assert_eq!((o[0], o[15], o[16], o[31]), (0.0, 0.0, 1.0, 1.0));
        assert_eq!(
            g.tensor_f32("model.norm.weight").unwrap(),
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        );
        let shapes: BTreeMap<_, _> = g.tensor_shapes().into_iter().collect();
        assert_eq!(shapes["model.norm.weight"], [2, 3]);
        assert_eq!(g.tensors()[2].ggml_dims, [3, 2]);
    }

    #[test]
    fn reads_metadata_of_every_value_type_v2_and_v3() {
        for version in [2, 3] {
            let mut w = tiny("llama", false, true).w;
            w.version = version;
            let nested = MetaValue::Array(vec![
                MetaValue::Array(vec![MetaValue::I16(-3), MetaValue::I16(4)]),
                MetaValue::Array(vec![MetaValue::I16(5)]),
            ]);
            w.kv("t.u8", MetaValue::U8(200))
                .kv("t.i8", MetaValue::I8(-100))
                .kv("t.u16", MetaValue::U16(60000))
                .kv("t.i16", MetaValue::I16(-30000))
                .kv("t.u32", MetaValue::U32(4_000_000_000))
                .kv("t.i32", MetaValue::I32(-2_000_000_000))
                .kv("t.f32", MetaValue::F32(0.1))
                .kv("t.bool", MetaValue::Bool(true))
                .kv("t.string", s("héllo"))
                .kv("t.u64", MetaValue::U64(u64::MAX))
                .kv("t.i64", MetaValue::I64(i64::MIN))
                .kv("t.f64", MetaValue::F64(-1.25e300))
                .kv("t.nested", nested.clone())
                .kv("t.empty", MetaValue::Array(vec![]))
                .kv("t.strings", MetaValue::Array(vec![s("a"), s(""), s("ü b")]));
            w.alignment = 64;
            w.kv("general.alignment", MetaValue::U32(64));
            let g = w.open().unwrap();
            assert_eq!(g.version(), version);
            let m = g.metadata();
            assert_eq!(m["t.u8"], MetaValue::U8(200));
            assert_eq!(m["t.i8"], MetaValue::I8(-100));
            assert_eq!(m["t.u16"], MetaValue::U16(60000));
            assert_eq!(m["t.i16"], MetaValue::I16(-30000));
            assert_eq!(m["t.u32"].as_u64(), Some(4_000_000_000));
            assert_eq!(m["t.i32"].as_i64(), Some(-2_000_000_000));
            assert_eq!(m["t.i32"].as_u64(), None);
            assert_eq!(m["t.f32"], MetaValue::F32(0.1));
            assert_eq!(m["t.f32"].as_f64(), Some(0.1));
            assert_eq!(m["t.bool"].as_bool(), Some(true));
            assert_eq!(m["t.string"].as_str(), Some("héllo"));
            assert_eq!(m["t.u64"].as_u64(), Some(u64::MAX));
            assert_eq!(m["t.u64"].as_i64(), None);
            assert_eq!(m["t.i64"].as_i64(), Some(i64::MIN));
            assert_eq!(m["t.f64"].as_f64(), Some(-1.25e300));
            assert_eq!(m["t.nested"], nested);
            assert_eq!(m["t.empty"].as_array().map(<[_]>::len), Some(0));
            assert_eq!(m["t.strings"].as_array().unwrap()[2].as_str(), Some("ü b"));
            // the 64-byte alignment moved the data: values still read right
            assert_eq!(
                g.tensor_f32("model.norm.weight").unwrap(),
                tiny("llama", false, true)
                    .w
                    .open()
                    .unwrap()
                    .tensor_f32("model.norm.weight")
                    .unwrap()
            );
        }
    }

    #[test]
    fn maps_names_and_reverses_shapes() {
        let g = tiny("qwen3", false, false).w.open().unwrap();
        let shapes: BTreeMap<String, Vec<usize>> = g.tensor_shapes().into_iter().collect();
        let want: &[(&str, &[usize])] = &[
            ("model.embed_tokens.weight", &[32, 8]),
            ("model.norm.weight", &[8]),
            ("lm_head.weight", &[32, 8]),
            ("model.layers.1.input_layernorm.weight", &[8]),
            ("model.layers.1.post_attention_layernorm.weight", &[8]),
            ("model.layers.1.self_attn.q_proj.weight", &[8, 8]),
            ("model.layers.1.self_attn.k_proj.weight", &[4, 8]),
            ("model.layers.1.self_attn.v_proj.weight", &[4, 8]),
            ("model.layers.1.self_attn.o_proj.weight", &[8, 8]),
            ("model.layers.1.self_attn.q_norm.weight", &[4]),
            ("model.layers.1.self_attn.k_norm.weight", &[4]),
            ("model.layers.1.mlp.gate_proj.weight", &[16, 8]),
            ("model.layers.1.mlp.up_proj.weight", &[16, 8]),
            ("model.layers.1.mlp.down_proj.weight", &[8, 16]),
        ];
        for (name, shape) in want {
            assert_eq!(shapes.get(*name).map(Vec::as_slice), Some(*shape), "{name}");
        }
        assert_eq!(shapes.len(), 3 + 2 * 11);
        let down = g
            .tensors()
            .iter()
            .find(|t| t.name == "blk.1.ffn_down.weight")
            .unwrap();
        assert_eq!(down.ggml_dims, [16, 8]);
        assert_eq!(down.shape(), [8, 16]);
        assert_eq!(
            down.hf_name.as_deref(),
            Some("model.layers.1.mlp.down_proj.weight")
        );

        // the mapping itself, including biases and what is refused
        let m = |n: &str| hf_name(n);
        let w = |s: &str| Some(HfName::Weight(s.into()));
        assert_eq!(
            m("blk.12.attn_output.bias"),
            w("model.layers.12.self_attn.o_proj.bias")
        );
        assert_eq!(
            m("blk.0.attn_v.bias"),
            w("model.layers.0.self_attn.v_proj.bias")
        );
        assert_eq!(m("rope_freqs.weight"), Some(HfName::Skip));
        for bad in [
            "blk.0.ffn_gate.bias",
            "blk.x.attn_q.weight",
            "blk..attn_q.weight",
            "blk.0.attn_qkv.weight",
            "blk.0.attn_q",
            "token_embd.bias",
            "blk.0.ffn_gate_exps.weight",
        ] {
            assert_eq!(m(bad), None, "{bad}");
        }
    }

    #[test]
    fn unpermute_inverts_the_converter_permutation() {
        let mut rnd = lcg(42);
        for (rows, cols, n_head) in [(24, 5, 3), (8, 1, 2), (64, 3, 1), (12, 7, 3)] {
            let w: Vec<f32> = (0..rows * cols).map(|_| rnd()).collect();
            let p = permute_like_converter(&w, rows, cols, n_head);
            assert_ne!(
                p, w,
                "the permutation must move rows ({rows}x{cols}, {n_head} heads)"
            );
            assert_eq!(unpermute_rows(&p, rows, cols, n_head), w);
            assert_eq!(
                permute_like_converter(&unpermute_rows(&w, rows, cols, n_head), rows, cols, n_head),
                w
            );
        }
        // the pattern on one head of size 4 (rows 0..4 = [a0, a1, b0, b1] in HF order): the
        // converter interleaves the two halves → [a0, b0, a1, b1]
        let w = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(permute_like_converter(&w, 4, 1, 1), [0.0, 2.0, 1.0, 3.0]);
    }

    #[test]
    fn llama_q_and_k_are_unpermuted_and_qwen_is_not() {
        let t = tiny("llama", true, true);
        let g = t.w.open().unwrap();
        assert_eq!(
            g.tensor_f32("model.layers.0.self_attn.q_proj.weight")
                .unwrap(),
            t.q0
        );
        assert_eq!(
            g.tensor_f32("model.layers.0.self_attn.k_proj.weight")
                .unwrap(),
            t.k0
        );
        for arch in ["qwen2", "qwen3"] {
            let t = tiny(arch, false, true);
            let g = t.w.open().unwrap();
            assert_eq!(
                g.tensor_f32("model.layers.0.self_attn.q_proj.weight")
                    .unwrap(),
                t.q0,
                "{arch}"
            );
            assert_eq!(
                g.tensor_f32("model.layers.0.self_attn.k_proj.weight")
                    .unwrap(),
                t.k0,
                "{arch}"
            );
        }
        // a llama q bias is unpermuted too (the converter permutes `q_proj.bias`)
        let mut w = tiny("llama", false, true).w;
        let bias = [10.0f32, 11.0, 12.0, 13.0, 20.0, 21.0, 22.0, 23.0];
        w.f32_tensor(
            "blk.0.attn_q.bias",
            &[8],
            &permute_like_converter(&bias, 8, 1, 2),
        );
        let g = w.open().unwrap();
        assert_eq!(
            g.tensor_f32("model.layers.0.self_attn.q_proj.bias")
                .unwrap(),
            bias
        );
    }

    #[test]
    fn hf_config_has_the_hf_keys() {
        let g = tiny("llama", true, true).w.open().unwrap();
        let c = g.hf_config().unwrap();
        let want = json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": 8,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 4,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-5,
            "rope_theta": 100000.0,
            "max_position_embeddings": 128,
            "vocab_size": 32,
            "tie_word_embeddings": true,
            "attention_bias": false,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "torch_dtype": "float32",
        });
        assert_eq!(c, want);

        let c = tiny("qwen2", false, false)
            .w
            .open()
            .unwrap()
            .hf_config()
            .unwrap();
        assert_eq!(c["architectures"], json!(["Qwen2ForCausalLM"]));
        assert_eq!(c["model_type"], "qwen2");
        assert_eq!(c["attention_bias"], true);
        assert_eq!(c["tie_word_embeddings"], false);

        let mut w = tiny("qwen3", false, true).w;
        w.kv("qwen3.attention.key_length", MetaValue::U32(4))
            .kv("qwen3.attention.value_length", MetaValue::U32(4));
        let c = w.open().unwrap().hf_config().unwrap();
        assert_eq!(c["architectures"], json!(["Qwen3ForCausalLM"]));
        assert_eq!(c["model_type"], "qwen3");
        assert_eq!(c["attention_bias"], false);
        assert_eq!(c["head_dim"], 4);

        // a key_length that differs from hidden/heads is what head_dim takes
        let mut w = tiny("qwen3", false, true).w;
        w.kvs.retain(|(k, _)| k != "qwen3.rope.dimension_count");
        w.kv("qwen3.attention.key_length", MetaValue::U32(16));
        assert_eq!(w.open().unwrap().hf_config().unwrap()["head_dim"], 16);

        // linear scaling from the keys
        let mut w = tiny("llama", false, true).w;
        w.kv("llama.rope.scaling.type", s("linear"))
            .kv("llama.rope.scaling.factor", MetaValue::F32(2.0));
        let c = w.open().unwrap().hf_config().unwrap();
        assert_eq!(
            c["rope_scaling"],
            json!({"rope_type": "linear", "factor": 2.0})
        );

        // a missing key is named
        let mut w = tiny("llama", false, true).w;
        w.kvs.retain(|(k, _)| k != "llama.block_count");
        let e = err_text(w.open().unwrap().hf_config());
        assert!(e.contains("`llama.block_count` is missing"), "{e}");
    }

    #[test]
    fn llama3_rope_scaling_is_recovered_from_rope_freqs() {
        // Llama 3.1 8B (head_dim 128, factor 8) and Llama 3.2 1B (head_dim 64, factor 32)
        for (head_dim, factor) in [(128usize, 8.0f64), (64, 32.0)] {
            let table = llama3_factors(500000.0, head_dim, factor, 1.0, 4.0, 8192.0);
            let as_f32: Vec<f32> = table.iter().map(|&f| f as f32).collect();
            let got = llama3_scaling(&as_f32, 500000.0, head_dim, 8192).unwrap();
            assert_eq!(
                got,
                Some(json!({
                    "rope_type": "llama3",
                    "factor": factor,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 8192,
                })),
                "head_dim {head_dim}"
            );
            // through a file: the tensor is not a model weight, the config carries it
            let mut w = Writer::new("llama");
            let arch_kv: &[(&str, u32)] = &[
                ("block_count", 1),
                ("context_length", 131072),
                ("embedding_length", head_dim as u32 * 2),
                ("feed_forward_length", 8),
                ("attention.head_count", 2),
            ];
            for (k, v) in arch_kv {
                w.kv(&format!("llama.{k}"), MetaValue::U32(*v));
            }
            w.kv("llama.rope.freq_base", MetaValue::F32(500000.0))
                .kv(
                    "llama.attention.layer_norm_rms_epsilon",
                    MetaValue::F32(1e-5),
                )
                .f32_tensor("token_embd.weight", &[2, 1], &[0.0, 0.0])
                .f32_tensor("rope_freqs.weight", &[head_dim as u64 / 2], &as_f32);
            let g = w.open().unwrap();
            assert_eq!(g.hf_config().unwrap()["rope_scaling"]["factor"], factor);
            assert_eq!(g.tensor_shapes().len(), 1);
        }
        // all-ones factors: no scaling; a table that is not llama3's: an error
        assert_eq!(
            llama3_scaling(&[1.0; 64], 500000.0, 128, 8192).unwrap(),
            None
        );
        let mut wrong: Vec<f32> = llama3_factors(500000.0, 128, 8.0, 1.0, 4.0, 8192.0)
            .iter()
            .map(|&f| f as f32)
            .collect();
        wrong[5] = 3.0;
        let e = llama3_scaling(&wrong, 500000.0, 128, 8192).unwrap_err();
        assert!(e.contains("does not match llama3"), "{e}");
    }

    #[test]
    fn tokenizer_comes_from_the_metadata() {
        let mut w = tiny("qwen2", false, true).w;
        w.kv("tokenizer.ggml.model", s("gpt2"))
            .kv("tokenizer.ggml.pre", s("qwen2"))
            .kv(
                "tokenizer.ggml.tokens",
                MetaValue::Array(vec![s("<unk>"), s("<s>"), s("</s>"), s("Ġa"), s("b")]),
            )
            .kv(
                "tokenizer.ggml.token_type",
                MetaValue::Array(vec![
                    MetaValue::I32(2),
                    MetaValue::I32(3),
                    MetaValue::I32(3),
                    MetaValue::I32(1),
                    MetaValue::I32(1),
                ]),
            )
            .kv("tokenizer.ggml.merges", MetaValue::Array(vec![s("Ġ a")]))
            .kv("tokenizer.ggml.padding_token_id", MetaValue::U32(2))
            .kv("tokenizer.ggml.unknown_token_id", MetaValue::U32(0))
            .kv("tokenizer.ggml.add_bos_token", MetaValue::Bool(false))
            .kv("tokenizer.chat_template", s("{{ messages }}"));
        let t = w.open().unwrap().tokenizer().unwrap();
        assert_eq!(t.model, "gpt2");
        assert_eq!(t.pre.as_deref(), Some("qwen2"));
        assert_eq!(t.tokens, ["<unk>", "<s>", "</s>", "Ġa", "b"]);
        assert_eq!(t.token_types, [2, 3, 3, 1, 1]);
        assert_eq!(t.merges, ["Ġ a"]);
        assert_eq!(
            (t.bos, t.eos, t.pad, t.unk),
            (Some(1), Some(2), Some(2), Some(0))
        );
        assert!(!t.add_bos);
        assert_eq!(t.chat_template.as_deref(), Some("{{ messages }}"));

        // no tokenizer at all: a clear error
        let e = err_text(tiny("qwen2", false, true).w.open().unwrap().tokenizer());
        assert!(e.contains("has no tokenizer"), "{e}");
    }

    #[test]
    fn every_truncation_errors_without_panicking() {
        let mut w = tiny("llama", false, true).w;
        w.kv(
            "tokenizer.ggml.tokens",
            MetaValue::Array(vec![s("a"), s("b")]),
        );
        let full = w.bytes();
        assert!(parse(full.clone()).is_ok());
        // the last tensor's data ends the file: every shorter prefix must fail
        for len in 0..full.len() {
            let e = err_text(parse(full[..len].to_vec()));
            assert!(e.contains("test.gguf"), "{len}: {e}");
        }
        let e = err_text(parse(full[..full.len() - 1].to_vec()));
        assert!(e.contains("past the end of the file"), "{e}");
        assert!(e.contains("output_norm.weight"), "{e}");
        assert!(e.contains("download or convert it again"), "{e}");
        let name = b"output_norm.weight";
        let at = full.windows(name.len()).rposition(|w| w == name).unwrap();
        let e = err_text(parse(full[..at + 3].to_vec()));
        assert!(e.contains("the name of tensor 19 has length 18"), "{e}");
        let e = err_text(parse(full[..at + name.len() + 4 + 3].to_vec()));
        assert!(
            e.contains("the file ends inside the dimensions of tensor `output_norm.weight`"),
            "{e}"
        );
        let e = err_text(parse(full[..30].to_vec()));
        assert!(e.contains("more than the 6 bytes after it can hold"), "{e}");
    }

    #[test]
    fn a_tensor_past_the_end_errors() {
        let mut w = tiny("llama", false, true).w;
        w.f32_tensor("output.weight", &[32, 8], &[0.5; 256]);
        let mut bytes = w.bytes();
        // point the last tensor (output.weight) far beyond the data: patch its offset field,
        // the 8 bytes before the data section's padding
        let name = b"output.weight";
        let at = bytes
            .windows(name.len())
            .rposition(|win| win == name)
            .unwrap();
        let offset_at = at + name.len() + 4 + 2 * 8 + 4;
        bytes[offset_at..offset_at + 8].copy_from_slice(&(1u64 << 20).to_le_bytes());
        let e = err_text(parse(bytes.clone()));
        assert!(e.contains("tensor `output.weight`"), "{e}");
        assert!(e.contains("past the end of the file"), "{e}");
        // an offset near u64::MAX must not overflow
        bytes[offset_at..offset_at + 8].copy_from_slice(&(u64::MAX - 31).to_le_bytes());
        let e = err_text(parse(bytes));
        assert!(e.contains("past the end of the file"), "{e}");
    }

    #[test]
    fn an_unsupported_quant_type_errors_with_its_name() {
        let mut w = tiny("llama", false, true).w;
        // Q6_K: blocks of 256 elements in 210 bytes
        w.tensor("output.weight", &[2, 256], 14, vec![0u8; 2 * 210]);
        let g = w.open().unwrap();
        assert_eq!(g.tensor_shapes().last().unwrap().1, [2, 256]);
        let e = err_text(g.tensor_f32("lm_head.weight"));
        for part in [
            "output.weight",
            "Q6_K",
            "ggml type 14",
            "llama-quantize",
            "Q8_0",
        ] {
            assert!(e.contains(part), "{part}: {e}");
        }
        // a type id ggml does not define
        let mut w = tiny("llama", false, true).w;
        w.tensor("output.weight", &[1, 32], 77, vec![0u8; 64]);
        let e = err_text(w.open().unwrap().tensor_f32("lm_head.weight"));
        assert!(e.contains("type 77"), "{e}");
        // rows must be whole blocks
        let mut w = tiny("llama", false, true).w;
        w.tensor("output.weight", &[1, 16], GGML_Q8_0, vec![0u8; 34]);
        let e = err_text(w.open());
        assert!(e.contains("not a multiple of the block size 32"), "{e}");
    }

    #[test]
    fn bad_headers_are_refused_by_name() {
        let ok = tiny("llama", false, true).w;
        type Edit = Box<dyn Fn(&mut Writer)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|w| w.kvs[0].1 = s("gemma2")),
                "`general.architecture` is `gemma2`",
            ),
            (
                Box::new(|w| {
                    w.kvs.remove(0);
                }),
                "`general.architecture` is missing",
            ),
            (
                Box::new(|w| w.tensors[0].0 = "blk.0.ssm_in.weight".into()),
                "tensor `blk.0.ssm_in.weight`",
            ),
            (Box::new(|w| w.version = 1), "GGUF version 1"),
            (Box::new(|w| w.version = 3u32.swap_bytes()), "big-endian"),
            (
                Box::new(|w| {
                    w.kv("general.alignment", MetaValue::U32(24));
                }),
                "power of two",
            ),
            (
                Box::new(|w| {
                    w.kv("tokenizer.ggml.bos_token_id", MetaValue::U32(9));
                }),
                "appears twice",
            ),
            (
                Box::new(|w| {
                    let t = w.tensors[1].clone();
                    w.tensors.push(t);
                }),
                "appears twice",
            ),
            (
                Box::new(|w| w.tensors[0].1 = vec![8, 4, 1, 1, 1]),
                "5 dimensions",
            ),
        ];
        for (edit, want) in cases {
            let mut w = ok.clone();
            edit(&mut w);
            let e = err_text(w.open());
            assert!(e.contains(want), "{want}: {e}");
        }
        let e = err_text(parse(b"PK\x03\x04 not a gguf".to_vec()));
        assert!(e.contains("not a GGUF file"), "{e}");
    }

    #[test]
    fn absurd_counts_and_lengths_error_before_allocating() {
        // tensor and metadata counts far beyond the file
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(u64::MAX.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        let e = err_text(parse(b));
        assert!(e.contains("more than"), "{e}");
        // a string length and an array length beyond the file
        let header = |kvs: u64| {
            let mut b = b"GGUF".to_vec();
            b.extend(3u32.to_le_bytes());
            b.extend(0u64.to_le_bytes());
            b.extend(kvs.to_le_bytes());
            b
        };
        let mut b = header(1);
        b.extend((u64::MAX - 3).to_le_bytes());
        b.extend([0u8; 32]);
        let e = err_text(parse(b));
        assert!(e.contains("the key of metadata entry 0 has length"), "{e}");
        let mut b = header(1);
        put_str(&mut b, "k");
        b.extend(9u32.to_le_bytes()); // array
        b.extend(8u32.to_le_bytes()); // of strings
        b.extend((1u64 << 60).to_le_bytes());
        b.extend([0u8; 32]);
        let e = err_text(parse(b));
        assert!(e.contains("metadata `k` has length"), "{e}");
        // arrays nested deeper than any real file
        let mut b = header(1);
        put_str(&mut b, "deep");
        b.extend(9u32.to_le_bytes());
        for _ in 0..20 {
            b.extend(9u32.to_le_bytes());
            b.extend(1u64.to_le_bytes());
        }
        b.extend([0u8; 64]);
        let e = err_text(parse(b));
        assert!(e.contains("nests arrays"), "{e}");
        // an unknown value type
        let mut b = header(1);
        put_str(&mut b, "k");
        b.extend(13u32.to_le_bytes());
        b.extend([0u8; 16]);
        let e = err_text(parse(b));
        assert!(e.contains("unknown value type 13"), "{e}");
        // a tensor whose element count overflows
        let mut w = tiny("llama", false, true).w;
        w.tensors[0].1 = vec![u64::MAX / 2, 4];
        let e = err_text(w.open());
        assert!(e.contains("too many elements"), "{e}");
    }

    #[test]
    fn open_reads_a_real_file_and_names_missing_tensors() {
        let dir = std::env::temp_dir().join(format!("zoo-gguf-test-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let path = dir.join("tiny.gguf");
        fs_err::write(&path, tiny("llama", true, false).w.bytes()).unwrap();
        let g = Gguf::open(&path).unwrap();
        assert_eq!(g.path(), path);
        assert_eq!(g.architecture(), "llama");
        assert_eq!(g.tensor_shapes().len(), 3 + 2 * 9);
        assert_eq!(g.tensor_f32("lm_head.weight").unwrap().len(), 256);
        let e = err_text(g.tensor_f32("model.layers.7.mlp.up_proj.weight"));
        assert!(
            e.contains("no tensor `model.layers.7.mlp.up_proj.weight`"),
            "{e}"
        );
        let e = err_text(Gguf::open(&dir.join("missing.gguf")));
        assert!(e.contains("missing.gguf"), "{e}");
        fs_err::remove_dir_all(&dir).unwrap();
    }

    /// Reads the real SmolLM2-135M-Instruct Q4_1 GGUF (Q4_1 ×210, F32 ×61, Q8_0 ×1 for
    /// `token_embd`). Expected values: gguf-py 0.19 `GGUFReader` + `gguf.quants.dequantize`.
    #[test]
    #[ignore = "needs SmolLM2: scripts/fetch-smollm2.sh"]
    fn smollm2_gguf_reads_and_dequantizes() {
        let path = std::env::var("ZOO_SMOLLM2_GGUF").expect(
            "set ZOO_SMOLLM2_GGUF to SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-smollm2.sh)",
        );
        let g = Gguf::open(Path::new(&path)).unwrap();
        let c = g.hf_config().unwrap();
        assert_eq!(c["architectures"], json!(["LlamaForCausalLM"]));
        assert_eq!(c["hidden_size"], 576);
        assert_eq!(c["intermediate_size"], 1536);
        assert_eq!(c["num_hidden_layers"], 30);
        assert_eq!(c["num_attention_heads"], 9);
        assert_eq!(c["num_key_value_heads"], 3);
        assert_eq!(c["head_dim"], 64);
        assert_eq!(c["vocab_size"], 49152);
        assert_eq!(c["tie_word_embeddings"], true);
        assert_eq!(c["rope_theta"], 100000.0);
        assert_eq!(c["rms_norm_eps"], 1e-5);
        assert_eq!(c["max_position_embeddings"], 8192);
        assert_eq!(
            (c["bos_token_id"].clone(), c["eos_token_id"].clone()),
            (json!(1), json!(2))
        );
        assert!(c.get("rope_scaling").is_none());

        assert_eq!(g.tensors().len(), 272);
        let shapes = g.tensor_shapes();
        assert_eq!(shapes.len(), 272);
        let shapes: BTreeMap<_, _> = shapes.into_iter().collect();
        assert_eq!(shapes["model.embed_tokens.weight"], [49152, 576]);
        assert_eq!(
            shapes["model.layers.29.self_attn.k_proj.weight"],
            [192, 576]
        );
        assert_eq!(shapes["model.layers.0.mlp.down_proj.weight"], [576, 1536]);

        let emb = g.tensor_f32("model.embed_tokens.weight").unwrap();
        assert_eq!(emb.len(), 49152 * 576);
        let want: [(usize, [f64; 4], f64); 4] = [
            (
                0,
                [
                    -0.10654449462890625,
                    0.032978057861328125,
                    0.048198699951171875,
                    -0.022830963134765625,
                ],
                -2.2541093826293945,
            ),
            (
                1,
                [
                    -0.0238037109375,
                    -0.015869140625,
                    -0.0396728515625,
                    0.015869140625,
                ],
                0.35922718048095703,
            ),
            (
                2,
                [
                    -0.03271484375,
                    -0.049072265625,
                    -0.016357421875,
                    0.0654296875,
                ],
                0.844447135925293,
            ),
            (
                3,
                [
                    -0.111083984375,
                    -0.079345703125,
                    -0.1348876953125,
                    0.0634765625,
                ],
                -0.22331809997558594,
            ),
        ];
        for (row, first, sum) in want {
            let r = &emb[row * 576..(row + 1) * 576];
            for (a, b) in r.iter().zip(first) {
                assert!((f64::from(*a) - b).abs() <= 1e-6, "row {row}: {a} vs {b}");
            }
            let got: f64 = r.iter().map(|&v| f64::from(v)).sum();
            assert!((got - sum).abs() <= 1e-4, "row {row} sum: {got} vs {sum}");
        }
        let norm = g.tensor_f32("model.norm.weight").unwrap();
        assert_eq!(&norm[..4], &[1.7578125, 1.8203125, 1.78125, 1.6015625]);

        let t = g.tokenizer().unwrap();
        assert_eq!(
            (t.model.as_str(), t.pre.as_deref()),
            ("gpt2", Some("smollm"))
        );
        assert_eq!((t.tokens.len(), t.merges.len()), (49152, 48900));
        assert!(t.chat_template.unwrap().contains("<|im_start|>"));
    }
}
