//! Does a backend's fused attention (`burn::tensor::module::attention`, LibTorch's
//! `scaled_dot_product_attention` on `tch`) mean what zoo's hand-written attention means?
//!
//! zoo's decoder writes attention out (scores, an additive bias, softmax, `· V`), which is
//! correct on every backend. Before a fused kernel can replace it, three conventions must
//! agree: Burn documents a boolean mask's `true` as "masked" (torch's SDPA reads `true` as
//! "attend"); `is_causal` with fewer queries than keys (a cached decode step) must align the
//! queries with the *last* keys; and a fully masked row must stay finite. Each case below
//! compares the fused call with the decomposed formula on the same inputs; the last calls
//! [`zoo_core::attention::attention`], which fixes the mask convention (the tiny decoder's
//! sampling and scoring use it).

use serde::Serialize;
use zoo_core::burn::prelude::*;
use zoo_core::burn::tensor::activation::softmax;
use zoo_core::burn::tensor::module::attention;
use zoo_core::burn::tensor::ops::AttentionModuleOptions;
use zoo_core::burn::tensor::{Distribution, TensorData};

/// One case's result.
#[derive(Debug, Clone, Serialize)]
pub struct AttentionCase {
    /// What the case exercises.
    pub case: &'static str,
    /// Largest `|fused − decomposed|`.
    pub max_abs_diff: f32,
    /// Whether the fused output is finite everywhere.
    pub finite: bool,
    /// Both hold: agreement within 1e-4 and finite values.
    pub ok: bool,
}

/// Runs the cases on `device` (no autodiff needed).
pub fn check(device: &Device) -> Vec<AttentionCase> {
    let device = device.clone().inner();
    let (b, h, d) = (2, 2, 8);
    let random =
        |s: usize| Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), &device);
    let mut out = Vec::new();
    // How the fused call is made: Burn's mask, `is_causal`, or zoo's wrapper
    // (`zoo_core::attention`, which inverts the mask for LibTorch).
    #[derive(Clone, Copy, PartialEq)]
    enum Call {
        Mask,
        Causal,
        Zoo,
    }
    let mut run = |case: &'static str,
                   q_len: usize,
                   k_len: usize,
                   blocked: &dyn Fn(usize, usize, usize) -> bool,
                   call: Call| {
        let (q, k, v) = (random(q_len), random(k_len), random(k_len));
        // `blocked(row, query, key)`: the decomposed reference uses an additive -inf-like bias.
        let mut bias = vec![0f32; b * q_len * k_len];
        let mut mask = vec![false; b * q_len * k_len];
        for r in 0..b {
            for i in 0..q_len {
                for j in 0..k_len {
                    if blocked(r, i, j) {
                        bias[(r * q_len + i) * k_len + j] = -1e9;
                        mask[(r * q_len + i) * k_len + j] = true;
                    }
                }
            }
        }
        let bias = Tensor::<4>::from_data(TensorData::new(bias, [b, 1, q_len, k_len]), &device);
        let scores = q
            .clone()
            .matmul(k.clone().swap_dims(2, 3))
            .div_scalar((d as f64).sqrt())
            .add(bias);
        let want = softmax(scores, 3).matmul(v.clone());
        let mask =
            Tensor::<4, Bool>::from_data(TensorData::new(mask, [b, 1, q_len, k_len]), &device);
        let got = match call {
            Call::Zoo => zoo_core::attention::attention(q, k, v, mask),
            Call::Mask | Call::Causal => {
                let causal = call == Call::Causal;
                attention(
                    q,
                    k,
                    v,
                    (!causal).then(|| mask.expand([b, h, q_len, k_len])),
                    None,
                    AttentionModuleOptions {
                        scale: None,
                        softcap: None,
                        is_causal: causal,
                    },
                )
            }
        };
        let got = got
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default();
        let want = want
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default();
        let finite = got.iter().all(|x| x.is_finite());
        let max_abs_diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(
                0f32,
                |m, x| if x.is_nan() { f32::INFINITY } else { m.max(x) },
            );
        out.push(AttentionCase {
            case,
            max_abs_diff,
            finite,
            ok: finite && max_abs_diff <= 1e-4 && got.len() == want.len(),
        });
    };
    // Causal and left padding as zoo lays a batch out: row 1's first two keys are padding.
    let padded = |r: usize, i: usize, j: usize| j > i || (r == 1 && j < 2 && i >= 2);
    run(
        "bool mask: causal + left padding",
        5,
        5,
        &padded,
        Call::Mask,
    );
    run(
        "is_causal, as many queries as keys",
        5,
        5,
        &|_, i, j| j > i,
        Call::Causal,
    );
    // A decode step: 2 new queries after 4 cached keys attend to keys ≤ 4 + i.
    run(
        "is_causal, 2 queries after 4 cached keys",
        2,
        6,
        &|_, i, j| j > 4 + i,
        Call::Causal,
    );
    run(
        "zoo_core::attention: causal + left padding",
        5,
        5,
        &padded,
        Call::Zoo,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flex_fused_attention_means_what_the_decoder_means() {
        let cases = check(&Device::flex());
        assert_eq!(cases.len(), 4);
        for case in &cases {
            assert!(case.ok, "{case:?}");
        }
    }
}
