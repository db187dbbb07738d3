"""PyTorch reference for `zoo bench` on zoo's tiny decoder: one RL training step on the CPU,
stage by stage, with a hand-written PyTorch copy of the model.

The model (zoo `models/src/tiny_decoder.rs`): a Llama-style decoder, vocab 23, hidden 128,
3 layers, 4 heads (head_dim 32), SwiGLU FFN 384, RMSNorm (eps 1e-5) before attention, before
the MLP and at the end, Hugging Face Llama rotary embeddings (rotate the two halves, theta 1e4),
causal multi-head attention (no GQA), no biases, an untied lm_head: 645,760 parameters. Weights
are drawn as zoo draws them (normal 0.02, residual outputs 0.02/sqrt(2*layers), norms 1; the
values do not change the speed). The code is written for CPU speed: fused QKV and gate/up
projections, `F.rms_norm`, `F.scaled_dot_product_attention`, precomputed rotary tables, a
preallocated KV cache, `torch.inference_mode` for rollout and scoring, fused AdamW. The math
is zoo's; `--check` compares it with transformers' `LlamaForCausalLM` given the same weights.

Measured (one untimed warm-up round, then the median of `--rounds` rounds), on P*G rows (P
random prompts of T ids, each repeated G times) and responses of exactly L tokens:
- rollout: sampling L tokens per row at temperature 1 with the KV cache (no stop token; the
  sampled token's log-prob is kept, as zoo's sampler does);
- scoring: no-grad log-probs of the response tokens, in micro-batches;
- update: per micro-batch a forward with grad and the backward of zoo's GRPO loss (PPO clip),
  the token-mean over all rows' response tokens; then clip_grad_norm_(1.0) and one AdamW step
  (lr 1e-6, betas (0.9, 0.999), eps 1e-8, no weight decay).
FLOPs are zoo's formula (`common.flops_per_token`); `peak_fraction` is the stage's TFLOP/s
over this process's own 1024^3 f32 matmul rate.

Run (with the torch that zoo's tch backend uses):
    PY=/root/.cache/zoo/libtorch-2.9.0/bin/python
    $PY bench/torch_tiny.py --check                         # equals transformers' Llama?
    $PY bench/torch_tiny.py                                 # P 64, G 4, T 9, L 33, 3 rounds
    $PY bench/torch_tiny.py --prompts 16 --rounds 1 --threads 1 --json
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------


@dataclass
class TinyConfig:
    """zoo's `TinyDecoderConfig::default()`."""

    vocab_size: int = 23
    hidden_size: int = 128
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    intermediate_size: int = 384
    rms_norm_eps: float = 1e-5
    rope_theta: float = 1e4
    max_position_embeddings: int = 512

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


class KVCache:
    """Preallocated keys and values of every layer, `[rows, heads, max_len, head_dim]`, written
    in place; `length` columns are filled (the same for every row: prompts have equal length)."""

    def __init__(self, cfg: TinyConfig, rows: int, max_len: int):
        shape = (rows, cfg.num_attention_heads, max_len, cfg.head_dim)
        self.k = [torch.empty(shape) for _ in range(cfg.num_hidden_layers)]
        self.v = [torch.empty(shape) for _ in range(cfg.num_hidden_layers)]
        self.length = 0


