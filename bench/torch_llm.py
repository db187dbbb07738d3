"""PyTorch reference for `zoo bench --model SHAPE`: one RL training step of a real LLM's shape
(random weights, f32, CPU) through Hugging Face `transformers`, run the way a TRL user runs it.

The model: `AutoModelForCausalLM.from_config` (LlamaForCausalLM, Qwen2ForCausalLM, ...) with
transformers' default attention (`sdpa`) and random weights (transformers' init, normal 0.02;
speed does not depend on the values). Shapes are zoo's table (`models/llm/src/shapes.rs`):
`smollm2-135m` (default), `qwen2.5-0.5b`, `qwen2.5-1.5b`, `qwen3-0.6b`, `llama3.2-1b`, or a path
to a `config.json` (or a folder holding one). The stop token is the last id, as in zoo's
stand-in tokenizer; prompts never contain it.

Measured (one untimed warm-up round, then the median of `--rounds` rounds), on P*G rows (P
random prompts of T ids, each repeated G times, a group's rows adjacent):
- rollout: `model.generate(input_ids, attention_mask, do_sample=True, temperature=1.0,
  top_k=0, top_p=1.0, min_new_tokens=L, max_new_tokens=L)` over all rows at once, with
  transformers' KV cache (`DynamicCache`): every response has exactly L tokens;
- scoring: TRL's `_get_per_token_logps` under `torch.no_grad`: per micro-batch a forward with
  `logits_to_keep=L+1`, the last logit dropped, log-probs of the response tokens in f32 by
  TRL's `selective_log_softmax` (gather minus a per-row logsumexp: log_softmax + gather);
- update: per micro-batch the same forward with grad, TRL's no-grad entropy of the logits (a
  metric TRL and zoo both compute), zoo's GRPO loss (PPO clip 0.2 with dual clip 3; see
  `common.ppo_clip_loss`) summed and divided by all rows' response tokens, backward; then
  `clip_grad_norm_(1.0)` and one `torch.optim.AdamW` step (lr 1e-6, betas (0.9, 0.999), eps
  1e-8, no weight decay, `fused=True`: the HF Trainer's default optimizer for torch >= 2.8).
Micro-batches are zoo's: consecutive rows, at most `--micro-batch-rows` rows (default all) and
`--micro-batch-tokens` context + response tokens (default 4096; 0: no limit).
FLOPs are zoo's formula (`common.flops_per_token`); `peak_fraction` is the stage's TFLOP/s
over this process's own 1024^3 f32 matmul rate.

Run (with the torch that zoo's tch backend uses):
    PY=/root/.cache/zoo/libtorch-2.9.0/bin/python
    $PY bench/torch_llm.py                                   # smollm2-135m, P 8, G 4, T 64, L 256
    $PY bench/torch_llm.py --model qwen2.5-0.5b --threads 16 --json
    $PY bench/torch_llm.py --prompts 1 --group-size 2 --prompt-tokens 16 --response-len 8 --rounds 1
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def _qwen2(hidden: int, inter: int, layers: int, heads: int, kv: int) -> dict:
    return {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
        "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "max_position_embeddings": 32768, "vocab_size": 151936,
        "tie_word_embeddings": True, "bos_token_id": 151643, "eos_token_id": 151645,
    }


# zoo's `shapes::presets()`, copied key for key (but `torch_dtype`: everything here is f32).
PRESETS = {
    "smollm2-135m": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
        "num_attention_heads": 9, "num_key_value_heads": 3, "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0, "max_position_embeddings": 8192, "vocab_size": 49152,
        "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2,
    },
    "qwen2.5-0.5b": _qwen2(896, 4864, 24, 14, 2),
    "qwen2.5-1.5b": _qwen2(1536, 8960, 28, 12, 2),
    "qwen3-0.6b": {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_act": "silu",
        "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
        "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 40960,
        "vocab_size": 151936, "tie_word_embeddings": True, "attention_bias": False,
        "bos_token_id": 151643, "eos_token_id": 151645,
    },
    "llama3.2-1b": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
        "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 131072,
        "vocab_size": 128256, "tie_word_embeddings": True,
        "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        "bos_token_id": 128000, "eos_token_id": 128009,
    },
}

# zoo's parameter counts of the presets (`presets_have_their_published_parameter_counts`).
ZOO_PARAMETERS = {"smollm2-135m": 134_515_008, "qwen2.5-0.5b": 494_032_768,
                  "qwen2.5-1.5b": 1_543_714_304, "qwen3-0.6b": 596_049_920,
                  "llama3.2-1b": 1_235_814_400}


def load_config(shape: str):
    """The transformers config of a preset name or of a `config.json` (file or folder)."""
    from transformers import AutoConfig

    if shape in PRESETS:
        raw = dict(PRESETS[shape])
    else:
        path = os.path.join(shape, "config.json") if os.path.isdir(shape) else shape
        if not os.path.isfile(path):
            sys.exit(f"`{shape}` is neither a known shape ({', '.join(PRESETS)}) nor a config.json")
        with open(path) as f:
            raw = json.load(f)
    for key in ("torch_dtype", "dtype", "quantization_config"):
        raw.pop(key, None)
    return AutoConfig.for_model(raw.pop("model_type"), **raw)


# ----------------------------------------------------------------------------------------------
# TRL's pieces
# ----------------------------------------------------------------------------------------------


def selective_log_softmax(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """TRL's `selective_log_softmax` for f32 logits: `log_softmax(logits).gather(index)`
    computed as the gathered logit minus each row's logsumexp (a loop over rows keeps the peak
    memory at one row's `[L, vocab]`)."""
    selected = logits.gather(-1, index[..., None])[..., 0]
    logsumexp = torch.stack([torch.logsumexp(row, dim=-1) for row in logits])
    return selected - logsumexp


