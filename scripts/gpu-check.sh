#!/usr/bin/env bash
# The GPU check (docs/gpu.md): on a machine with an NVIDIA GPU and PyTorch installed, runs the
# LibTorch smoke test, the objectives' and the real-model fixtures' parity (f32 and bf16), the
# fused-attention convention check, a one-rank NCCL run, the CPU-model bench and the real-model-shape benchmarks
# (Qwen2.5-0.5B, random weights, GRPO at 8 x 8 x 256 and, when time allows, 64 x 8 x 1024), with
# a `zoo` binary built with features `tch,nccl`, and writes everything to a folder, `summary.txt`
# first. Built to finish in under 10 minutes on an H100/H200.
#
#   scripts/gpu-check.sh ZOO_BINARY OUT_DIR [DEVICE]      # DEVICE defaults to tch-cuda:0
#   PEAK_TFLOPS=495 scripts/gpu-check.sh ...               # MFU against this peak (default:
#                                                          # from the GPU's name, TF32 dense)
#
# libtorch is taken from this machine's `python3 -c 'import torch'` (its lib/ goes on the
# library path), so the binary must have been built against the same PyTorch version.
set -uo pipefail
zoo="${1:?usage: scripts/gpu-check.sh ZOO_BINARY OUT_DIR [DEVICE]}"
out="${2:?usage: scripts/gpu-check.sh ZOO_BINARY OUT_DIR [DEVICE]}"
device="${3:-tch-cuda:0}"
mkdir -p "$out"
zoo=$(realpath "$zoo")
torch_lib=$(python3 -W ignore -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export ZOO_CACHE_DIR="$out/cache"
status=0
step() { # name, command...
    local name=$1
    shift
    echo "== $name: $*" | tee -a "$out/summary.txt"
    local start=$(date +%s)
    if "$@" >"$out/$name.out" 2>"$out/$name.err"; then
        echo "   ok in $(( $(date +%s) - start ))s" | tee -a "$out/summary.txt"
    else
        echo "   FAILED (exit $?) in $(( $(date +%s) - start ))s; see $name.err" | tee -a "$out/summary.txt"
        status=1
    fi
}
{
    echo "date: $(date -u)"
    echo "torch: $(python3 -W ignore -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())')"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not available"
} >"$out/machine.txt"
step list "$zoo" list
step smoke "$zoo" train --algo grpo --steps 5 --device "$device" --out "$out/run-grpo" \
    --set rollout.prompts_per_step=16 --set eval.problems=100
# One-rank NCCL (docs/distributed.md; needs a binary built with `--features tch,nccl`): two
# steps with `--dist nccl` over real CUDA gradients equal two steps without it, bit for bit
# (an all-reduce over one rank is the identity). Checks libnccl's loading, the bootstrap id,
# the communicator and the host staging; a one-GPU machine cannot run two NCCL ranks.
nccl_one_rank() {
    local nccl
    nccl=$(python3 -W ignore -c 'import os, nvidia.nccl as n; print(os.path.join(list(n.__path__)[0], "lib", "libnccl.so.2"))' 2>/dev/null) || return 1
    mkdir -p "$out/nccl-lib" && ln -sf "$nccl" "$out/nccl-lib/libnccl.so"
    local settings=(--algo grpo --steps 2 --seed 1 --device "$device" --set rollout.prompts_per_step=16 --set eval.problems=50 --quiet)
    "$zoo" train "${settings[@]}" --out "$out/run-nccl-off" || return 1
    LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$out/nccl-lib" RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 \
        MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 \
        "$zoo" train "${settings[@]}" --dist nccl --out "$out/run-nccl-on" || return 1
    cmp "$out/run-nccl-off/checkpoints/step-000002/model.safetensors" \
        "$out/run-nccl-on/checkpoints/step-000002/model.safetensors" && echo "one-rank NCCL: identical weights"
}
step nccl nccl_one_rank
# Every parity fixture on the device, compared with its independent float64 expected values
# (the tolerance of tests/it/objectives.rs).
parity() {
    local fixture failed=0
    for fixture in "$(dirname "$0")"/../tests/fixtures/objectives/*.json; do
        "$zoo" objective eval --device "$device" --input "$fixture" >"$out/parity.json" || return 1
        python3 - "$fixture" "$out/parity.json" <<'PY' || failed=1
import json, sys
expected = json.load(open(sys.argv[1]))["expected"]
actual = json.load(open(sys.argv[2]))
def flat(v):
    return [x for i in v for x in flat(i)] if isinstance(v, list) else [v]
for key in ["loss", "grad", "advantages"]:
    if key not in expected:
        continue
    e, a = flat(expected[key]), flat(actual[key])
    scale = max([1.0] + [abs(x) for x in e])
    worst = max(abs(x - y) for x, y in zip(a, e))
    ok = len(a) == len(e) and worst <= 2e-6 * scale
    print(f"{sys.argv[1].split('/')[-1]} {key}: max diff {worst:.2e} {'ok' if ok else 'MISMATCH'}")
    if not ok:
        sys.exit(1)
PY
    done
    return $failed
}
step parity parity
# The real-model fixtures on the device: `zoo score` of each fixture's case at temperature 0.7
# against transformers' log-probs (docs/models.md; 1e-4 in f32, as tests/it/llm.rs on the CPU;
# 5e-2 in bf16, which keeps 8 significant bits).
llm_parity() { # dtype tolerance
    local dtype=$1 tolerance=$2 fixture failed=0
    for fixture in "$(dirname "$0")"/../tests/fixtures/llm/*/expected.json; do
        local dir
        dir=$(dirname "$fixture")
        python3 -c 'import json, sys; c = json.load(open(sys.argv[1]))["logprobs_at_temperature"]; print(json.dumps({"context_ids": c["input_ids"][:1], "response_ids": c["input_ids"][1:]}))' \
            "$fixture" >"$out/llm-pairs.jsonl" || return 1
        "$zoo" score --model "$dir" --device "$device" --temperature 0.7 --dtype "$dtype" \
            --input "$out/llm-pairs.jsonl" >"$out/llm-scored.jsonl" || return 1
        python3 - "$fixture" "$out/llm-scored.jsonl" "$tolerance" "$dtype" <<'PY' || failed=1
import json, sys
expected = json.load(open(sys.argv[1]))["logprobs_at_temperature"]["values"]
actual = json.loads(open(sys.argv[2]).readline())["logprobs"]
tolerance = float(sys.argv[3])
worst = max(abs(a - e) / max(1.0, abs(e)) for a, e in zip(actual, expected))
ok = len(actual) == len(expected) and worst <= tolerance
print(f"{sys.argv[1].split('/')[-2]} {sys.argv[4]}: max relative diff {worst:.2e} {'ok' if ok else 'MISMATCH'}")
sys.exit(0 if ok else 1)
PY
    done
    return $failed
}
step llm-parity llm_parity f32 1e-4
step llm-parity-bf16 llm_parity bf16 5e-2
# LibTorch's fused attention (SDPA) against the decomposed formula zoo's decoder uses: a finding
# either way (the decoder does not call the fused kernel); see attention.out.
step attention "$zoo" bench --check-attention --devices "flex,tch-cpu,$device"
step bench "$zoo" bench --devices "flex,tch-cpu,$device" --rounds 3
# Real-model shapes with random weights: every stage's tokens/s, TFLOP/s, MFU, peak memory.
if [ -z "${PEAK_TFLOPS:-}" ]; then
    case "$(nvidia-smi --query-gpu=name --format=csv,noheader -i 0 2>/dev/null)" in
        *H100*|*H200*|*GH200*) PEAK_TFLOPS=495 ;;  # dense TF32 (f32 with TF32 on)
        *A100*) PEAK_TFLOPS=156 ;;
        *) PEAK_TFLOPS= ;;
    esac