class Layer(nn.Module):
    """One decoder layer: x + attn(norm(x)), then x + mlp(norm(x)). Q, K, V are one [d, 3d]
    product and gate, up one [d, 2f] product (the same math as separate matrices)."""

    def __init__(self, cfg: TinyConfig):
        super().__init__()
        d, f = cfg.hidden_size, cfg.intermediate_size
        self.heads, self.head_dim, self.eps = cfg.num_attention_heads, cfg.head_dim, cfg.rms_norm_eps
        self.input_layernorm = nn.Parameter(torch.ones(d))
        self.qkv_proj = nn.Linear(d, 3 * d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        self.post_attention_layernorm = nn.Parameter(torch.ones(d))
        self.gate_up_proj = nn.Linear(d, 2 * f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, x, cos, sin, index, cache, expand, attn_mask, is_causal):
        b, s, d = x.shape
        h = F.rms_norm(x, (d,), self.input_layernorm, self.eps)
        # [b, s, 3d] -> 3 x [b, heads, s, head_dim]
        q, k, v = self.qkv_proj(h).view(b, s, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if cache is not None:
            start = cache.length
            if expand is not None:
                # A prefill of distinct prompts: each row of the cache gets its prompt's keys;
                # the prefill itself attends within the distinct prompts.
                cache.k[index][:, :, start:start + s] = k.index_select(0, expand)
                cache.v[index][:, :, start:start + s] = v.index_select(0, expand)
            else:
                cache.k[index][:, :, start:start + s] = k
                cache.v[index][:, :, start:start + s] = v
                k = cache.k[index][:, :, :start + s]
                v = cache.v[index][:, :, :start + s]
        if s == 1 and attn_mask is None:
            # A decode step (one query attends every cached column): two batched matmuls beat
            # the CPU flash kernel of `scaled_dot_product_attention` at one query (about 1.5x
            # measured at 256 rows x 4 heads x 10-42 columns, torch 2.9, 1 thread); same math:
            # softmax(q k^T / sqrt(head_dim)) v.
            scores = torch.matmul(q, k.transpose(-1, -2)) * self.head_dim ** -0.5
            a = torch.matmul(torch.softmax(scores, dim=-1), v)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
        x = x + self.o_proj(a.transpose(1, 2).reshape(b, s, d))
        h = F.rms_norm(x, (d,), self.post_attention_layernorm, self.eps)
        gate, up = self.gate_up_proj(h).chunk(2, dim=-1)
        return x + self.down_proj(F.silu(gate) * up)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding, Hugging Face Llama convention (rotate the two halves), as zoo's
    `rotate`: `[x1 cos - x2 sin, x2 cos + x1 sin]`; `x` `[b, h, s, hd]`, `cos`/`sin` `[s, hd/2]`."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class TinyDecoder(nn.Module):
    """zoo's `TinyDecoder` in PyTorch (weights `[out, in]`, PyTorch's layout)."""

    def __init__(self, cfg: TinyConfig, max_len: int | None = None):
        super().__init__()
        self.cfg = cfg
        d, v = cfg.hidden_size, cfg.vocab_size
        self.embed_tokens = nn.Parameter(torch.empty(v, d))
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = nn.Parameter(torch.ones(d))
        self.lm_head = nn.Linear(d, v, bias=False)
        # Rotary tables as zoo builds them: inverse frequencies in f64 cast to f32, angles =
        # position (f32) x inverse frequency (f32), then cos and sin in f32.
        half = cfg.head_dim // 2
        n = max(cfg.max_position_embeddings, max_len or 0)
        inv_freq = (1.0 / cfg.rope_theta ** (torch.arange(half, dtype=torch.float64) * 2 / (2 * half))).float()
        angles = torch.arange(n, dtype=torch.float32)[:, None] * inv_freq[None, :]
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def init_weights(self, generator: torch.Generator) -> "TinyDecoder":
        """zoo's `TinyDecoderConfig::init`: normal(0, 0.02), o_proj and down_proj normal(0,
        0.02/sqrt(2*layers)), norms 1."""
        std = 0.02
        residual = std / math.sqrt(2 * self.cfg.num_hidden_layers)
        with torch.no_grad():
            for layer in self.layers:
                layer.qkv_proj.weight.normal_(0, std, generator=generator)
                layer.o_proj.weight.normal_(0, residual, generator=generator)
                layer.gate_up_proj.weight.normal_(0, std, generator=generator)
                layer.down_proj.weight.normal_(0, residual, generator=generator)
            self.lm_head.weight.normal_(0, std, generator=generator)
            self.embed_tokens.normal_(0, std, generator=generator)
        return self

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None,
                expand: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None,
                is_causal: bool = True, keep_last: int | None = None) -> torch.Tensor:
        """Logits `[b, s or keep_last, vocab]` of `tokens` `[b, s]`, which sit at positions
        `cache.length ..` (0 without a cache); every row has the same positions (no padding).

        - `cache`: keys/values are written at `cache.length`, attention reads all filled
          columns; `cache.length` grows by `s`.
        - `expand` `[rows]` (with a cache): `tokens` are distinct prompts; cache row i gets the
          keys of prompt `expand[i]` (zoo: "each distinct prompt prefilled once").
        - `attn_mask` `[s, length + s]` bool (True: may attend), or `is_causal`: causal within
          `tokens` (right only when nothing is cached: a prefill or a forward without cache),
          or neither: every query attends every cached column (a one-token decode step).
        - `keep_last`: the head runs on the last `keep_last` positions only (same math)."""
        b, s = tokens.shape
        start = 0 if cache is None else cache.length
        cos, sin = self.cos[start:start + s], self.sin[start:start + s]
        x = F.embedding(tokens, self.embed_tokens)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, i, cache, expand, attn_mask, is_causal)
        if cache is not None:
            cache.length += s
        if keep_last is not None:
            x = x[:, s - keep_last:]
        return self.lm_head(F.rms_norm(x, (x.shape[-1],), self.norm, self.cfg.rms_norm_eps))


