"""What a VRAM budget needs from a GGUF file: its shape and its tensor table, nothing else.

The reader needs only the header and the tensor table, so a sparse file whose tensor data was
never written reads the same as the real model (`llmops.testing.gguf_shapes` writes such files).
`gguf` is imported lazily: the package must import on machines that lack it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

# Architectures whose graph is the one the compute-buffer model was measured on: a dense
# decoder block of attention (GQA, RoPE) and a gated FFN.  Anything else gets its compute term
# marked unknown instead of a number that merely looks right.
LLAMA_LIKE_ARCHS = frozenset({"llama", "mistral", "qwen2", "qwen3", "granite", "smollm3"})
# Architectures whose KV cache is not n_ctx x layers x heads (recurrent state, sliding windows).
NON_STANDARD_KV_ARCHS = frozenset({"mamba", "mamba2", "rwkv6", "rwkv7", "jamba", "falcon-h1",
                                   "gemma2", "gemma3", "gemma3n", "cohere2", "lfm2", "plamo2"})


@dataclass
class ModelInfo:
    """What the budget needs from a GGUF file."""

    path: str
    arch: str
    n_layer: int
    n_ctx_train: int | None
    n_embd: int
    n_head: int
    n_head_kv: list[int]          # per layer (GGUF allows an array)
    head_dim_k: int
    head_dim_v: int
    n_vocab: int
    n_ff: int
    layer_bytes: list[int]        # bytes of blk.<i>.* tensors, per layer
    input_bytes: int              # token_embd.* (llama.cpp keeps the input layer on the CPU)
    output_bytes: int             # output_norm, output.weight and other non-layer tensors
    tied_output: bool             # no output.weight: llama.cpp duplicates token_embd for output
    token_embd_bytes: int
    file_bytes: int
    layer_max_tensor_bytes: list[int] = field(default_factory=list)  # largest blk.<i> tensor
    weight_types: list[str] = field(default_factory=list)            # types of 2-D tensors
    causal: bool = True           # False: an encoder (BERT), served with --embeddings

    @property
    def encoder(self) -> bool:
        """A non-causal embedding model: no KV cache, no output head (llama.cpp pools instead)."""
        return not self.causal

    @property
    def total_tensor_bytes(self) -> int:
        return sum(self.layer_bytes) + self.input_bytes + self.output_bytes


def _field_value(field_: Any) -> Any:
    """A GGUF field's value across gguf versions (`contents()` appeared in 0.11)."""
    if hasattr(field_, "contents"):
        return field_.contents()
    from gguf import GGUFValueType  # pragma: no cover - old gguf only

    parts, data, types = field_.parts, field_.data, field_.types  # pragma: no cover
    if types[0] == GGUFValueType.STRING:  # pragma: no cover
        return bytes(parts[data[0]]).decode("utf-8", "replace")
    if types[0] == GGUFValueType.ARRAY:  # pragma: no cover
        if types[-1] == GGUFValueType.STRING:
            return [bytes(parts[i]).decode("utf-8", "replace") for i in data]
        return [parts[i][0].item() for i in data]
    return parts[data[0]][0].item()  # pragma: no cover


def _tensor_bytes(t: Any) -> int:
    n = getattr(t, "n_bytes", None)
    if n is None:  # pragma: no cover - old gguf
        n = t.data.nbytes
    return int(n)


