//! Scaled dot-product attention through the backend's fused kernel, with one mask convention.
//!
//! Burn documents a boolean attention mask's `true` as "masked", and flex and Burn's own
//! fallback read it so; burn-tch 0.22.1 hands the mask to LibTorch's
//! `scaled_dot_product_attention` unchanged, where `true` means "may attend"
//! (`burn-tch/src/ops/module.rs`, `fn attention`). [`attention`] takes the mask in Burn's sense
//! and inverts it for LibTorch, so every backend computes the same thing; `zoo bench
//! --check-attention` and the LibTorch stage's tests compare it with the written-out formula.
//!
//! On an autodiff device Burn always runs its decomposed fallback (there is no fused backward),
//! so callers use this on no-grad passes: sampling and scoring.

use burn::tensor::module;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Int, Tensor};

/// Whether `device` is LibTorch's, without autodiff (the only backend whose fused attention
/// reads a boolean mask the other way round).
fn is_bare_libtorch(device: &Device) -> bool {
    #[cfg(feature = "tch")]
    {
        matches!(
            device.as_dispatch(),
            burn_dispatch::DispatchDevice::LibTorch(_)
        )
    }
    #[cfg(not(feature = "tch"))]
    {
        let _ = device;
        false
    }
}

/// `softmax(q kᵀ / sqrt(head_dim), masked where blocked) · v`.
///
/// Shapes: `q` `[b, heads, s, head_dim]`, `k` and `v` `[b, heads, s_k, head_dim]`, `blocked`
/// `[b, 1 or heads, s, s_k]`, true where a query may not attend to a key. Every query must be
/// allowed at least one key (a fully blocked row is NaN on LibTorch). Returns
/// `[b, heads, s, head_dim]`.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, blocked: Tensor<4, Bool>) -> Tensor<4> {
    let [b, heads, s, _] = q.dims();
    let s_k = k.dims()[2];
    let blocked = blocked.expand([b, heads, s, s_k]);
    let mask = if is_bare_libtorch(&q.device()) {
        blocked.bool_not()
    } else {
        blocked
    };
    module::attention(
        q,
        k,
        v,
        Some(mask),
        None,
        AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: false,
        },
    )
}

/// Keys and values of every layer, preallocated to a capacity and written in place:
/// `[b, kv_heads, capacity, head_dim]` per layer (made at the first write, in the keys' dtype),
/// the first `len` columns filled. A decoding step writes one column instead of copying the
/// whole cache into a longer one.
#[derive(Debug)]
pub struct KvCache {
    /// `None` only while a layer is being written (one owner: updated in place, not copied).
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// An empty cache for up to `capacity` columns.
    pub fn new(capacity: usize) -> Self {
        Self {
            layers: Vec::new(),
            len: 0,
            capacity,
        }
    }

    /// Columns filled so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no column is filled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps the rows `index` `[m]`, in that order (an index may repeat: a prompt's cache
    /// expanded to its group).
    pub fn select_rows(&mut self, index: Tensor<1, Int>) {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.clone().select(0, index.clone());
            *v = v.clone().select(0, index.clone());
        }
    }

    /// Writes layer `layer`'s new keys and values `[b, kv_heads, s, head_dim]` at columns
    /// `len..len + s` and returns every filled column `[b, kv_heads, len + s, head_dim]`.
    /// Layers are written in order; after the last, [`KvCache::advance`] by `s`.
    pub fn append(&mut self, layer: usize, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [b, heads, s, head_dim] = k.dims();
        let (start, end) = (self.len, self.len + s);
        assert!(
            end <= self.capacity,
            "KV cache capacity {} exceeded",
            self.capacity
        );
        if layer == self.layers.len() {
            let zeros = || {
                Tensor::<4>::zeros([b, heads, self.capacity, head_dim], &k.device()).cast(k.dtype())
            };
            self.layers.push(Some((zeros(), zeros())));
        }
        let (kc, vc) = self.layers[layer]
            .take()
            .expect("layers are written in order");
        let kc = kc.slice_assign([0..b, 0..heads, start..end, 0..head_dim], k);
        let vc = vc.slice_assign([0..b, 0..heads, start..end, 0..head_dim], v);
        let used = (
            kc.clone().slice([0..b, 0..heads, 0..end, 0..head_dim]),
            vc.clone().slice([0..b, 0..heads, 0..end, 0..head_dim]),
        );
        self.layers[layer] = Some((kc, vc));
        used
    }

    /// Marks `s` more columns filled (after every layer's [`KvCache::append`]).
    pub fn advance(&mut self, s: usize) {
        self.len += s;
    }
}
