"""Writes add-easy-{train,eval}.jsonl: one- and two-digit additions (operands 1..20) for the
first real-LLM RL checks (`zoo train --model ... --task jsonl`). Seeded; rerun to regenerate
the same files: python3 examples/data/make-add-easy.py (from this folder)."""
import json
import random

r = random.Random(12)


def rows(n, seen):
    out = []
    while len(out) < n:
        a, b = r.randint(1, 20), r.randint(1, 20)
        if (a, b) in seen:
            continue
        seen.add((a, b))
        s = a + b
        out.append({"problem": f"What is {a} + {b}?", "answer": str(s),
                    "solution": f"{a} + {b} = {s}. The answer is \\boxed{{{s}}}."})
    return out


seen = set()
heldout = rows(50, seen)
train = rows(300, seen)
for name, data in [("add-easy-train.jsonl", train), ("add-easy-eval.jsonl", heldout)]:
    with open(name, "w") as f:
        for d in data:
            f.write(json.dumps(d) + "\n")
