#!/usr/bin/env python3
"""LoRA parity fixtures: PEFT adapters with random A and B (`init_lora_weights=False`, so the
adapted model differs from the base) on all seven projections of each LLM fixture model
(tests/fixtures/llm/*), and the logits PEFT's adapted model gives. Seeded, CPU, a few seconds.

    /root/.cache/zoo/libtorch-2.9.0/bin/python -m pip install peft transformers==5.24.0
    /root/.cache/zoo/libtorch-2.9.0/bin/python scripts/make-lora-fixtures.py

Writes tests/fixtures/lora/<family>/ (the family's model stays in tests/fixtures/llm/<family>):
  adapter_config.json, adapter_model.safetensors   as PEFT's save_pretrained writes them
  expected.json   {base, peft_version, cases: [{input_ids, logits [len][vocab]}], merged_max_diff}
with the base's own expected.json cases (f32, eager attention). `merged_max_diff` is how far
PEFT's merge_and_unload() logits are from the adapted model's (float rounding).
"""

import json
import os
import shutil
import sys

import peft
import torch
import transformers

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def round8(x):
    return float(f"{x:.8g}")


def main():
    out_root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "lora")
    for family in ["llama", "llama-tied-llama3", "qwen2", "qwen3"]:
        base_dir = os.path.join(ROOT, "llm", family)
        out = os.path.join(out_root, family)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        torch.manual_seed(1234)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            base_dir, dtype=torch.float32, attn_implementation="eager"
        ).eval()
        config = peft.LoraConfig(
            r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0,
            init_lora_weights=False, task_type="CAUSAL_LM",
        )
        adapted = peft.get_peft_model(model, config).eval()
        adapted.save_pretrained(out)
        # The base's name in adapter_config.json: the fixture folder, relative to the repository.
        config_path = os.path.join(out, "adapter_config.json")
        saved = json.load(open(config_path))
        saved["base_model_name_or_path"] = f"tests/fixtures/llm/{family}"
        json.dump(saved, open(config_path, "w"), indent=2, sort_keys=True)
        for extra in os.listdir(out):
            if extra not in ("adapter_config.json", "adapter_model.safetensors"):
                os.remove(os.path.join(out, extra))
        cases = json.load(open(os.path.join(base_dir, "expected.json")))["cases"]
        records = []
        with torch.no_grad():
            for case in cases:
                ids = torch.tensor([case["input_ids"]])
                logits = adapted(input_ids=ids).logits[0]
                records.append({
                    "name": case["name"],
                    "input_ids": case["input_ids"],
                    "logits": [[round8(v) for v in row] for row in logits.tolist()],
                })
            merged = adapted.merge_and_unload().eval()
            merged_max = max(
                (merged(input_ids=torch.tensor([r["input_ids"]])).logits[0]
                 - torch.tensor(r["logits"])).abs().max().item()
                for r in records
            )
        json.dump({
            "base": f"tests/fixtures/llm/{family}",
            "peft_version": peft.__version__,
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
            "rank": 4, "alpha": 8, "targets": TARGETS,
            "cases": records,
            "merged_max_diff": merged_max,
        }, open(os.path.join(out, "expected.json"), "w"))
        print(f"{family}: {len(records)} cases, merged max diff {merged_max:.2e}")


if __name__ == "__main__":
    main()