def read_model_info(path: Path | str) -> ModelInfo:
    """Read a GGUF file's metadata and tensor table.  Raises ConfigError on a missing or
    unreadable file, with one line saying which.

    Both llama-servers often run the same file, and reading one takes seconds: cache by
    (path, size, mtime) so a changed file is read again."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise ConfigError(f"model file {p} does not exist") from None
    if not p.is_file():
        raise ConfigError(f"model file {p} is not a file")
    with p.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise ConfigError(f"model file {p} is not a GGUF file (it starts with {magic!r}, "
                          "not b'GGUF')")
    return _read_model_info(str(p.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _read_model_info(path: str, _size: int, _mtime_ns: int) -> ModelInfo:
    p = Path(path)
    reader = _open_reader(p)
    fields = _read_fields(reader)
    arch = str(fields.get("general.architecture", "llama"))

    def kv(name: str, default: Any = None) -> Any:
        return fields.get(f"{arch}.{name}", default)

    n_layer = kv("block_count")
    if n_layer is None:
        raise ConfigError(f"GGUF file {p} has no {arch}.block_count")
    n_layer = int(n_layer)
    n_embd = int(kv("embedding_length", 0))
    hc = kv("attention.head_count", 0)
    n_head = int(max(hc) if isinstance(hc, list) else hc)
    hkv = kv("attention.head_count_kv", n_head)
    n_head_kv = [int(x) for x in hkv] if isinstance(hkv, list) else [int(hkv)] * n_layer
    if len(n_head_kv) < n_layer:
        n_head_kv += [n_head_kv[-1] if n_head_kv else n_head] * (n_layer - len(n_head_kv))
    head_dim = (n_embd // n_head) if n_head else 0
    n_ff_raw = kv("feed_forward_length", 0)
    t = _tensor_table(reader, n_layer)
    n_vocab = kv("vocab_size")
    if n_vocab is None:
        toks = fields.get("tokenizer.ggml.tokens")
        n_vocab = len(toks) if isinstance(toks, list) else (t.vocab_from_tensor or 0)
    n_ctx_train = kv("context_length")
    return ModelInfo(
        path=str(p), arch=arch, n_layer=n_layer,
        n_ctx_train=int(n_ctx_train) if n_ctx_train is not None else None,
        n_embd=n_embd, n_head=n_head, n_head_kv=n_head_kv,
        head_dim_k=int(kv("attention.key_length", head_dim)),
        head_dim_v=int(kv("attention.value_length", head_dim)), n_vocab=int(n_vocab),
        n_ff=int(max(n_ff_raw) if isinstance(n_ff_raw, list) else n_ff_raw),
        layer_bytes=t.layer_bytes, input_bytes=t.input_bytes, output_bytes=t.output_bytes,
        tied_output=not t.has_output, token_embd_bytes=t.token_embd_bytes,
        file_bytes=p.stat().st_size, layer_max_tensor_bytes=t.layer_max,
        weight_types=sorted(t.weight_types), causal=bool(kv("attention.causal", True)),
    )


def _open_reader(p: Path) -> Any:
    try:
        from gguf import GGUFReader
    except ImportError as exc:
        raise ConfigError(f"cannot read {p}: the 'gguf' package is not installed") from exc
    try:
        return GGUFReader(str(p), "r")
    except Exception as exc:  # gguf raises ValueError/OSError/struct errors on bad files
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot read GGUF file {p}: {first}") from None


def _read_fields(reader: Any) -> dict[str, Any]:
    # The tokenizer's arrays (scores, merges, token types) are large and the budget needs none of
    # them; the token list is kept: its length is the vocabulary when the model states none.
    fields: dict[str, Any] = {}
    for key, f in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key != "tokenizer.ggml.tokens":
            continue
        try:
            fields[key] = _field_value(f)
        except Exception:
            continue
    return fields


@dataclass
class _Tensors:
    """The tensor table summed the way llama.cpp places it: per repeating layer, input, output."""

    layer_bytes: list[int]
    layer_max: list[int]
    input_bytes: int = 0
    output_bytes: int = 0
    token_embd_bytes: int = 0
    has_output: bool = False
    vocab_from_tensor: int | None = None
    weight_types: set[str] = field(default_factory=set)


def _tensor_table(reader: Any, n_layer: int) -> _Tensors:
    t = _Tensors(layer_bytes=[0] * n_layer, layer_max=[0] * n_layer)
    for tensor in reader.tensors:
        name = tensor.name
        nb = _tensor_bytes(tensor)
        shape = [int(x) for x in tensor.shape]
        if len([d for d in shape if d > 1]) >= 2:
            t.weight_types.add(getattr(tensor.tensor_type, "name", str(tensor.tensor_type)))
        m = re.match(r"blk\.(\d+)\.", name)
        if m and int(m.group(1)) < n_layer:
            i = int(m.group(1))
            t.layer_bytes[i] += nb
            t.layer_max[i] = max(t.layer_max[i], nb)
        elif name.startswith("token_embd."):
            t.input_bytes += nb
            if name == "token_embd.weight":
                t.token_embd_bytes = nb
                t.vocab_from_tensor = max(shape) if shape else None
        else:
            if name == "output.weight":
                t.has_output = True
            t.output_bytes += nb
    return t
