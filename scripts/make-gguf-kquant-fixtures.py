#!/usr/bin/env python3
"""Writes tests/fixtures/gguf/kquants.gguf and kquants.json: one tensor of each K-quant type
(Q2_K..Q6_K, 2 rows x 512 columns = 4 super-blocks) in a Qwen2-named GGUF, and gguf-py's own
dequantization of each (`gguf.quants.dequantize`), for the Rust parity test
(models/llm/src/gguf/tests.rs, `k_quants_match_gguf_py_bit_for_bit`). Rerun only to regenerate
them (and commit the result):

    /root/.cache/zoo/libtorch-2.9.0/bin/python scripts/make-gguf-kquant-fixtures.py

Needs gguf (0.19.0 was used) and numpy. gguf-py cannot quantize to K types, so the blocks are
random bytes (every bit pattern of the packed scales and quants occurs) with finite f16 super-block
scales `d`/`dmin` written over their fields.
"""

import json
import os

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "gguf")
ROWS, COLS = 2, 512
# (GGUF tensor name, type, byte offsets of the f16 super-block scales in a block), the offsets
# from gguf-py's `dequantize_blocks` splits.
TENSORS = [
    ("token_embd.weight", T.Q2_K, [80, 82]),
    ("output.weight", T.Q3_K, [108]),
    ("blk.0.ffn_up.weight", T.Q4_K, [0, 2]),
    ("blk.0.ffn_down.weight", T.Q5_K, [0, 2]),
    ("blk.0.ffn_gate.weight", T.Q6_K, [208]),
]


def main():
    rng = np.random.default_rng(22)
    os.makedirs(OUT, exist_ok=True)
    writer = GGUFWriter(os.path.join(OUT, "kquants.gguf"), "qwen2")
    expected = {}
    for name, qtype, scale_offsets in TENSORS:
        block, type_size = GGML_QUANT_SIZES[qtype]
        n_blocks = ROWS * COLS // block
        raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
        for off in scale_offsets:
            scales = (rng.standard_normal(n_blocks) * 0.02).astype(np.float16)
            raw[:, off : off + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
        raw = raw.reshape(ROWS, COLS // block * type_size)
        values = dequantize(raw, qtype)
        assert values.shape == (ROWS, COLS) and np.isfinite(values).all()
        writer.add_tensor(name, raw, raw_dtype=qtype)
        # float32 -> Python float is exact, and so is the JSON text of a float.
        expected[name] = {"type": qtype.name, "shape": [ROWS, COLS], "values": [float(v) for v in values.astype(np.float32).ravel()]}
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with open(os.path.join(OUT, "kquants.json"), "w") as f:
        json.dump(expected, f)
        f.write("\n")


if __name__ == "__main__":
    main()