# ----------------------------------------------------------------------------------------------
# The stages
# ----------------------------------------------------------------------------------------------


def unique_prompts(prompts: torch.Tensor, group_size: int, rows: range | None = None):
    """The distinct prompts `[u, T]` of `rows` of `prompts` `[P*G, T]` and, per row, the index
    of its prompt among them `[len(rows)]` (groups are adjacent: row r's prompt is r // G)."""
    rows = rows if rows is not None else range(prompts.shape[0])
    owner = torch.arange(rows.start, rows.stop) // group_size
    first, last = owner[0].item(), owner[-1].item()
    return prompts[torch.arange(first, last + 1) * group_size], owner - first


def sample_token(logits: torch.Tensor, temperature: float, generator: torch.Generator):
    """A token per row from softmax(logits / temperature), and its log-prob. Categorical
    sampling by the exponential race (argmax p_i / E_i, E_i ~ Exp(1)), which draws exactly
    from p and avoids `torch.multinomial`'s overhead."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    race = torch.empty_like(logp).exponential_(generator=generator)
    token = (logp.exp() / race).argmax(dim=-1)
    return token, logp.gather(-1, token[:, None])[:, 0]


def rollout(model: TinyDecoder, prompts: torch.Tensor, group_size: int, length: int,
            generator: torch.Generator, temperature: float = 1.0):
    """Measures sampling: `length` tokens for every row of `prompts` `[P*G, T]` with the KV
    cache. Each distinct prompt is prefilled once and its keys/values written to its G rows of
    the cache (zoo's LLM sampler does this; zoo's TinyPolicy::sample prefills all P*G rows,
    which costs T/(T+L) more prefill work, little either way), then L-1 one-token decode steps
    (the L-th token needs no forward). No stop token: every response has exactly L tokens.
    Returns `(responses [P*G, L], sampled log-probs [P*G, L])`."""
    n, t = prompts.shape
    # Outside inference mode: the update later reads them in autograd.
    tokens = torch.empty(n, length, dtype=torch.long)
    logps = torch.empty(n, length)
    with torch.inference_mode():
        unique, expand = unique_prompts(prompts, group_size)
        cache = KVCache(model.cfg, n, t + length)
        logits = model(unique, cache=cache, expand=expand, keep_last=1)[:, -1].index_select(0, expand)
        for step in range(length):
            tokens[:, step], logps[:, step] = sample_token(logits, temperature, generator)
            if step + 1 < length:
                # One query per row attends every cached column: no mask needed.
                logits = model(tokens[:, step:step + 1], cache=cache, is_causal=False)[:, -1]
    return tokens, logps


def response_logprobs(logits: torch.Tensor, responses: torch.Tensor, temperature: float = 1.0):
    """`log softmax(logits / temperature)` in f32 at the response tokens: `[b, L]`, and the
    `[b, L, vocab]` log-probs themselves."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return logp.gather(-1, responses[..., None])[..., 0], logp


def scoring(model: TinyDecoder, prompts: torch.Tensor, responses: torch.Tensor, group_size: int,
            batches: list[range]) -> torch.Tensor:
    """Measures the no-grad scoring pass (zoo's `score_rows`, the `logp_old` of the update):
    per micro-batch, each distinct prompt runs once into a KV cache that its rows then read,
    as zoo's `shared_context_logits` does; the responses but their last token follow at
    positions T.. with a causal mask over cache + new columns. Returns `[P*G, L]` log-probs."""
    n, t = prompts.shape
    length = responses.shape[1]
    out = torch.empty(n, length)
    with torch.inference_mode():
        # Query i (position t + i) may attend keys 0 .. t + i.
        keys = torch.arange(t + length - 1)
        mask = keys[None, :] <= (t + torch.arange(length - 1))[:, None]
        for rows in batches:
            unique, expand = unique_prompts(prompts, group_size, rows)
            cache = KVCache(model.cfg, len(rows), t + length - 1)
            first = model(unique, cache=cache, expand=expand, keep_last=1).index_select(0, expand)
            resp = responses[rows.start:rows.stop]
            if length > 1:
                rest = model(resp[:, :-1], cache=cache, attn_mask=mask, is_causal=False)
                first = torch.cat((first, rest), dim=1)
            out[rows.start:rows.stop] = response_logprobs(first, resp)[0]
    return out


