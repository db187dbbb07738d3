#!/usr/bin/env python3
"""Parity fixtures for the Rust Llama-family decoder (llama, qwen2, qwen3), made by Hugging Face
`transformers` from tiny, randomly initialized models. Nothing is downloaded: configs are built in
code and the tokenizer is trained here on the text below. Seeded and deterministic on CPU.

Rerun (CPU only, a few seconds; the venv is the one scripts/setup-libtorch.sh makes, with
`transformers`, `tokenizers`, `safetensors` and `jinja2` pip-installed into it):

    /root/.cache/zoo/libtorch-2.9.0/bin/python scripts/make-llm-fixtures.py [OUT_DIR]

OUT_DIR defaults to tests/fixtures/llm. It is written from scratch (each fixture folder is removed
first) and then every folder is reloaded with `AutoModelForCausalLM` / `AutoTokenizer` and checked
against its own expected.json (the script fails on any mismatch).

What it writes, one folder per fixture (each well under 1 MB):

  llama/              LlamaForCausalLM, untied lm_head, f32, default RoPE (theta 10000),
                      config.json in the transformers 4.x key style (rope_theta, rope_scaling,
                      torch_dtype), rewritten by hand from what transformers writes.
  llama-tied-llama3/  LlamaForCausalLM, tied embeddings, f32, llama3 RoPE scaling (theta 500000),
                      config.json in the transformers 5.x key style (rope_parameters, dtype).
  qwen2/              Qwen2ForCausalLM, q/k/v biases (non-zero), weights STORED as bf16; the reference
                      outputs are computed in f32 from the bf16-rounded weights. 4.x key style.
  qwen3/              Qwen3ForCausalLM, QK-norm, head_dim 32 != hidden/heads (16), f32. 5.x key style.

Each folder holds config.json, model.safetensors, generation_config.json, tokenizer.json,
tokenizer_config.json (with chat_template inline) and expected.json:

  cases[]                   {name, text, add_special_tokens, input_ids, logits [len][vocab_size]}
                            f32 forward, model.eval(), batch 1, no padding, positions 0..len-1.
                            One case is the chat-template rendering of a short user prompt.
  greedy[]                  {prompt_ids, max_new_tokens, output_ids (new tokens only; ends at the
                            eos if one was produced), hit_eos, step_top2_margins}
                            from model.generate(do_sample=False, ...). eos_token_id / pad_token_id
                            used are recorded at the top level of "greedy_settings".
  logprobs_at_temperature   {case, temperature 0.7, values: log_softmax(logits/0.7)[t, ids[t+1]]}
  rope_inv_freq             the model's RoPE inverse frequencies (after any scaling)
  transformers_version, torch_version, weights_dtype, compute_dtype

All RMSNorm weights (input/post-attention/final, and qwen3's q_norm/k_norm) are random, not ones.
Numbers are rounded to 8 significant digits. References use attn_implementation="eager"; the check
reloads with the default (sdpa) and compares with rtol = atol = 1e-5.

Tokenizer: one byte-level BPE (291 trained tokens, then 9 added tokens at ids 291..299: the 7
special ones below plus <think>, </think> as non-special added tokens, as in Qwen3), with the
Qwen2/Llama-3 split regex before the ByteLevel step. The llama folders' tokenizer.json adds
<|begin_of_text|> through a TemplateProcessing post-processor (as Llama 3 does); the qwen ones add
nothing. Model vocab_size is 320 > 300, so ids 300..319 exist only in the model (greedy can and
does pick them). The first greedy prompt is the "sentence" case; the second is a seeded random-id
prompt chosen so that generate stops at an eos before max_new_tokens.
"""

import json
import math
import os
import shutil
import sys

import torch

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

import transformers  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

transformers.logging.set_verbosity_error()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "tests", "fixtures", "llm")

TOKENIZER_SIZE = 300  # trained BPE (291) + 9 added tokens
VOCAB_SIZE = 320  # model vocab is larger than the tokenizer's, like real Qwen checkpoints
TEMPERATURE = 0.7
MAX_NEW_TOKENS = 8

# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------

