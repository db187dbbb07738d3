#!/usr/bin/env bash
# The GPU check (docs/gpu.md): on a machine with an NVIDIA GPU and PyTorch installed, runs the
# LibTorch smoke test, the objectives' and the real-model fixtures' parity, and the bench, with
# a `zoo` binary built with feature `tch`, and writes everything to a folder.
#
#   scripts/gpu-check.sh ZOO_BINARY OUT_DIR [DEVICE]      # DEVICE defaults to tch-cuda:0
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
# against transformers' log-probs (docs/models.md; 1e-4, as tests/it/llm.rs on the CPU).
llm_parity() {
    local fixture failed=0
    for fixture in "$(dirname "$0")"/../tests/fixtures/llm/*/expected.json; do
        local dir
        dir=$(dirname "$fixture")
        python3 -c 'import json, sys; c = json.load(open(sys.argv[1]))["logprobs_at_temperature"]; print(json.dumps({"context_ids": c["input_ids"][:1], "response_ids": c["input_ids"][1:]}))' \
            "$fixture" >"$out/llm-pairs.jsonl" || return 1
        "$zoo" score --model "$dir" --device "$device" --temperature 0.7 \
            --input "$out/llm-pairs.jsonl" >"$out/llm-scored.jsonl" || return 1
        python3 - "$fixture" "$out/llm-scored.jsonl" <<'PY' || failed=1
import json, sys
expected = json.load(open(sys.argv[1]))["logprobs_at_temperature"]["values"]
actual = json.loads(open(sys.argv[2]).readline())["logprobs"]
worst = max(abs(a - e) / max(1.0, abs(e)) for a, e in zip(actual, expected))
ok = len(actual) == len(expected) and worst <= 1e-4
print(f"{sys.argv[1].split('/')[-2]}: max relative diff {worst:.2e} {'ok' if ok else 'MISMATCH'}")
sys.exit(0 if ok else 1)
PY
    done
    return $failed
}
step llm-parity llm_parity
step bench "$zoo" bench --devices "flex,tch-cpu,$device" --rounds 3
cat "$out/bench.out" 2>/dev/null
exit $status