def update(model: TinyDecoder, optimizer: torch.optim.Optimizer, prompts: torch.Tensor,
           responses: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor,
           batches: list[range]) -> float:
    """Measures the update: per micro-batch a forward with grad over prompt + response (but its
    last token, which predicts nothing), the head on the L response positions only, log-probs
    in f32, zoo's PPO-clip loss summed and divided by the response tokens of all rows, backward
    (gradients accumulate); the policy entropy of each token is computed without grad, as zoo
    and TRL do for their metrics. Then clip_grad_norm_(1.0) and one AdamW step."""
    length = responses.shape[1]
    total_tokens = responses.numel()
    loss_sum = 0.0
    for rows in batches:
        seq = torch.cat((prompts[rows.start:rows.stop], responses[rows.start:rows.stop, :-1]), dim=1)
        logits = model(seq, is_causal=True, keep_last=length)
        logp, all_logp = response_logprobs(logits, responses[rows.start:rows.stop])
        with torch.no_grad():
            _entropy = -(all_logp.exp() * all_logp).sum(-1).sum()
        loss = common.ppo_clip_loss(logp, old_logp[rows.start:rows.stop], adv[rows.start:rows.stop])
        loss = loss.sum() / total_tokens
        loss.backward()
        loss_sum += loss.item()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_sum


# ----------------------------------------------------------------------------------------------
# --check: the same math as transformers' LlamaForCausalLM
# ----------------------------------------------------------------------------------------------


def hf_twin(model: TinyDecoder):
    """transformers' `LlamaForCausalLM` (eager attention) of the same config and weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    c = model.cfg
    config = LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_attention_heads, rms_norm_eps=c.rms_norm_eps,
        rope_theta=c.rope_theta, max_position_embeddings=c.max_position_embeddings,
        tie_word_embeddings=False, attention_bias=False, mlp_bias=False, hidden_act="silu",
    )
    hf = LlamaForCausalLM._from_config(config, attn_implementation="eager").eval()
    d, f = c.hidden_size, c.intermediate_size
    with torch.no_grad():
        hf.model.embed_tokens.weight.copy_(model.embed_tokens)
        hf.model.norm.weight.copy_(model.norm)
        hf.lm_head.weight.copy_(model.lm_head.weight)
        for ours, theirs in zip(model.layers, hf.model.layers):
            q, k, v = ours.qkv_proj.weight.split(d, dim=0)
            theirs.self_attn.q_proj.weight.copy_(q)
            theirs.self_attn.k_proj.weight.copy_(k)
            theirs.self_attn.v_proj.weight.copy_(v)
            theirs.self_attn.o_proj.weight.copy_(ours.o_proj.weight)
            gate, up = ours.gate_up_proj.weight.split(f, dim=0)
            theirs.mlp.gate_proj.weight.copy_(gate)
            theirs.mlp.up_proj.weight.copy_(up)
            theirs.mlp.down_proj.weight.copy_(ours.down_proj.weight)
            theirs.input_layernorm.weight.copy_(ours.input_layernorm)
            theirs.post_attention_layernorm.weight.copy_(ours.post_attention_layernorm)
    return hf


def check(seed: int) -> bool:
    """Compares every path of this model with transformers' LlamaForCausalLM on the same
    weights (norm weights perturbed so they matter): the full forward, the KV-cache rollout
    path (prefill of distinct prompts + one-token steps, teacher-forced), the shared-prompt
    scoring path and the update's log-probs. Prints max |diff| of each; True if all < 1e-4."""
    cfg = TinyConfig()
    g = torch.Generator().manual_seed(seed)
    model = TinyDecoder(cfg).init_weights(g)
    with torch.no_grad():  # zoo initialises norms at 1; random norms test that they are read
        for layer in model.layers:
            layer.input_layernorm.uniform_(0.5, 1.5, generator=g)
            layer.post_attention_layernorm.uniform_(0.5, 1.5, generator=g)
        model.norm.uniform_(0.5, 1.5, generator=g)
        # Larger weights than the init's 0.02, so that logits differ between tokens visibly.
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(10)
    hf = hf_twin(model)
    params = sum(p.numel() for p in model.parameters())
    hf_params = sum(p.numel() for p in hf.parameters())
    print(f"parameters: ours {params:,}, transformers {hf_params:,}, zoo 645,760")

    prompts_n, group, t, length = 3, 2, 9, 12
    prompts = common.make_prompts(prompts_n, group, t, cfg.vocab_size, seed)
    responses = torch.randint(0, cfg.vocab_size, (prompts_n * group, length), generator=g)
    seq = torch.cat((prompts, responses), dim=1)  # [6, 21]
    with torch.no_grad():
        ref = hf(input_ids=seq).logits  # [6, 21, vocab]
        ref_logp = torch.log_softmax(ref[:, t - 1:-1].float(), -1).gather(-1, responses[..., None])[..., 0]
    results = {}
    with torch.inference_mode():
        results["full forward logits"] = (model(seq) - ref).abs().max().item()
        # The rollout path, teacher-forced: distinct-prompt prefill, then one token at a time.
        unique, expand = unique_prompts(prompts, group)
        cache = KVCache(cfg, seq.shape[0], seq.shape[1])
        steps = [model(unique, cache=cache, expand=expand).index_select(0, expand)]
        for j in range(length):
            steps.append(model(responses[:, j:j + 1], cache=cache, is_causal=False))
        results["KV-cache prefill + decode logits"] = (torch.cat(steps, 1) - ref).abs().max().item()
        # The scoring path, with micro-batches that split a group (rows 0-2, 3-5).
        batches = [range(0, 3), range(3, 6)]
        ours = scoring(model, prompts, responses, group, batches)
        results["scoring log-probs (shared prompt)"] = (ours - ref_logp).abs().max().item()
    logits = model(torch.cat((prompts, responses[:, :-1]), 1), keep_last=length)
    logp = response_logprobs(logits, responses)[0]
    results["update log-probs (with grad)"] = (logp.detach() - ref_logp).abs().max().item()
    # The sampler's log-probs equal teacher-forced scoring of what it sampled (zoo's own test).
    sampled, sampled_logp = rollout(model, prompts, group, length, torch.Generator().manual_seed(1))
    scored = scoring(model, prompts, sampled, group, batches)
    results["sampled vs scored log-probs"] = (sampled_logp - scored).abs().max().item()
    ok = params == hf_params == 645_760
    for name, diff in results.items():
        good = diff < 1e-4
        ok &= good
        print(f"  {name:<36} max |diff| {diff:.2e}  {'ok' if good else 'DIFFERS'}")
    print(f"logit scale: max |logit| {ref.abs().max().item():.2f}")
    print("check:", "PASS" if ok else "FAIL")
    return ok


