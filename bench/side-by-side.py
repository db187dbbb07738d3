#!/usr/bin/env python3
"""zoo beside PyTorch: the same training step (rollout, scoring, update) with the same shapes,
threads and machine, in one run, stage by stage, with the ratio `reference seconds / zoo
seconds` (above 1: zoo is faster).

- zoo: `zoo bench --json` on each `--devices` entry (flex, tch-cpu, tch-cuda:N);
- the reference: `bench/torch_tiny.py` (a hand-written PyTorch copy of the tiny decoder) for
  `--model tiny`, `bench/torch_llm.py` (transformers, as a TRL user runs it) otherwise.

Both count FLOPs with zoo's formula and report each stage's TFLOP/s beside the f32
`[1024, 1024]²` matrix-product rate each measures itself ("of mm"). They run one after the
other, never at once. Standard library only; the reference runs under `--python` (the torch
that zoo's tch backend uses).

    source scripts/setup-libtorch.sh && cargo build --release --features tch
    bench/side-by-side.py                                 # tiny: flex and tch-cpu vs PyTorch
    bench/side-by-side.py --model smollm2-135m --rounds 1 --devices tch-cpu
    bench/side-by-side.py --prompts 16 --response-len 64 --json > tiny.json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STAGES = ("rollout", "scoring", "update")


def default_python() -> str:
    """The LibTorch environment's python (scripts/setup-libtorch.sh), else this one."""
    venv = os.environ.get("ZOO_LIBTORCH_VENV")
    if venv:
        return os.path.join(venv, "bin", "python")
    cache = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    found = sorted(glob.glob(os.path.join(cache, "zoo", "libtorch-*", "bin", "python")))
    return found[-1] if found else sys.executable


def shape_flags(args: argparse.Namespace) -> list[str]:
    """The flags both sides take, only those given (each side has the same defaults)."""
    flags = []
    for name in ("prompts", "group_size", "prompt_tokens", "response_len", "rounds",
                 "micro_batch_rows", "micro_batch_tokens"):
        value = getattr(args, name)
        if value is not None:
            flags += ["--" + name.replace("_", "-"), str(value)]
    return flags


def run_json(command: list[str], env: dict) -> dict | list:
    print("side-by-side: " + " ".join(command), file=sys.stderr)
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"side-by-side: `{' '.join(command)}` failed with exit code {done.returncode}")
    return json.loads(done.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny",
                   help="tiny (default) or a shape: smollm2-135m, qwen2.5-0.5b, ...")
    p.add_argument("--devices", default="flex,tch-cpu", help="zoo's devices [flex,tch-cpu]")
    p.add_argument("--zoo", default=os.path.join(ROOT, "target", "release", "zoo"),
                   help="the zoo binary [target/release/zoo, built with --features tch for tch-*]")
    p.add_argument("--python", default=default_python(), help="python with torch and transformers")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads on both sides (RAYON_NUM_THREADS, OMP_NUM_THREADS and "
                        "torch.set_num_threads) [default: every core]")
    for name in ("prompts", "group-size", "prompt-tokens", "response-len", "rounds",
                 "micro-batch-rows", "micro-batch-tokens"):
        p.add_argument("--" + name, type=int, default=None)
    p.add_argument("--json", action="store_true", help="print {reference, zoo: [...]} as JSON")
    args = p.parse_args()

    env = dict(os.environ)
    reference_flags = []
    if args.threads is not None:
        for var in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.threads)
        reference_flags = ["--threads", str(args.threads)]
    flags = shape_flags(args)
    zoo_results = run_json([args.zoo, "bench", "--model", args.model, "--devices", args.devices,
                            "--json", *flags], env)
    script = "torch_tiny.py" if args.model == "tiny" else "torch_llm.py"
    model_flag = [] if args.model == "tiny" else ["--model", args.model]
    reference = run_json([args.python, os.path.join(HERE, script), "--json", *model_flag,
                          *flags, *reference_flags], env)

    if args.json:
        print(json.dumps({"reference": reference, "zoo": zoo_results}, indent=2))
        return
    r = reference
    print(f"{r['model']} ({r['parameters']:,} parameters): {r['prompts']} prompts x "
          f"{r['group_size']} x {r['response_len']} tokens after {r['prompt_tokens']}-token "
          f"prompts, micro-batches of {r['micro_batch_rows']} rows"
          f"{' / %d tokens' % r['micro_batch_tokens'] if r['micro_batch_tokens'] else ''}, "
          f"median of {r['rounds']} rounds")
    for z in zoo_results:
        same = (z["rows"], z["response_len"], z["prompt_tokens"], z["micro_batch_rows"]) == (
            r["rows"], r["response_len"], r["prompt_tokens"], r["micro_batch_rows"])
        if not same:
            sys.exit(f"side-by-side: zoo on {z['device']} ran another shape than the reference")
    header = f"{'stage':<9} {'PyTorch':>22}"
    for z in zoo_results:
        header += f" {'zoo ' + z['device']:>22} {'x':>6}"
    print(header)
    cell = lambda s: f"{s['seconds']:8.3f} s {100 * s['peak_fraction']:5.1f}% of mm"
    for stage in STAGES + ("step",):
        if stage == "step":
            line = f"{'step':<9} {r['step_seconds']:8.3f} s{'':13}"
            for z in zoo_results:
                line += f" {z['step_seconds']:8.3f} s{'':13} {r['step_seconds'] / z['step_seconds']:5.2f}x"
        else:
            line = f"{stage:<9} {cell(r[stage]):>22}"
            for z in zoo_results:
                ratio = r[stage]["seconds"] / z[stage]["seconds"]
                line += f" {cell(z[stage]):>22} {ratio:5.2f}x"
        print(line)
    mm = f"matrix products (f32 [1024,1024]²): PyTorch {r['matmul_peak_tflops']:.3f} TFLOP/s"
    for z in zoo_results:
        mm += f", zoo {z['device']} {z['matmul_peak_tflops']:.3f}"
    print(mm)
    print(f"threads: PyTorch {r['threads']}, zoo {zoo_results[0]['threads']}; "
          f"x = PyTorch seconds / zoo seconds (above 1: zoo is faster)")


if __name__ == "__main__":
    main()