CORPUS = """\
one plus one is two. two plus two is four. three plus four is seven. five plus five is ten.
1 + 1 = 2. 2 + 2 = 4. 3 + 4 = 7. 5 + 5 = 10. 6 + 7 = 13. 8 + 9 = 17. 12 + 30 = 42.
10 - 3 = 7. 9 - 4 = 5. 20 - 8 = 12. 100 - 1 = 99. 7 * 6 = 42. 3 * 3 = 9. 12 / 4 = 3.
What is 2 + 3? The answer is 5. What is 7 + 8? The answer is 15. What is 6 * 7? The answer is 42.
Solve for x: x + 3 = 10, so x = 7. Solve for y: 2 * y = 18, so y = 9.
The quick brown fox jumps over the lazy dog. The cat sat on the mat. A dog and a cat are friends.
Hello world! Hello there, how are you? I am fine, thank you. What is your name? My name is Zoo.
The user asks a question and the assistant gives an answer. The assistant thinks step by step.
user: what is the sum of 4 and 5? assistant: the sum of 4 and 5 is 9.
user: hello! assistant: hello, how can I help you today?
system: you are a helpful assistant. user: hi. assistant: hi there.
system user assistant user assistant system user assistant user assistant system user assistant
We add the numbers, then we check the result. If the result is right, the reward is one.
If the answer is wrong, the reward is zero. Learning from rewards is reinforcement learning.
Let us think about it. First, add the tens. Then add the ones. Finally, write the answer.
There are 3 apples and 4 oranges, so there are 7 fruits in total. Each box holds 6 eggs.
The sun is hot and the moon is cold. It is a good day to learn math and to read a book.
question: 11 + 22 = ? answer: 33. question: 45 - 15 = ? answer: 30. question: 8 * 8 = ? answer: 64.
""" + "user\nhi\nassistant\n\nhello\n\n" * 6

# The pre-tokenizer split of Qwen2 / Llama-3 tokenizer.json files (Qwen2's single-digit \p{N}),
# followed by byte-level mapping without GPT-2's own regex, as in those files.
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Added tokens, appended after the trained vocab (ids 291..299), like real Qwen/Llama-3 tokenizers.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|begin_of_text|>",
    "<|eot_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
]
NON_SPECIAL_ADDED = ["<think>", "</think>"]  # Qwen3 style: added tokens, special=False


def train_base_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_SIZE - len(SPECIAL_TOKENS) - len(NON_SPECIAL_ADDED),
        min_frequency=1,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repeat the corpus so merge counts are clear-cut (deterministic either way).
    tok.train_from_iterator([CORPUS] * 4, trainer=trainer)
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in NON_SPECIAL_ADDED])
    assert tok.get_vocab_size() == TOKENIZER_SIZE, tok.get_vocab_size()
    return tok


LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)

# Simplified Qwen3 template: ChatML, plus the enable_thinking switch of the real one.
QWEN3_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)


def make_tokenizer(base, family):
    """family: "llama" (adds <|begin_of_text|> via TemplateProcessing, Llama-3 style) or "qwen"."""
    tok = Tokenizer.from_str(base.to_str())
    if family == "llama":
        bos = "<|begin_of_text|>"
        bos_id = tok.token_to_id(bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, bos_id)]
        )
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok,
            bos_token=bos,
            eos_token="<|eot_id|>",
            chat_template=LLAMA3_TEMPLATE,
            model_max_length=131072,
            clean_up_tokenization_spaces=False,
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok,
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
            chat_template=CHATML_TEMPLATE if family == "qwen2" else QWEN3_TEMPLATE,
            model_max_length=131072,
            clean_up_tokenization_spaces=False,
            split_special_tokens=False,
        )
    return fast


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

COMMON = dict(
    vocab_size=VOCAB_SIZE,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    hidden_act="silu",
)


