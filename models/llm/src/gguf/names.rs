//! From llama.cpp's conventions back to Hugging Face's: tensor names, the row permutation of
//! Llama's `q_proj`/`k_proj`, the architectures mapped, and `llama3` RoPE scaling recovered from
//! the `rope_freqs` tensor.

use serde_json::{Value, json};

/// Undoes `convert_hf_to_gguf.py`'s `LlamaModel.permute` on the rows of a row-major
/// `[rows, cols]` matrix (`cols == 1` for a bias). The converter did
/// `w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols)`, i.e. stored
/// HF row `h·hd + j·hd/2 + i` at row `h·hd + 2i + j` (`hd = rows / n_head`, `j ∈ {0, 1}`).
/// Requires `rows % (2·n_head) == 0`.
pub(super) fn unpermute_rows(p: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
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
pub(super) enum HfName {
    /// A model weight, by its HF name.
    Weight(String),
    /// Not a model weight (`rope_freqs.weight`: llama3 RoPE factors, carried by the config).
    Skip,
}

/// The HF name of llama.cpp tensor `name`; `None` when the name is not one of the Llama/Qwen2/Qwen3
/// decoder's.
pub(super) fn hf_name(name: &str) -> Option<HfName> {
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
pub(super) const ARCHITECTURES: &[(&str, &str, &str)] = &[
    ("llama", "LlamaForCausalLM", "llama"),
    ("qwen2", "Qwen2ForCausalLM", "qwen2"),
    ("qwen3", "Qwen3ForCausalLM", "qwen3"),
];

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
pub(super) fn llama3_scaling(
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
pub(super) fn llama3_factors(
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