def entropy_from_logits(logits: torch.Tensor, chunk: int = 128) -> torch.Tensor:
    """TRL's `entropy_from_logits`: the entropy of each position, in chunks of positions."""
    flat = logits.reshape(-1, logits.shape[-1])
    parts = []
    for c in flat.split(chunk, dim=0):
        logp = F.log_softmax(c, dim=-1)
        parts.append(-(logp.exp() * logp).sum(-1))
    return torch.cat(parts).reshape(logits.shape[:-1])


def per_token_logps(model, input_ids: torch.Tensor, logits_to_keep: int,
                    temperature: float = 1.0):
    """TRL's `_get_per_token_logps` for one micro-batch: the forward keeps `logits_to_keep + 1`
    positions (the last predicts nothing and is dropped), logits / temperature, log-probs of the
    last `logits_to_keep` ids. Returns `(logps [b, L], logits [b, L, vocab])`."""
    logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                   logits_to_keep=logits_to_keep + 1, use_cache=False).logits
    logits = logits[:, :-1, :][:, -logits_to_keep:] / temperature
    return selective_log_softmax(logits, input_ids[:, -logits_to_keep:]), logits


# ----------------------------------------------------------------------------------------------
# The stages
# ----------------------------------------------------------------------------------------------


def rollout(model, prompts: torch.Tensor, generation_config) -> torch.Tensor:
    """Measures sampling: `model.generate` on all rows at once (KV cache, temperature 1, no
    top-k / top-p, exactly L new tokens). Returns `[P*G, T+L]` (prompt + response)."""
    model.eval()
    sequences = model.generate(prompts, attention_mask=torch.ones_like(prompts),
                               generation_config=generation_config)
    expected = prompts.shape[1] + generation_config.max_new_tokens
    assert sequences.shape == (prompts.shape[0], expected), sequences.shape
    return sequences


def scoring(model, sequences: torch.Tensor, length: int, batches: list[range]) -> torch.Tensor:
    """Measures the no-grad scoring pass (`logp_old`): TRL's `_get_per_token_logps` per
    micro-batch. Returns `[P*G, L]`."""
    model.eval()
    out = torch.empty(sequences.shape[0], length)
    with torch.no_grad():
        for rows in batches:
            out[rows.start:rows.stop] = per_token_logps(model, sequences[rows.start:rows.stop], length)[0]
    return out


