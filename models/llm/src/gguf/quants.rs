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
pub(super) const GGML_BF16: u32 = 30;

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
/// Block layouts (ggml `ggml-common.h`, `dequantize_row_*` in `ggml-quants.c`), block of 32:
/// - `Q8_0`: f16 `d`, 32 × i8 `q`: `x = d·q`.
/// - `Q4_0`: f16 `d`, 16 bytes: byte `j` holds element `j` (low nibble) and `j + 16` (high
///   nibble): `x = d·(q − 8)`.
/// - `Q4_1`: f16 `d`, f16 `m`, 16 bytes as `Q4_0`: `x = d·q + m`.
pub(super) fn dequantize(ty: u32, bytes: &[u8], n: usize) -> Option<Vec<f32>> {
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