fi
peak=${PEAK_TFLOPS:+--peak-tflops $PEAK_TFLOPS}
started=$(date +%s)
step qwen-8x8x256 "$zoo" bench --model qwen2.5-0.5b --devices "$device" --algo grpo \
    --prompts 8 --group-size 8 --prompt-tokens 200 --max-new-tokens 256 \
    --micro-batch-tokens 8192 --chunk-positions 2048 $peak --json
step qwen-8x8x256-bf16 "$zoo" bench --model qwen2.5-0.5b --devices "$device" --algo grpo \
    --prompts 8 --group-size 8 --prompt-tokens 200 --max-new-tokens 256 \
    --micro-batch-tokens 16384 --chunk-positions 2048 --dtype bf16 $peak --json
# The design target (llm-design.md section 4): 64 x 8 x 1024, if the smaller runs left time.
# Micro-batches of 8,192 tokens: the decomposed attention keeps about three [heads, L, L] f32
# tensors per row and layer (the memory estimate: ~55 GB of activations).
if [ $(( $(date +%s) - started )) -lt 150 ]; then
    step qwen-64x8x1024 "$zoo" bench --model qwen2.5-0.5b --devices "$device" --algo grpo \
        --prompts 64 --group-size 8 --prompt-tokens 200 --max-new-tokens 1024 \
        --micro-batch-tokens 8192 --chunk-positions 2048 $peak --json
else
    echo "== qwen-64x8x1024: skipped (the smaller runs took $(( $(date +%s) - started ))s)" | tee -a "$out/summary.txt"
fi
for name in qwen-8x8x256 qwen-8x8x256-bf16 qwen-64x8x1024; do
    [ -s "$out/$name.out" ] || continue
    python3 - "$out/$name.out" <<'PY' | tee -a "$out/summary.txt"
import json, sys
r = json.load(open(sys.argv[1]))[0]
def gib(b): return f"{b / 2**30:.1f} GiB" if b else "-"
print(f"   {sys.argv[1].split('/')[-1][:-4]}: step {r['step_seconds']:.1f} s ({r['dtype']}, TF32 {r['tf32']})")
for s in ["rollout", "scoring", "update"]:
    x = r[s]
    mfu = f"{100 * x['mfu']:.1f}%" if x["mfu"] is not None else "-"
    print(f"     {s:8} {x['seconds']:7.1f} s {x['tokens_per_s']:10.0f} tok/s {x['tflops']:7.1f} TFLOP/s MFU {mfu:>6} peak {gib(x['peak_memory'])}")
PY
done
cat "$out/attention.out" "$out/bench.out" 2>/dev/null
exit $status