def update(model, optimizer, sequences: torch.Tensor, length: int, old_logp: torch.Tensor,
           adv: torch.Tensor, batches: list[range]) -> float:
    """Measures the update: per micro-batch TRL's forward with grad, the no-grad entropy, the
    PPO-clip loss summed over the micro-batch's response tokens and divided by all rows'
    response tokens (the token-mean of the mini-batch), backward (gradients accumulate); then
    clip_grad_norm_(1.0) and one AdamW step."""
    model.train()
    total_tokens = sequences.shape[0] * length
    loss_sum = 0.0
    for rows in batches:
        logp, logits = per_token_logps(model, sequences[rows.start:rows.stop], length)
        with torch.no_grad():
            _entropy = entropy_from_logits(logits)
        loss = common.ppo_clip_loss(logp, old_logp[rows.start:rows.stop], adv[rows.start:rows.stop])
        loss = loss.sum() / total_tokens
        loss.backward()
        loss_sum += loss.item()
        del logits, logp, loss
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_sum


# ----------------------------------------------------------------------------------------------
# The benchmark
# ----------------------------------------------------------------------------------------------


def main() -> None:
    args = common.parse_args(
        __doc__,
        dict(prompts=8, group_size=4, prompt_tokens=64, response_len=256, micro_batch_rows=None,
             micro_batch_tokens=4096),
        extra=lambda p: p.add_argument(
            "--model", default="smollm2-135m",
            help=f"a shape ({', '.join(PRESETS)}) or a config.json [default: %(default)s]"),
    )
    threads = common.set_threads(args.threads)
    import transformers
    from transformers import AutoModelForCausalLM, GenerationConfig

    transformers.logging.set_verbosity_error()
    config = load_config(args.model)
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.float32)
    parameters = sum(p.numel() for p in model.parameters())  # a tied head counts once
    if args.model in ZOO_PARAMETERS and parameters != ZOO_PARAMETERS[args.model]:
        sys.exit(f"{args.model}: {parameters:,} parameters, zoo counts {ZOO_PARAMETERS[args.model]:,}")

    vocab, t, length = config.vocab_size, args.prompt_tokens, args.response_len
    stop = vocab - 1  # zoo's stand-in tokenizer: the last id stops (and pads)
    generation_config = GenerationConfig(
        do_sample=True, temperature=1.0, top_k=0, top_p=1.0, min_new_tokens=length,
        max_new_tokens=length, eos_token_id=stop, pad_token_id=stop, use_cache=True)
    prompts = common.make_prompts(args.prompts, args.group_size, t, vocab, args.seed)
    rows = prompts.shape[0]
    adv = common.advantages(rows)
    batches = common.micro_batches(rows, t + length, args.micro_batch_rows, args.micro_batch_tokens)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=0.0, fused=True)

    def one_round(_: int) -> dict:
        sequences, rollout_s = common.timed(rollout, model, prompts, generation_config)
        old, scoring_s = common.timed(scoring, model, sequences, length, batches)
        _, update_s = common.timed(update, model, optimizer, sequences, length, old, adv, batches)
        return {"rollout": rollout_s, "scoring": scoring_s, "update": update_s}

    peak = common.matmul_peak_tflops()
    medians = common.run_rounds(one_round, args.rounds)

    hidden = config.hidden_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    embedding = 0 if config.tie_word_embeddings else vocab * hidden

    def per_token(context: int) -> float:
        return common.flops_per_token(parameters, embedding, config.num_hidden_layers, heads,
                                      head_dim, context)

    flops = {stage: common.stage_flops(rows, t, length, passes, per_token)
             for stage, passes in (("rollout", 1), ("scoring", 1), ("update", 3))}
    common.report(args, args.model, parameters, threads, peak, medians, flops)


if __name__ == "__main__":
    main()
