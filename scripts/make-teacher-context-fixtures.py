#!/usr/bin/env python3
"""Writes tests/fixtures/teacher-contexts/: the token ids of every shipped objective's teacher
contexts for one group of responses, built the way each reference's code builds them, with
transformers' tokenizer and `apply_chat_template`. The Rust tests (tests/it/contexts.rs) build
the same group through zoo's `Objective::teacher_rows` and compare ids. Nothing here imports
zoo; each construction below follows its reference file (named in its comment).

    /root/.cache/zoo/libtorch-2.9.0/bin/python scripts/make-teacher-context-fixtures.py \
        --smollm2-gguf "$(scripts/fetch-smollm2.sh)"

Needs transformers (5.24.0 was used), jinja2, and for SmolLM2 gguf and torch. Writes
`tiny.json` (the committed tiny tokenizer of tests/fixtures/llm/tokenizer/tiny: the main suite)
and `smollm2.json` (SmolLM2-135M-Instruct from its GGUF: the real-model stage).

Each file: {"problem": {prompt, question, answer, solution}, "responses": [{text, score,
extracted, parsed}], "response_ids": [[...]] (text ids, then EOS), "prompt_ids": [...],
"cases": [{"name", "algo", "config", "step", "rows": [[{"passes": [names], "choose": k,
"contexts": [[ids], ...], "hint": text}]]}]}: for response i, each check says that the passes
named hold, as a set, `choose` distinct contexts out of `contexts` (k = 0: no context, the pass
skips the response).
"""

import argparse
import json
import math
import os
import re

from transformers import AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
OUT = os.path.join(ROOT, "teacher-contexts")

QUESTION = "What is 17 + 25?"
# zoo's default `data.template` for `--task jsonl`.
PROMPT = QUESTION + "\nPlease reason step by step, and put your final answer within \\boxed{}."
PROBLEM = {
    "prompt": PROMPT,
    "question": QUESTION,
    "answer": "42",
    "solution": "17 + 25 = 42.\nThe answer is \\boxed{42}.",
}
RESPONSES = [
    {"text": "<think>\nTens first.\n</think>\n\n17 + 25 = 42, so \\boxed{42}.", "score": 1.0,
     "extracted": "42", "parsed": True},
    {"text": "17 + 25 = 32, so \\boxed{32}.", "score": 0.0, "extracted": "32", "parsed": True},
    {"text": "17 + 25 = 42. \\boxed{42}", "score": 1.0, "extracted": "42", "parsed": True},
    {"text": "It is about forty.", "score": 0.0, "extracted": None, "parsed": False},
]


def chat(tok, user_text):
    """A new conversation with one user message, rendered with the generation prompt and
    encoded without special tokens (transformers' `apply_chat_template(tokenize=True)`)."""
    return tok.apply_chat_template([{"role": "user", "content": user_text}],
                                   add_generation_prompt=True, tokenize=True, return_dict=False)


def encode(tok, text):
    return tok.encode(text, add_special_tokens=False)


def grpo_advantages(scores):
    mean = sum(scores) / len(scores)
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / (len(scores) - 1))
    return [(s - mean) / (std + 1e-6) for s in scores]


def one(ids, hint, passes):
    return {"passes": passes, "choose": 1, "contexts": [ids], "hint": hint}


def none(passes):
    return {"passes": passes, "choose": 0, "contexts": [], "hint": ""}