def init_weights(model, seed):
    """Every parameter random, seeded: weight matrices N(0, (1.2/sqrt(fan_in))^2) (std 0.15 for
    fan_in 64, 0.106 for fan_in 128), embeddings N(0, 0.25^2) (also the lm_head when tied), every
    RMSNorm weight U(0.6, 1.4), biases N(0, 0.1^2). Logits come out with std ~1.2 (untied) / ~2 (tied)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied lm_head shows up once, as embed_tokens
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(torch.rand(p.shape, generator=g) * 0.8 + 0.6)
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.25)
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * (1.2 / math.sqrt(p.shape[1])))
            else:
                raise AssertionError(f"unexpected parameter {name} {tuple(p.shape)}")


def build(kind, tok_ids):
    eot, bot = tok_ids["<|eot_id|>"], tok_ids["<|begin_of_text|>"]
    eos_qwen, pad_qwen = tok_ids["<|im_end|>"], tok_ids["<|endoftext|>"]
    if kind == "llama":
        cfg = LlamaConfig(
            **COMMON,
            max_position_embeddings=128,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            tie_word_embeddings=False,
            bos_token_id=bot,
            eos_token_id=eot,
            attention_bias=False,
            mlp_bias=False,
        )
        model, gen_eos, pad = LlamaForCausalLM(cfg), eot, None
    elif kind == "llama-tied-llama3":
        cfg = LlamaConfig(
            **COMMON,
            # head_dim 16, theta 5e5 -> wavelengths 2*pi*5e5^(i/8) = 6.3, 32.4, 167, ...; with
            # original_max_position_embeddings 64 (high_freq_wavelen 16, low_freq_wavelen 64)
            # the three llama3 bands (kept / smoothed / divided by factor) are all non-empty.
            max_position_embeddings=256,
            rms_norm_eps=1e-5,
            rope_parameters={
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
            tie_word_embeddings=True,
            bos_token_id=bot,
            eos_token_id=eot,
        )
        model, gen_eos, pad = LlamaForCausalLM(cfg), eot, None
    elif kind == "qwen2":
        cfg = Qwen2Config(
            **COMMON,
            # Room for the references' teacher templates (OPSD's reads about 280 tokens here).
            max_position_embeddings=512,
            rms_norm_eps=1e-6,
            rope_theta=1000000.0,
            tie_word_embeddings=False,
            use_sliding_window=False,
            bos_token_id=pad_qwen,
            eos_token_id=eos_qwen,
        )
        model, gen_eos, pad = Qwen2ForCausalLM(cfg), [eos_qwen, pad_qwen], pad_qwen
    elif kind == "qwen3":
        cfg = Qwen3Config(
            **COMMON,
            head_dim=32,
            max_position_embeddings=128,
            rms_norm_eps=1e-6,
            rope_theta=1000000.0,
            tie_word_embeddings=False,
            attention_bias=False,
            use_sliding_window=False,
            bos_token_id=pad_qwen,
            eos_token_id=eos_qwen,
        )
        model, gen_eos, pad = Qwen3ForCausalLM(cfg), [eos_qwen, pad_qwen], pad_qwen
    else:
        raise ValueError(kind)
    if pad is None:
        pad = eot  # Llama-3 has no pad token; generate only needs one for batch 1 bookkeeping
    return model, gen_eos, pad


# --------------------------------------------------------------------------------------------
# Reference outputs
# --------------------------------------------------------------------------------------------


def r8(x):
    return float(f"{x:.8g}")


def r8_list(t):
    if isinstance(t, torch.Tensor):
        t = t.tolist()
    if isinstance(t, list):
        return [r8_list(v) for v in t]
    return r8(t)


@torch.no_grad()
def forward_logits(model, ids):
    x = torch.tensor([ids], dtype=torch.long)
    out = model(input_ids=x, position_ids=torch.arange(len(ids))[None], use_cache=False)
    return out.logits[0].float()


@torch.no_grad()
def greedy(model, prompt_ids, eos, pad):
    x = torch.tensor([prompt_ids], dtype=torch.long)
    out = model.generate(
        input_ids=x,
        attention_mask=torch.ones_like(x),
        do_sample=False,
        max_new_tokens=MAX_NEW_TOKENS,
        eos_token_id=eos,
        pad_token_id=pad,
        output_scores=True,
        return_dict_in_generate=True,
        temperature=None,
        top_p=None,
        top_k=None,
    )
    new = out.sequences[0, len(prompt_ids) :].tolist()
    eos_set = set(eos if isinstance(eos, list) else [eos])
    margins = []
    for s in out.scores:
        top2 = torch.topk(s[0].float(), 2).values
        margins.append(r8((top2[0] - top2[1]).item()))
    # batch 1: generate stops right after the first eos, so there is no padding to strip
    assert not any(t in eos_set for t in new[:-1]), new
    return new, margins, bool(new and new[-1] in eos_set)


def case_texts(kind):
    if kind.startswith("llama"):
        return [
            ("short", "The answer is 42.", True),
            ("sentence", "What is 7 + 8?", True),
        ]
    return [
        ("short", "The answer is 42.", False),
        ("sentence", "What is 7 + 8?", False),
    ]


def make_expected(kind, model, fast, gen_eos, pad):
    cases = []
    for name, text, add_special in case_texts(kind):
        ids = fast(text, add_special_tokens=add_special)["input_ids"]
        cases.append(dict(name=name, text=text, add_special_tokens=add_special, input_ids=ids))
    chat_kwargs = {}
    if kind == "qwen3":
        chat_kwargs["enable_thinking"] = False
    messages = [{"role": "user", "content": "hi"}]
    chat_text = fast.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **chat_kwargs)
    chat_ids = fast(chat_text, add_special_tokens=False)["input_ids"]
    via_template = fast.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, **chat_kwargs)
    if isinstance(via_template, dict) or hasattr(via_template, "keys"):
        via_template = via_template["input_ids"]
    assert list(via_template) == chat_ids, (via_template, chat_ids)
    cases.append(
        dict(
            name="chat",
            text=chat_text,
            add_special_tokens=False,
            messages=messages,
            chat_template_kwargs=dict(add_generation_prompt=True, **chat_kwargs),
            input_ids=chat_ids,
        )
    )
    for c in cases:
        assert 5 <= len(c["input_ids"]) <= 14, (c["name"], len(c["input_ids"]))
        c["logits"] = r8_list(forward_logits(model, c["input_ids"]))

    # Greedy: the "sentence" prompt, and a prompt that makes generate stop at an eos within
    # MAX_NEW_TOKENS (searched deterministically over seeded random prompts) so stopping is tested.
    greedy_out = []
    p1 = cases[1]["input_ids"]
    new, margins, hit = greedy(model, p1, gen_eos, pad)
    greedy_out.append(dict(prompt_ids=p1, max_new_tokens=MAX_NEW_TOKENS, output_ids=new, hit_eos=hit,
                           step_top2_margins=margins))
    g = torch.Generator().manual_seed(1234)
    found = None
    for _ in range(3000):
        n = int(torch.randint(5, 9, (1,), generator=g))
        p = torch.randint(0, TOKENIZER_SIZE - len(SPECIAL_TOKENS) - len(NON_SPECIAL_ADDED), (n,), generator=g).tolist()
        new, margins, hit = greedy(model, p, gen_eos, pad)
        # stop strictly before max_new_tokens, so stopping at eos is distinguishable from the limit
        if hit and 2 <= len(new) < MAX_NEW_TOKENS and min(margins) > 1e-3:
            found = dict(prompt_ids=p, max_new_tokens=MAX_NEW_TOKENS, output_ids=new, hit_eos=hit,
                         step_top2_margins=margins)
            break
    assert found is not None, f"{kind}: no prompt found that stops at eos"
    greedy_out.append(found)
    for gr in greedy_out:
        assert min(gr["step_top2_margins"]) > 1e-4, gr  # no near-ties: greedy parity is well-posed

    lc = cases[1]
    logits = forward_logits(model, lc["input_ids"])
    lp = torch.log_softmax(logits / TEMPERATURE, dim=-1)
    tgt = torch.tensor(lc["input_ids"][1:])
    vals = lp[:-1].gather(1, tgt[:, None])[:, 0]

    inv_freq = model.model.rotary_emb.inv_freq.float()
    return dict(
        cases=cases,
        greedy_settings=dict(eos_token_id=gen_eos, pad_token_id=pad, do_sample=False,
                             max_new_tokens=MAX_NEW_TOKENS),
        greedy=greedy_out,
        logprobs_at_temperature=dict(case=lc["name"], temperature=TEMPERATURE, input_ids=lc["input_ids"],
                                     values=r8_list(vals)),
        rope_inv_freq=r8_list(inv_freq),
    )


# --------------------------------------------------------------------------------------------
# Config key style
# --------------------------------------------------------------------------------------------


def to_v4_style(path):
    """Rewrite a transformers-5 config.json (rope_parameters, dtype) in the 4.x key style
    (rope_theta + rope_scaling, torch_dtype)."""
    with open(path) as f:
        cfg = json.load(f)
    rp = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rp.pop("rope_theta")
    cfg["rope_scaling"] = None if rp.get("rope_type", "default") == "default" else rp
    cfg["torch_dtype"] = cfg.pop("dtype")
    with open(path, "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------------
# JSON writing (arrays of numbers on one line)
# --------------------------------------------------------------------------------------------


def dump(obj, indent=0):
    pad = "  " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad}  {json.dumps(k)}: {dump(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return "[" + ",".join(json.dumps(v) for v in obj) + "]"
        items = [f"{pad}  {dump(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(obj)


# --------------------------------------------------------------------------------------------


FIXTURES = [
    # name, seed, tokenizer family, weights dtype, config key style
    ("llama", 11, "llama", torch.float32, "v4"),
    ("llama-tied-llama3", 22, "llama", torch.float32, "v5"),
    ("qwen2", 33, "qwen2", torch.bfloat16, "v4"),
    ("qwen3", 44, "qwen3", torch.float32, "v5"),
]


def llama3_bands(model):
    rp = model.config.rope_parameters
    dim = model.config.head_dim
    base = rp["rope_theta"]
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    wavelen = 2 * math.pi / inv
    low_w = rp["original_max_position_embeddings"] / rp["low_freq_factor"]
    high_w = rp["original_max_position_embeddings"] / rp["high_freq_factor"]
    kept = int((wavelen < high_w).sum())
    scaled = int((wavelen > low_w).sum())
    smooth = len(inv) - kept - scaled
    changed = int((model.model.rotary_emb.inv_freq != inv).sum())
    return kept, smooth, scaled, changed, inv


def main():
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    base_tok = train_base_tokenizer()
    tok_ids = {t: base_tok.token_to_id(t) for t in SPECIAL_TOKENS + NON_SPECIAL_ADDED}
    print("added token ids:", tok_ids)
    os.makedirs(OUT, exist_ok=True)

    for name, seed, family, wdtype, style in FIXTURES:
        folder = os.path.join(OUT, name)
        if os.path.exists(folder):
            shutil.rmtree(folder)
        os.makedirs(folder)
        torch.manual_seed(seed)
        model, gen_eos, pad = build(name, tok_ids)
        init_weights(model, seed)
        model.eval()
        fast = make_tokenizer(base_tok, family)

        # Save weights (in the storage dtype) and config.
        model.to(wdtype).save_pretrained(folder, safe_serialization=True)
        model.to(torch.float32)
        with open(os.path.join(folder, "config.json")) as f:
            native = f.read()
        print(f"\n== {name}: config.json as transformers {transformers.__version__} writes it:\n{native}")
        if style == "v4":
            to_v4_style(os.path.join(folder, "config.json"))
        GenerationConfig(
            bos_token_id=model.config.bos_token_id,
            eos_token_id=gen_eos,
            pad_token_id=pad if name.startswith("qwen") else None,
            do_sample=False,
        ).save_pretrained(folder)
        fast.save_pretrained(folder, save_jinja_files=False)

        # Reference model: reload what was saved (so qwen2 uses the bf16-rounded weights) in f32.
        ref = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
        ref.eval()
        if wdtype == torch.float32:
            for (n1, p1), (n2, p2) in zip(model.state_dict().items(), ref.state_dict().items()):
                assert n1 == n2 and torch.equal(p1, p2), n1
        else:
            for (n1, p1), (n2, p2) in zip(model.state_dict().items(), ref.state_dict().items()):
                assert n1 == n2 and torch.equal(p1.to(wdtype).float(), p2), n1
        ref_tok = AutoTokenizer.from_pretrained(folder)

        exp = make_expected(name, ref, ref_tok, gen_eos, pad)
        exp = dict(
            fixture=name,
            architecture=type(ref).__name__,
            transformers_version=transformers.__version__,
            torch_version=torch.__version__,
            weights_dtype=str(wdtype).replace("torch.", ""),
            compute_dtype="float32",
            config_key_style="transformers-4.x" if style == "v4" else "transformers-5.x",
            tokenizer_size=len(ref_tok),
            vocab_size=ref.config.vocab_size,
            **exp,
        )
        with open(os.path.join(folder, "expected.json"), "w") as f:
            f.write(dump(exp) + "\n")

        if name == "llama-tied-llama3":
            kept, smooth, scaled, changed, inv = llama3_bands(ref)
            print(f"llama3 rope: head_dim {ref.config.head_dim}, {len(inv)} inverse frequencies: "
                  f"{kept} kept (wavelen < high_freq_wavelen), {smooth} smoothed, {scaled} divided by factor; "
                  f"{changed} changed by the scaling")
            print("  unscaled:", [f"{v:.6g}" for v in inv.tolist()])
            print("  scaled:  ", [f"{v:.6g}" for v in ref.model.rotary_emb.inv_freq.tolist()])
            assert kept > 0 and smooth > 0 and scaled > 0 and changed == smooth + scaled

    verify_all()


def verify_all():
    print("\n== verification: reload each folder with AutoModelForCausalLM / AutoTokenizer")
    for name, _seed, family, wdtype, style in FIXTURES:
        folder = os.path.join(OUT, name)
        with open(os.path.join(folder, "expected.json")) as f:
            exp = json.load(f)
        with open(os.path.join(folder, "config.json")) as f:
            raw = json.load(f)
        if style == "v4":
            assert "rope_theta" in raw and "rope_scaling" in raw and "torch_dtype" in raw, raw.keys()
            assert "rope_parameters" not in raw and "dtype" not in raw
        else:
            assert "rope_parameters" in raw and "dtype" in raw, raw.keys()
            assert "rope_theta" not in raw and "rope_scaling" not in raw and "torch_dtype" not in raw
        # Default load (dtype from the config, default attention implementation); qwen2 is bf16 on
        # disk, so upcast it as the reference did.
        kw = {} if wdtype == torch.float32 else dict(dtype=torch.float32)
        model = AutoModelForCausalLM.from_pretrained(folder, **kw).eval()
        assert next(model.parameters()).dtype == torch.float32
        tok = AutoTokenizer.from_pretrained(folder)
        assert len(tok) == exp["tokenizer_size"] == TOKENIZER_SIZE
        assert model.config.vocab_size == exp["vocab_size"] == VOCAB_SIZE
        if name == "llama-tied-llama3":
            assert model.config.rope_parameters["rope_type"] == "llama3"
            assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
        if name == "qwen2":
            import safetensors.torch

            sd = safetensors.torch.load_file(os.path.join(folder, "model.safetensors"))
            assert all(v.dtype == torch.bfloat16 for v in sd.values())
            assert all(sd[f"model.layers.{i}.self_attn.{p}_proj.bias"].abs().min() > 0
                       for i in range(2) for p in "qkv")
            assert not any("o_proj.bias" in k for k in sd)
        worst = 0.0
        for c in exp["cases"]:
            if c["name"] == "chat":
                ids = tok.apply_chat_template(c["messages"], tokenize=False, **c["chat_template_kwargs"])
                assert ids == c["text"], (ids, c["text"])
            ids = tok(c["text"], add_special_tokens=c["add_special_tokens"])["input_ids"]
            assert ids == c["input_ids"], (name, c["name"], ids, c["input_ids"])
            got = forward_logits(model, ids)
            want = torch.tensor(c["logits"])
            assert got.shape == want.shape == (len(ids), VOCAB_SIZE)
            d = (got - want).abs().max().item()
            worst = max(worst, d)
            assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (name, c["name"], d)
        st = exp["greedy_settings"]
        for gr in exp["greedy"]:
            new, _m, hit = greedy(model, gr["prompt_ids"], st["eos_token_id"], st["pad_token_id"])
            assert new == gr["output_ids"] and hit == gr["hit_eos"], (name, new, gr["output_ids"])
        lt = exp["logprobs_at_temperature"]
        lg = forward_logits(model, lt["input_ids"])
        lp = torch.log_softmax(lg / lt["temperature"], -1)[:-1].gather(1, torch.tensor(lt["input_ids"][1:])[:, None])[:, 0]
        assert torch.allclose(lp, torch.tensor(lt["values"]), rtol=1e-5, atol=1e-5)
        gc = GenerationConfig.from_pretrained(folder)
        assert gc.eos_token_id == st["eos_token_id"]
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        files = ", ".join(f"{f} {os.path.getsize(os.path.join(folder, f))}" for f in sorted(os.listdir(folder)))
        assert size < 1_000_000, size
        lens = [len(c["input_ids"]) for c in exp["cases"]]
        print(f"{name}: OK (max |logit diff| {worst:.2e}, case lengths {lens}, greedy "
              f"{[(len(g['output_ids']), g['hit_eos']) for g in exp['greedy']]}); {size} bytes: {files}")


if __name__ == "__main__":
    main()
