//! Tests of the GGUF reader, on files written here (a minimal GGUF writer below).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;
use zoo_core::Result;

use super::file::*;
use super::names::*;
use super::parse::*;
use super::quants::*;
use crate::weights::WeightSource;
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

/// The K-quants against gguf-py's own dequantization (`scripts/make-gguf-kquant-fixtures.py`:
/// four random super-blocks per type, so every packed bit pattern occurs), bit for bit, read
/// through a real file written by gguf-py's `GGUFWriter`.
#[test]
fn k_quants_match_gguf_py_bit_for_bit() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf");
    let g = Gguf::open(&dir.join("kquants.gguf")).unwrap();
    let text = std::fs::read_to_string(dir.join("kquants.json")).unwrap();
    let expected: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(expected.len(), 5);
    let mut types = Vec::new();
    for (name, want) in &expected {
        let t = g.tensor_by_gguf_name(name).unwrap();
        assert_eq!(t.type_name(), want["type"].as_str().unwrap(), "{name}");
        types.push(t.type_name());
        let got = g.read_tensor(t).unwrap();
        let want: Vec<f32> = want["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(got.len(), 2 * 512, "{name}");
        let differing = got
            .iter()
            .zip(&want)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            differing,
            0,
            "{name}: {differing} of {} values differ",
            got.len()
        );
        assert!(want.iter().any(|&v| v < 0.0) && want.iter().any(|&v| v > 0.0));
    }
    types.sort();
    assert_eq!(types, ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]);
}

/// A hand-built `Q4_K` block: the 6-bit scales and mins of sub-blocks 0..4 and 4..8 are packed
/// differently, and the nibbles of a byte belong to two different sub-blocks.
#[test]
fn q4_k_unpacks_scales_mins_and_nibbles_by_sub_block() {
    let mut block = Vec::new();
    block.extend(f16_bytes(1.0));
    block.extend(f16_bytes(0.5));
    // sub-block j: scale j + 1 (+ 32 for j = 5), min 2j; j ≥ 4 split across bytes 8..12
    let (sc, mn): (Vec<u8>, Vec<u8>) = (0..8u8)
        .map(|j| (j + 1 + if j == 5 { 32 } else { 0 }, 2 * j))
        .unzip();
    let mut scales = [0u8; 12];
    for j in 0..4 {
        scales[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        scales[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
        scales[j + 8] = (sc[j + 4] & 0x0F) | ((mn[j + 4] & 0x0F) << 4);
    }
    block.extend(scales);
    // qs byte 32h + l: low nibble → sub-block 2h, high nibble → sub-block 2h + 1
    block.extend((0..128).map(|i: usize| (3 + (i / 32) as u8) | (7 << 4)));
    let x = dequantize(GGML_Q4_K, &block, 256).unwrap();
    for j in 0..8 {
        let q = if j % 2 == 0 { 3 + j as u8 / 2 } else { 7 };
        let want = f32::from(sc[j]) * f32::from(q) - 0.5 * f32::from(mn[j]);
        assert_eq!(x[32 * j], want, "sub-block {j}");
        assert_eq!(x[32 * j + 31], want, "sub-block {j}");
    }
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
    // IQ2_XXS: blocks of 256 elements in 66 bytes
    w.tensor("output.weight", &[2, 256], 16, vec![0u8; 2 * 66]);
    let g = w.open().unwrap();
    assert_eq!(g.tensor_shapes().last().unwrap().1, [2, 256]);
    let e = err_text(g.tensor_f32("lm_head.weight"));
    for part in [
        "output.weight",
        "IQ2_XXS",
        "ggml type 16",
        "Q6_K",
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
