"""Sparse GGUF files with real model shapes, for planning and tests without the weights.

llama.cpp allocates by shape and type, not by value, and the budget reads only the header and
the tensor table.  So a file whose tensor data is never written (a sparse file: the data region
is a hole) plans exactly like the real model.  The layout follows ../shared/gpu-truth's
`mkzero-gguf.py`, which made the models the real H200 figures were measured with.

    write_sparse_gguf(path, LLAMA_SHAPES["l1b-q8"])
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LlamaShape:
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    wtype: str                  # F16 | Q8_0 | Q4_0 | ... (a ggml type name)
    tie: bool = True            # no output.weight: token_embd doubles as the output matrix
    n_vocab: int = 128256       # llama-bpe (Llama 3)
    n_ctx_train: int = 8192
    arch: str = "llama"


# The models of ../shared/gpu-truth (README "Models").
LLAMA_SHAPES: dict[str, LlamaShape] = {
    "l1b-q8": LlamaShape(2048, 16, 32, 8, 8192, "Q8_0"),
    "l3b-f16": LlamaShape(3072, 28, 24, 8, 8192, "F16"),
    "l3b-q4": LlamaShape(3072, 28, 24, 8, 8192, "Q4_0"),
    "l8b-q4": LlamaShape(4096, 32, 32, 8, 14336, "Q4_0", tie=False),
}


def write_sparse_gguf(path: Path | str, shape: LlamaShape, vocab: Path | str | None = None) -> Path:
    """Write `path` as a GGUF of `shape` whose tensor data region is a hole (never written).

    The hole reads as zeros, so with `vocab` (a vocab-only GGUF such as llama.cpp's
    models/ggml-vocab-llama-bpe.gguf, whose tokenizer is copied) the file is also a zero-weight
    model a real llama-server loads, as `mkzero-gguf.py` makes, without writing gigabytes."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter

    out = Path(path)
    q = GGMLQuantizationType[shape.wtype]
    f32 = GGMLQuantizationType.F32
    w = GGUFWriter(str(out), shape.arch)
    if vocab is not None:
        for name, f in GGUFReader(str(vocab)).fields.items():
            if not name.startswith("tokenizer."):
                continue
            vtype = f.types[0]
            if vtype == GGUFValueType.ARRAY:
                w.add_key_value(name, f.contents(), vtype, sub_type=f.types[-1])
            else:
                w.add_key_value(name, f.contents(), vtype)
    head_dim = shape.n_embd // shape.n_head
    w.add_name(f"sparse-{shape.arch}-{shape.n_embd}x{shape.n_layer}-{shape.wtype}")
    w.add_context_length(shape.n_ctx_train)
    w.add_embedding_length(shape.n_embd)
    w.add_block_count(shape.n_layer)
    w.add_feed_forward_length(shape.n_ff)
    w.add_head_count(shape.n_head)
    w.add_head_count_kv(shape.n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(shape.n_vocab)

    def tensor(name: str, rows: int, cols: int | None, qtype: GGMLQuantizationType) -> None:
        # numpy order: (rows, cols), cols contiguous (ggml ne0 = cols)
        dims = (rows,) if cols is None else (rows, cols)
        n = rows * (cols or 1)
        bs, ts = GGML_QUANT_SIZES[qtype]
        w.add_tensor_info(name, dims, np.dtype(np.float32), n // bs * ts, raw_dtype=qtype)

    kv_dim = head_dim * shape.n_head_kv
    tensor("token_embd.weight", shape.n_vocab, shape.n_embd, q)
    tensor("output_norm.weight", shape.n_embd, None, f32)
    if not shape.tie:
        tensor("output.weight", shape.n_vocab, shape.n_embd, q)
    for i in range(shape.n_layer):
        p = f"blk.{i}."
        tensor(p + "attn_norm.weight", shape.n_embd, None, f32)
        tensor(p + "ffn_norm.weight", shape.n_embd, None, f32)
        tensor(p + "attn_q.weight", shape.n_embd, shape.n_embd, q)
        tensor(p + "attn_k.weight", kv_dim, shape.n_embd, q)
        tensor(p + "attn_v.weight", kv_dim, shape.n_embd, q)
        tensor(p + "attn_output.weight", shape.n_embd, shape.n_embd, q)
        tensor(p + "ffn_gate.weight", shape.n_ff, shape.n_embd, q)
        tensor(p + "ffn_up.weight", shape.n_ff, shape.n_embd, q)
        tensor(p + "ffn_down.weight", shape.n_embd, shape.n_ff, q)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    assert w.fout is not None
    fout = w.fout[0] if isinstance(w.fout, list) else w.fout
    fout.flush()
    header_end = fout.tell()
    w.close()
    align = w.data_alignment
    offset = (header_end + align - 1) // align * align
    data = sum((ti.nbytes + align - 1) // align * align for ti in w.tensors[0].values())
    os.truncate(out, offset + data)       # the hole: no data byte is ever written
    return out
