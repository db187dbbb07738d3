//! ggml's tensor types and their dequantization to f32.

/// ggml tensor types: `(id, name, elements per block, bytes per block)`, from gguf-py's
/// `GGMLQuantizationType` and `GGML_QUANT_SIZES` (ids 4, 5, 31..=33, 36..=38 are retired).
pub(super) const GGML_TYPES: &[(u32, &str, usize, usize)] = &[
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

pub(super) const GGML_F32: u32 = 0;
pub(super) const GGML_F16: u32 = 1;
pub(super) const GGML_Q4_0: u32 = 2;
pub(super) const GGML_Q4_1: u32 = 3;
pub(super) const GGML_Q8_0: u32 = 8;
pub(super) const GGML_Q2_K: u32 = 10;
pub(super) const GGML_Q3_K: u32 = 11;
pub(super) const GGML_Q4_K: u32 = 12;
pub(super) const GGML_Q5_K: u32 = 13;
pub(super) const GGML_Q6_K: u32 = 14;
pub(super) const GGML_BF16: u32 = 30;

/// Elements per K-quant super-block.
const QK_K: usize = 256;

/// The names of the types [`dequantize`] decodes, for error messages and docs.
pub(super) const DECODED: &str =
    "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K";

/// `(name, elements per block, bytes per block)` of ggml type `id`, if known.
pub(super) fn ggml_type(id: u32) -> Option<(&'static str, usize, usize)> {
    GGML_TYPES
        .iter()
        .find(|t| t.0 == id)
        .map(|&(_, name, block, bytes)| (name, block, bytes))
}

/// The name of ggml type `id` (`Q4_1`), or `type 99` when unknown.
pub(super) fn ggml_type_name(id: u32) -> String {
    ggml_type(id).map_or_else(|| format!("type {id}"), |t| t.0.to_string())
}

/// Dequantizes `n` elements of ggml type `ty` from `bytes` (exactly `n / block * block_bytes`
/// long, `n` a multiple of the block size). `None` for types this reader does not decode.
///
/// Each type follows gguf-py 0.19's `quants.py` (`dequantize_blocks` of the class with the type's
/// name), which mirrors ggml's `dequantize_row_*` in `ggml-quants.c`; the f32 operations run in
/// the same order, so the results are bit-identical to gguf-py's (the parity fixture checks
/// that). `d`, `dmin` and `m` are f16. Blocks of 32:
/// - `Q8_0`: `d`, 32 × i8 `q`: `x = d·q`.
/// - `Q4_0`: `d`, 16 bytes: byte `j` holds element `j` (low nibble) and `j + 16` (high
///   nibble): `x = d·(q − 8)`.
/// - `Q4_1`: `d`, `m`, 16 bytes as `Q4_0`: `x = d·q + m`.
///
/// K-quants: super-blocks of 256 elements in sub-blocks of 16 or 32, each with its own scale
/// (and min) quantized against the super-block's `d` (and `dmin`); see the functions below.
pub(super) fn dequantize(ty: u32, bytes: &[u8], n: usize) -> Option<Vec<f32>> {
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
        GGML_Q2_K => bytes.chunks_exact(84).for_each(|b| q2_k(b, &mut out)),
        GGML_Q3_K => bytes.chunks_exact(110).for_each(|b| q3_k(b, &mut out)),
        GGML_Q4_K => bytes.chunks_exact(144).for_each(|b| q4_k(b, &mut out)),
        GGML_Q5_K => bytes.chunks_exact(176).for_each(|b| q5_k(b, &mut out)),
        GGML_Q6_K => bytes.chunks_exact(210).for_each(|b| q6_k(b, &mut out)),
        _ => return None,
    }
    debug_assert_eq!(out.len(), n);
    Some(out)
}

