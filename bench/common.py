"""Shared pieces of the PyTorch reference benchmarks (`torch_tiny.py`, `torch_llm.py`).

What lives here, and why it is shared: both scripts must count, cut and report exactly alike,
and exactly as zoo does, so that their numbers sit beside `zoo bench`'s.

- `parse_args`: the common command line (`--prompts`, `--group-size`, ... `--seed`).
- `set_threads`: `--threads N` -> `torch.set_num_threads(N)`, one inter-op thread.
- `matmul_peak_tflops`: this process's own f32 matmul peak (the `peak_fraction` yardstick).
- `make_prompts`, `advantages`: the benchmark's inputs (random prompt ids, +1/-1 advantages).
- `micro_batches`: zoo's `MicroBatching::split` for rows of equal length.
- `flops_per_token`, `stage_flops`: zoo's `flops_per_token` and `model_flops`.
- `ppo_clip_loss`: zoo's GRPO token loss (PPO clip 0.2 with verl's dual clip 3).
- `run_rounds`, `report`: one untimed warm-up round, the median of R rounds, JSON or a table.

Only torch, numpy and the standard library are used.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Callable

import torch


# ----------------------------------------------------------------------------------------------
# Command line and threads
# ----------------------------------------------------------------------------------------------


def parse_args(description: str, defaults: dict, extra: Callable | None = None) -> argparse.Namespace:
    """The common command line; `defaults` gives each script's own defaults (`None` for
    `micro_batch_rows` means all rows). `extra(parser)` may add script-specific options."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=defaults["prompts"], help="distinct prompts P")
    p.add_argument("--group-size", type=int, default=defaults["group_size"],
                   help="responses per prompt G (rows = P*G, a group's rows adjacent)")
    p.add_argument("--prompt-tokens", type=int, default=defaults["prompt_tokens"],
                   help="tokens per prompt T")
    p.add_argument("--response-len", type=int, default=defaults["response_len"],
                   help="tokens per response L (every response exactly L)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds after one warm-up (median)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads(N) and one inter-op thread [default: torch's]")
    p.add_argument("--micro-batch-rows", type=int, default=defaults["micro_batch_rows"],
                   help="most rows per micro-batch [default: %(default)s; None = all rows]")
    p.add_argument("--micro-batch-tokens", type=int, default=defaults["micro_batch_tokens"],
                   help="most (context+response) tokens per micro-batch; 0 = no token limit")
    p.add_argument("--json", action="store_true", help="print only one JSON object")
    p.add_argument("--seed", type=int, default=0, help="weights, prompts and sampling")
    if extra is not None:
        extra(p)
    args = p.parse_args()
    if min(args.prompts, args.group_size, args.prompt_tokens, args.response_len, args.rounds) < 1:
        p.error("--prompts, --group-size, --prompt-tokens, --response-len, --rounds must be >= 1")
    rows = args.prompts * args.group_size
    if args.micro_batch_rows is None:
        args.micro_batch_rows = rows
    if args.micro_batch_rows < 1 or args.micro_batch_tokens < 0:
        p.error("--micro-batch-rows must be >= 1 and --micro-batch-tokens >= 0")
    return args


def set_threads(threads: int | None) -> int:
    """Applies `--threads` (before any parallel work) and returns the intra-op thread count."""
    if threads is not None:
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
    return torch.get_num_threads()


# ----------------------------------------------------------------------------------------------
# Matmul peak
# ----------------------------------------------------------------------------------------------


def matmul_peak_tflops(n: int = 1024, warmup: int = 3, repeats: int = 10) -> float:
    """This process's f32 matmul peak: the median time of `repeats` `torch.mm` of two n x n
    matrices (after `warmup` untimed ones), as TFLOP/s = 2 n^3 / t."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g)
    b = torch.randn(n, n, generator=g)
    out = torch.empty(n, n)
    for _ in range(warmup):
        torch.mm(a, b, out=out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - start)
    return 2.0 * n**3 / median(times) / 1e12


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------


def make_prompts(prompts: int, group_size: int, prompt_tokens: int, vocab: int,
                 seed: int) -> torch.Tensor:
    """`[P*G, T]` int64: P random prompts (ids in [0, vocab-1): never the last id, zoo's stop
    token), each repeated G times, a group's rows adjacent."""
    g = torch.Generator().manual_seed(seed)
    unique = torch.randint(0, vocab - 1, (prompts, prompt_tokens), generator=g)
    return unique.repeat_interleave(group_size, dim=0)


def advantages(rows: int) -> torch.Tensor:
    """`[rows]` f32: +1 for even rows, -1 for odd rows (broadcast to every response token)."""
    a = torch.ones(rows)
    a[1::2] = -1.0
    return a


def micro_batches(rows: int, row_tokens: int, max_rows: int, max_tokens: int) -> list[range]:
    """zoo's `MicroBatching::split` for rows of equal length: consecutive rows; a micro-batch
    closes when adding a row would exceed `max_rows` rows or `max_tokens` tokens (rows x
    `row_tokens`, the context + response tokens of a row; 0 = no token limit). A row longer
    than the budget goes alone."""
    out: list[range] = []
    start = 0
    for r in range(rows):
        n = r - start  # rows already in the open micro-batch
        full = n >= max_rows or (max_tokens > 0 and (n + 1) * row_tokens > max_tokens)
        if n > 0 and full:
            out.append(range(start, r))
            start = r
    if rows > start:
        out.append(range(start, rows))
    return out