# ----------------------------------------------------------------------------------------------
# The benchmark
# ----------------------------------------------------------------------------------------------


def main() -> None:
    args = common.parse_args(
        __doc__,
        dict(prompts=64, group_size=4, prompt_tokens=9, response_len=33, micro_batch_rows=64,
             micro_batch_tokens=0),
        extra=lambda p: p.add_argument("--check", action="store_true",
                                       help="compare with transformers' LlamaForCausalLM and exit"),
    )
    threads = common.set_threads(args.threads)
    if args.check:
        sys.exit(0 if check(args.seed) else 1)
    cfg = TinyConfig()
    t, length = args.prompt_tokens, args.response_len
    model = TinyDecoder(cfg, max_len=t + length).init_weights(torch.Generator().manual_seed(args.seed))
    parameters = sum(p.numel() for p in model.parameters())
    prompts = common.make_prompts(args.prompts, args.group_size, t, cfg.vocab_size, args.seed)
    rows = prompts.shape[0]
    adv = common.advantages(rows)
    batches = common.micro_batches(rows, t + length, args.micro_batch_rows, args.micro_batch_tokens)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=0.0, fused=True)
    sampler = torch.Generator().manual_seed(args.seed + 1)

    def one_round(_: int) -> dict:
        (responses, _logp), rollout_s = common.timed(rollout, model, prompts, args.group_size, length, sampler)
        old, scoring_s = common.timed(scoring, model, prompts, responses, args.group_size, batches)
        _, update_s = common.timed(update, model, optimizer, prompts, responses, old, adv, batches)
        return {"rollout": rollout_s, "scoring": scoring_s, "update": update_s}

    peak = common.matmul_peak_tflops()
    medians = common.run_rounds(one_round, args.rounds)
    embedding = cfg.vocab_size * cfg.hidden_size  # the head is untied

    def per_token(context: int) -> float:
        return common.flops_per_token(parameters, embedding, cfg.num_hidden_layers,
                                      cfg.num_attention_heads, cfg.head_dim, context)

    flops = {stage: common.stage_flops(rows, t, length, passes, per_token)
             for stage, passes in (("rollout", 1), ("scoring", 1), ("update", 3))}
    common.report(args, "tiny", parameters, threads, peak, medians, flops)


if __name__ == "__main__":
    main()