fn f16(b: &[u8]) -> f32 {
    half::f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// `Q2_K` (84 bytes): `scales[16] | qs[64] | d | dmin`. Sub-block `j` (16 elements) has scale
/// `scales[j] & 0xF` and min `scales[j] >> 4`; element `e = 128h + 32s + l` is 2 bits of
/// `qs[32h + l]` at shift `2s`: `x = (d·sc)·q − dmin·m`.
fn q2_k(b: &[u8], out: &mut Vec<f32>) {
    let (scales, qs) = (&b[..16], &b[16..80]);
    let (d, dmin) = (f16(&b[80..82]), f16(&b[82..84]));
    out.extend((0..QK_K).map(|e| {
        let (h, s, l) = (e / 128, (e / 32) % 4, e % 32);
        let q = (qs[32 * h + l] >> (2 * s)) & 3;
        let sc = scales[e / 16];
        let dl = d * f32::from(sc & 0xF);
        let ml = dmin * f32::from(sc >> 4);
        dl * f32::from(q) - ml
    }));
}

/// `Q3_K` (110 bytes): `hmask[32] | qs[64] | scales[12] | d`. Sixteen 6-bit scales (minus 32):
/// scale `i` takes its low 4 bits from `scales[i % 8]` at shift `4·(i / 8)` and its high 2 bits
/// from `scales[8 + i % 4]` at shift `2·(i / 4)`. Element `e = 128h + 32s + l` has 2 low bits
/// from `qs[32h + l]` at shift `2s` and a high bit `hmask[e % 32]` at shift `e / 32`; a clear
/// high bit subtracts 4: `x = (d·scale)·(q − 4·(1 − hbit))`.
fn q3_k(b: &[u8], out: &mut Vec<f32>) {
    let (hmask, qs, scales) = (&b[..32], &b[32..96], &b[96..108]);
    let d = f16(&b[108..110]);
    let scale = |i: usize| {
        let low = (scales[i % 8] >> (4 * (i / 8))) & 0x0F;
        let high = (scales[8 + i % 4] >> (2 * (i / 4))) & 0x03;
        f32::from(((low | (high << 4)) as i8) - 32)
    };
    out.extend((0..QK_K).map(|e| {
        let (h, s, l) = (e / 128, (e / 32) % 4, e % 32);
        let low = ((qs[32 * h + l] >> (2 * s)) & 3) as i8;
        let hbit = ((hmask[l] >> (e / 32)) & 1) as i8;
        let q = low - ((hbit ^ 1) << 2);
        (d * scale(e / 16)) * f32::from(q)
    }));
}

/// The eight 6-bit scales and mins of `Q4_K`/`Q5_K`, packed in 12 bytes (gguf-py
/// `Q4_K.get_scale_min`): for `j < 4`, `sc = s[j] & 63`, `m = s[j + 4] & 63`; for `j ≥ 4`, the
/// low 4 bits come from `s[j + 4]` (low/high nibble) and the top 2 from the top bits of
/// `s[j − 4]` / `s[j]`.
fn k_scale_min(s: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 0x3F, s[j + 4] & 0x3F)
    } else {
        let k = j - 4;
        (
            (s[8 + k] & 0x0F) | ((s[k] >> 2) & 0x30),
            (s[8 + k] >> 4) | ((s[4 + k] >> 2) & 0x30),
        )
    }
}

/// `Q4_K` (144 bytes): `d | dmin | scales[12] | qs[128]`. Sub-block `j` (32 elements) has
/// scale and min from [`k_scale_min`]; element `e = 64h + 32s + l` is the nibble of
/// `qs[32h + l]` at shift `4s`: `x = (d·sc)·q − dmin·m`.
fn q4_k(b: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (f16(&b[..2]), f16(&b[2..4]));
    let (scales, qs) = (&b[4..16], &b[16..144]);
    for j in 0..QK_K / 32 {
        let (sc, m) = k_scale_min(scales, j);
        let (dl, ml) = (d * f32::from(sc), dmin * f32::from(m));
        let (h, s) = (j / 2, j % 2);
        out.extend((0..32).map(|l| dl * f32::from((qs[32 * h + l] >> (4 * s)) & 0x0F) - ml));
    }
}

/// `Q5_K` (176 bytes): `d | dmin | scales[12] | qh[32] | qs[128]`: `Q4_K` with a fifth bit per
/// element, bit `e / 32` of `qh[e % 32]`: `x = (d·sc)·(q + 16·hbit) − dmin·m`.
fn q5_k(b: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (f16(&b[..2]), f16(&b[2..4]));
    let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    for j in 0..QK_K / 32 {
        let (sc, m) = k_scale_min(scales, j);
        let (dl, ml) = (d * f32::from(sc), dmin * f32::from(m));
        let (h, s) = (j / 2, j % 2);
        out.extend((0..32).map(|l| {
            let q = ((qs[32 * h + l] >> (4 * s)) & 0x0F) | (((qh[l] >> j) & 1) << 4);
            dl * f32::from(q) - ml
        }));
    }
}

/// `Q6_K` (210 bytes): `ql[128] | qh[64] | scales[16] (i8) | d`. Element `e = 128h + 64s + k`
/// has 4 low bits from `ql[64h + k]` at shift `4s`; writing `e = 128h + 32t + l`, 2 high bits
/// from `qh[32h + l]` at shift `2t`: `x = (d·scale)·(q − 32)`, one scale per 16 elements.
fn q6_k(b: &[u8], out: &mut Vec<f32>) {
    let (ql, qh, scales) = (&b[..128], &b[128..192], &b[192..208]);
    let d = f16(&b[208..210]);
    out.extend((0..QK_K).map(|e| {
        let h = e / 128;
        let (s, k) = ((e / 64) % 2, e % 64);
        let (t, l) = ((e / 32) % 4, e % 32);
        let low = (ql[64 * h + k] >> (4 * s)) & 0x0F;
        let high = (qh[32 * h + l] >> (2 * t)) & 0x03;
        let q = ((low | (high << 4)) as i8) - 32;
        (d * f32::from(scales[e / 16] as i8)) * f32::from(q)
    }));
}