def cases(tok):
    prompt_ids = chat(tok, PROMPT)
    eos = tok.convert_tokens_to_ids(tok.eos_token)
    response_ids = [encode(tok, r["text"]) + [eos] for r in RESPONSES]
    n = len(RESPONSES)
    out = []

    # CEPO (ahmedheakl/CEPO@7a9655d, ray_trainer.py::_build_cepo_teacher_batch L641-668):
    # prompt ids (ending with the assistant header) + encode(" " + answer) + response. The wrong
    # answer is zoo's decision 3: the most frequent extracted one among the rejected responses
    # ("32"; "It is about forty." has none).
    gold = prompt_ids + encode(tok, " " + PROBLEM["answer"])
    wrong = prompt_ids + encode(tok, " 32")
    out.append({"name": "cepo answers spliced after the assistant header", "algo": "cepo",
                "config": {}, "step": 1,
                "rows": [[one(gold, "42", ["gold-answer"]), one(wrong, "32", ["wrong-answer"])]
                         for _ in range(n)]})

    # CEPO's CoT teachers (`cepo_use_cot_teacher`, L591-622): the first k response ids of the
    # best correct response (max score, first on ties: 0) and of the worst rejected one (min
    # score, first: 1), cut at the first pad id; `CEPO_IS_PREFIX=0` takes the last k.
    pad = tok.pad_token_id or 0

    def actual(ids):
        return ids.index(pad) if pad in ids else len(ids)

    for k, slice_name in [(4, "prefix"), (3, "suffix")]:
        def cut(ids):
            length = actual(ids)
            if slice_name == "prefix":
                return ids[:min(k, length)]
            return ids[length - k:length] if length >= k else []
        pos, neg = cut(response_ids[0]), cut(response_ids[1])
        out.append({"name": f"cepo CoT teachers read the {slice_name} of {k} ids", "algo": "cepo",
                    "config": {"cot_teacher": True, "cot_len": k, "cot_slice": slice_name},
                    "step": 1,
                    "rows": [[one(prompt_ids + pos, tok.decode(pos, skip_special_tokens=True),
                                  ["gold-answer"]),
                              one(prompt_ids + neg, tok.decode(neg, skip_special_tokens=True),
                                  ["wrong-answer"])] for _ in range(n)]})

    # CEPO's repository's RLSD baseline (`_build_teacher_inputs` L748-888): " " + answer.
    out.append({"name": "rlsd-cepo splices the gold answer", "algo": "rlsd-cepo", "config": {},
                "step": 1, "rows": [[one(gold, "42", ["gold-answer"])] for _ in range(n)]})

    # RLSD's authors (iie-ycx/RLSD@93e46f7, teacher_hint_self_distill.jinja L2-7 through
    # opsd_algos.py::construct_teacher_prompts): a new user message; the hint is the gold answer
    # (their `trajectory_key=answer` was popped before it was read).
    authors = ("{q}\n\nHere is a reference solution:\n{h}\n\nAfter understanding the reference "
               "solution, please try to solve this problem using your own approach below. You "
               "FIRST think about the reasoning process as an internal monologue enclosed within "
               "<thought> </thought> tags. The final answer MUST be enclosed within <answer> "
               "</answer> tags.")
    for hint_mode, hint in [("reference-solution", PROBLEM["answer"]),
                            ("solution", PROBLEM["solution"])]:
        ids = chat(tok, authors.format(q=QUESTION.strip(), h=hint.strip()))
        out.append({"name": f"rlsd reads the authors' template ({hint_mode})", "algo": "rlsd",
                    "config": {"hint": hint_mode}, "step": 1,
                    "rows": [[one(ids, hint, ["reference-solution"])] for _ in range(n)]})

    # OPSD (siyan-zhao/OPSD@590ec26, data_collator.py L28, L82-93).
    transition = ("\n\nAfter understanding the reference solution and the rationale behind each "
                  "step, now articulate your own step-by-step reasoning that derives the same "
                  "final answer to the problem below:\n")
    teacher = (f"{QUESTION}\n\nHere is a reference solution to this problem:\n"
               f"{PROBLEM['solution']}\n{transition}\n"
               "Please reason step by step, and put your final answer within \\boxed{}.")
    text = tok.apply_chat_template([{"role": "user", "content": teacher}], tokenize=False,
                                   add_generation_prompt=True)
    ids = tok(text)["input_ids"]  # the collator's tokenizer call: special tokens added
    out.append({"name": "opsd reads the reference solution in its template", "algo": "opsd",
                "config": {}, "step": 1,
                "rows": [[one(ids, PROBLEM["solution"], ["reference-solution"])]
                         for _ in range(n)]})

    # SDPO (lasgroup/SDPO@0e6d510, ray_trainer.py L636-669, L710-761, actor.yaml L131-148):
    # the first other success, think blocks removed, in the reprompt message.
    def demo_row(i):
        j = next((j for j in range(n) if j != i and RESPONSES[j]["score"] >= 0.5), None)
        if j is None:
            return {"passes": ["demonstration"], "choose": 1, "contexts": [prompt_ids], "hint": ""}
        demo = re.sub(r'<think>.*?</think>\s*', '', RESPONSES[j]["text"], flags=re.DOTALL)
        message = f"{PROMPT}\nCorrect solution:\n\n{demo}\n\nCorrectly solve the original question."
        return one(chat(tok, message), demo, ["demonstration"])

    out.append({"name": "sdpo reads a group-mate's solution without its think block",
                "algo": "sdpo", "config": {}, "step": 1,
                "rows": [[demo_row(i)] for i in range(n)]})

    # RLCSD (THU-BPM/RLCSD@7eeff3c, self_distill_main.py L564-846, opsd_format.py
    # build_teacher_messages): correct sibling = a positive other than the response (reward >
    # 0), wrong siblings = the negatives with an extracted answer, the response excluded when
    # it is wrong; up to k_max = 4, drawn at random (so: sets here).
    def rlcsd_message(j):
        r = RESPONSES[j]
        # `extract_boxed_answer(text) or ground_truth` for a positive; a negative's own answer.
        answer = (r["extracted"] or PROBLEM["answer"]) if r["score"] > 0 else r["extracted"]
        privileged = f"{r['text'].strip()}\n\nCorrect final answer: {answer.strip()}"
        text = (f"Problem: {QUESTION.strip()}\n\nHere is a reference solution to this problem:\n"
                "=== Reference Solution Begin ===\n"
                f"{privileged}\n"
                "=== Reference Solution End ===\n\nAfter reading the reference solution above, make "
                "sure you understand the reasoning behind each step.\n\n"
                "Please reason step by step, and put your final answer within \\boxed{}.")
        return chat(tok, text), privileged

    positives = [j for j in range(n) if RESPONSES[j]["score"] > 0]
    negatives = [j for j in range(n) if RESPONSES[j]["score"] <= 0 and RESPONSES[j]["extracted"] is not None]
    wrong_passes = [f"wrong-hint-{k}" for k in range(1, 5)]
    rows = []
    for i in range(n):
        correct = [j for j in positives if j != i]
        wrong = [j for j in negatives if RESPONSES[i]["score"] > 0 or j != i]
        if not correct or not wrong:
            rows.append([none(["correct-hint"]), none(wrong_passes)])
            continue
        rows.append([
            {"passes": ["correct-hint"], "choose": 1,
             "contexts": [rlcsd_message(j)[0] for j in correct], "hint": None},
            {"passes": wrong_passes, "choose": min(4, len(wrong)),
             "contexts": [rlcsd_message(j)[0] for j in wrong], "hint": None},
        ])
    out.append({"name": "rlcsd reads siblings in the reference-solution template",
                "algo": "rlcsd", "config": {}, "step": 1, "rows": rows})
    return prompt_ids, response_ids, out


def write(name, tok):
    prompt_ids, response_ids, all_cases = cases(tok)
    document = {"problem": PROBLEM, "responses": RESPONSES, "prompt_ids": prompt_ids,
                "response_ids": response_ids, "cases": all_cases}
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(document, f, indent=None, separators=(",", ":"), ensure_ascii=False)
        f.write("\n")
    print(f"wrote {name}: {len(all_cases)} cases")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smollm2-gguf", help="SmolLM2-135M-Instruct GGUF file")
    args = parser.parse_args()
    write("tiny", AutoTokenizer.from_pretrained(os.path.join(ROOT, "llm", "tokenizer", "tiny")))
    if args.smollm2_gguf:
        folder, name = os.path.split(os.path.abspath(args.smollm2_gguf))
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        # transformers' GGUF loader leaves out SmolLM2's digit split (its tokenizer.json splits
        # digits one by one before the byte-level split), which changes a whitespace run before
        # a digit ("\n\n17"): restore the model's own pre-tokenizer.
        from tokenizers import pre_tokenizers
        tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
        write("smollm2", tok)


if __name__ == "__main__":
    main()
