"""Checks that a zoo checkpoint of an LLM run is a Hugging Face model folder: transformers
loads it (model and tokenizer) and gives the log-probs that `zoo score` printed for it.

    python scripts/check-checkpoint-transformers.py CHECKPOINT_DIR PAIRS.jsonl SCORED.jsonl

PAIRS.jsonl holds `{"prompt", "response"}` lines; SCORED.jsonl is `zoo score --model
CHECKPOINT_DIR --input PAIRS.jsonl` (temperature 1). The checkpoint's tokenizer must render
each prompt through its chat template to zoo's context ids, and its model must give zoo's
log-probs within 1e-4; exits 1 otherwise.
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

torch.set_num_threads(1)
folder, pairs, scored = sys.argv[1], sys.argv[2], sys.argv[3]
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
tokenizer = AutoTokenizer.from_pretrained(folder)
worst = 0.0
for n, (pair, line) in enumerate(zip(open(pairs), open(scored))):
    pair, row = json.loads(pair), json.loads(line)
    context, response = row["context_ids"], row["response_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([context + response])).logits[0].float()
    logprobs = torch.log_softmax(logits, -1)
    reference = [logprobs[len(context) - 1 + j, t].item() for j, t in enumerate(response)]
    diff = max(abs(a - b) for a, b in zip(reference, row["logprobs"]))
    worst = max(worst, diff)
    if len(reference) != len(row["logprobs"]) or diff > 1e-4:
        print(f"line {n + 1}: max |zoo - transformers| = {diff:.2e} over {len(reference)} tokens: MISMATCH")
        sys.exit(1)
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": pair["prompt"]}], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(rendered, add_special_tokens=False).input_ids
    if ids != context:
        print(f"line {n + 1}: transformers renders the prompt to {ids}, zoo to {context}: MISMATCH")
        sys.exit(1)
    if tokenizer(pair["response"], add_special_tokens=False).input_ids != response:
        print(f"line {n + 1}: the response tokenizes differently: MISMATCH")
        sys.exit(1)
print(f"{type(model).__name__} from {folder}: transformers agrees with zoo score to {worst:.2e}")
