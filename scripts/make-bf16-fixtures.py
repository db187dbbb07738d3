#!/usr/bin/env python3
"""Writes tests/fixtures/llm/<name>/expected_bf16.json: transformers' logits for the fixture
models computed in bf16 (weights cast to bf16, eager attention: RMSNorm and the attention
softmax upcast to f32 inside, as transformers' Llama/Qwen code does), beside the same logits in
f32, for the Rust test of zoo's bf16 compute (tests/it/llm.rs, `check_bf16_compute`). Rerun
only to regenerate them (and commit the result):

    /root/.cache/zoo/libtorch-2.9.0/bin/python scripts/make-bf16-fixtures.py

Needs torch and transformers (5.24.0 was used).
"""

import json
import os

import torch
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "llm")
# Context and response ids of the Rust test (and one more, longer sequence).
SEQUENCES = [[5, 6, 7, 8, 10, 11, 12, 13, 14], [9, 15, 16], [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51]]


def logits(model, ids):
    with torch.no_grad():
        out = model(torch.tensor([ids])).logits[0]
    return [[round(float(x), 6) for x in row] for row in out.float()]


def main():
    for name in ["qwen2", "llama-tied-llama3", "qwen3"]:
        folder = os.path.join(ROOT, name)
        f32 = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
        bf16 = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
        bf16 = bf16.to(torch.bfloat16)
        document = {
            "note": "transformers logits in bf16 (weights cast from f32) and in f32; eager attention",
            "sequences": [
                {"ids": ids, "bf16": logits(bf16, ids), "f32": logits(f32, ids)} for ids in SEQUENCES
            ],
        }
        with open(os.path.join(folder, "expected_bf16.json"), "w") as f:
            json.dump(document, f, separators=(",", ":"))
            f.write("\n")
        worst = max(
            abs(a - b)
            for s in document["sequences"]
            for ra, rb in zip(s["bf16"], s["f32"])
            for a, b in zip(ra, rb)
        )
        print(f"{name}: bf16 vs f32 logits, largest difference {worst:.3e}")


if __name__ == "__main__":
    main()