# ----------------------------------------------------------------------------------------------
# FLOPs
# ----------------------------------------------------------------------------------------------


def flops_per_token(num_params: int, embedding: int, layers: int, heads: int, head_dim: int,
                    context: int) -> float:
    """zoo's `LlmConfig::flops_per_token`: forward FLOPs of one token read after `context`
    earlier tokens = 2 per weight of every matrix product (the head included, the embedding
    lookup not: `embedding` = vocab*hidden when the head is untied, 0 when tied) plus 4 per
    layer, head and head dimension per context token (`QK^T` and `PV`)."""
    return 2.0 * (num_params - embedding) + 4.0 * layers * heads * head_dim * context


def stage_flops(rows: int, prompt_tokens: int, response_len: int, passes: float,
                per_token: Callable[[int], float]) -> float:
    """zoo's `model_flops`: every row's `response_len` tokens at the middle token's cost
    (context = prompt + (L-1)//2), times `passes` (1 for rollout and scoring, 3 for update)."""
    middle = prompt_tokens + (response_len - 1) // 2
    return rows * response_len * per_token(middle) * passes


# ----------------------------------------------------------------------------------------------
# Loss
# ----------------------------------------------------------------------------------------------


def ppo_clip_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor,
                  clip: float = 0.2, dual: float = 3.0) -> torch.Tensor:
    """Per-token loss `[b, L]`: zoo's GRPO default (`ppo_clip_loss` in algorithms/grpo):
    ratio = exp(clamp(logp - old_logp, +-20)), loss = max(-A*ratio, -A*clip(ratio, 1-0.2,
    1+0.2)), and for A < 0 at most -3*A (verl's dual clip; inactive at ratio ~ 1). `adv` is
    `[b]` or `[b, L]`."""
    if adv.dim() == 1:
        adv = adv[:, None]
    ratio = torch.exp(torch.clamp(logp - old_logp, -20.0, 20.0))
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = torch.maximum(unclipped, clipped)
    return torch.where(adv < 0, torch.minimum(loss, -adv * dual), loss)


# ----------------------------------------------------------------------------------------------
# Rounds and report
# ----------------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    """zoo's median: the element at len/2 of the sorted values (the upper one for an even
    count)."""
    s = sorted(values)
    return s[len(s) // 2]


def timed(fn: Callable, *args, **kwargs):
    """`(fn(*args, **kwargs), wall seconds)`. Everything here runs on the CPU, synchronously."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def run_rounds(one_round: Callable[[int], dict], rounds: int) -> dict:
    """Runs `one_round(round_index)` once untimed (warm-up: allocator, thread pools, optimizer
    state), then `rounds` times; returns each stage's median seconds. `one_round` returns
    `{"rollout": s, "scoring": s, "update": s}`."""
    one_round(0)
    seconds: dict[str, list[float]] = {}
    for r in range(1, rounds + 1):
        for stage, s in one_round(r).items():
            seconds.setdefault(stage, []).append(s)
    return {stage: median(v) for stage, v in seconds.items()}


def report(args: argparse.Namespace, model: str, parameters: int, threads: int, peak: float,
           medians: dict, flops: dict) -> dict:
    """The result object (the JSON schema shared with zoo's side), printed as JSON with
    `--json`, else as a table."""
    rows = args.prompts * args.group_size
    tokens = rows * args.response_len
    result = {
        "impl": "torch",
        "model": model,
        "device": "torch-cpu",
        "threads": threads,
        "parameters": parameters,
        "prompts": args.prompts,
        "group_size": args.group_size,
        "rows": rows,
        "prompt_tokens": args.prompt_tokens,
        "response_len": args.response_len,
        "micro_batch_rows": args.micro_batch_rows,
        "micro_batch_tokens": args.micro_batch_tokens,
        "rounds": args.rounds,
        "matmul_peak_tflops": peak,
    }
    for stage in ("rollout", "scoring", "update"):
        s = medians[stage]
        tflops = flops[stage] / s / 1e12
        result[stage] = {
            "seconds": s,
            "tokens": tokens,
            "tokens_per_s": tokens / s,
            "tflops": tflops,
            "peak_fraction": tflops / peak,
        }
    result["step_seconds"] = sum(medians[s] for s in ("rollout", "scoring", "update"))
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if args.json:
        print(json.dumps(result))
        return result
    print(f"{model} ({parameters:,} parameters) on torch-cpu, {threads} threads: "
          f"{args.prompts} prompts x {args.group_size} x {args.response_len} tokens after "
          f"{args.prompt_tokens}-token prompts; micro-batches of <= {args.micro_batch_rows} rows"
          f" and <= {args.micro_batch_tokens or 'any'} tokens; median of {args.rounds} rounds")
    print(f"f32 matmul peak (1024^3 torch.mm): {peak:.3f} TFLOP/s")
    print(f"{'stage':<10} {'seconds':>10} {'tokens/s':>12} {'TFLOP/s':>9} {'of peak':>8}")
    for stage in ("rollout", "scoring", "update"):
        s = result[stage]
        print(f"{stage:<10} {s['seconds']:>10.4f} {s['tokens_per_s']:>12.1f} {s['tflops']:>9.4f} "
              f"{100 * s['peak_fraction']:>7.1f}%")
    print(f"step: {result['step_seconds']:.4f} s, peak RSS {result['peak_rss_bytes'] / 2**20:.0f} MiB")
    return result
