"""Checks that a LoRA checkpoint of a zoo run is a PEFT adapter: `peft.PeftModel.from_pretrained`
loads it onto the base and gives the log-probs that `zoo score --adapter` printed, and the
folder `zoo export --merge` wrote gives them too (transformers alone).

    python scripts/check-adapter-peft.py BASE_DIR ADAPTER_DIR MERGED_DIR SCORED.jsonl

SCORED.jsonl is `zoo score --model BASE_DIR --adapter ADAPTER_DIR --input PAIRS.jsonl`
(temperature 1). Exits 1 on a difference above 1e-4.
"""
import json
import sys

import peft
import torch
from transformers import AutoModelForCausalLM

torch.set_num_threads(1)
base_dir, adapter_dir, merged_dir, scored = sys.argv[1:5]
base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
adapted = peft.PeftModel.from_pretrained(base, adapter_dir).eval()
merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
lora_b = [p for n, p in adapted.named_parameters() if "lora_B" in n]
assert lora_b and any(p.abs().max().item() > 0 for p in lora_b), "the adapter's B matrices are all zero"
worst = {"peft": 0.0, "merged": 0.0}
for n, line in enumerate(open(scored)):
    row = json.loads(line)
    context, response = row["context_ids"], row["response_ids"]
    for name, model in [("peft", adapted), ("merged", merged)]:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([context + response])).logits[0].float()
        logprobs = torch.log_softmax(logits, -1)
        reference = [logprobs[len(context) - 1 + j, t].item() for j, t in enumerate(response)]
        diff = max(abs(a - b) for a, b in zip(reference, row["logprobs"]))
        worst[name] = max(worst[name], diff)
        if len(reference) != len(row["logprobs"]) or diff > 1e-4:
            print(f"line {n + 1}: max |zoo - {name}| = {diff:.2e}: MISMATCH")
            sys.exit(1)
print(
    f"adapter `{adapter_dir}` (peft {peft.__version__}): PEFT agrees with zoo score to "
    f"{worst['peft']:.2e}, the merged export to {worst['merged']:.2e}"
)
