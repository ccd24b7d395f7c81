"""A tiny BERT sentence-embedding checkpoint, built with numpy, and a numpy reference forward pass.

Shared by tests/test_convert_bert.py (the converter's output, read back with gguf's reader) and
tests/e2e/test_convert_bert_llama.py (the same model served by the real llama-server).  The folder
has the shape of a real sentence-transformers download (all-MiniLM-L6-v2 was the model copied):
config.json, model.safetensors under Hugging Face BertModel names, tokenizer.json (WordPiece, with
the [CLS] $A [SEP] template), tokenizer_config.json, special_tokens_map.json, modules.json and
1_Pooling/config.json.  The reference forward pass is written from the BERT paper's equations, not
from llama.cpp, so agreement with llama-server is evidence that the converted GGUF means the same
model, not that two copies of one mistake agree.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Ids 0..4 are BERT's special tokens, but NOT at bert-base-uncased's ids (101 [CLS], 102 [SEP],
# 100 [UNK], 103 [MASK]), which llama.cpp assumes when a GGUF names none: a converter that forgot
# to write them would send id 101 into a 40-row embedding table.
VOCAB: list[str] = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "a", "cat", "dog", "sat", "on", "mat", "play", "run", "jump", "house", "tree", "red",
    "blue", "green", "big", "small", "is", "and", "of", "to", ".", ",", "!", "?",
    "##s", "##ed", "##ing", "##er", "##ly", "##y", "un", "##happy", "happy", "[unused0]",
]
SPECIALS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
ID: dict[str, int] = {t: i for i, t in enumerate(VOCAB)}

# A sentence of vocabulary words, and its WordPiece ids worked out by hand: lower-cased, split on
# whitespace and punctuation, greedy longest-match with "##" continuations, [CLS] first, [SEP] last.
SENTENCE = "The cat played on the big red mat, and the dogs jumped!"
SENTENCE_IDS: list[int] = [ID[t] for t in (
    "[CLS]", "the", "cat", "play", "##ed", "on", "the", "big", "red", "mat", ",", "and", "the",
    "dog", "##s", "jump", "##ed", "!", "[SEP]")]


@dataclass(frozen=True)
class TinyConfig:
    """The hyper-parameters config.json carries; small enough that a forward pass takes a moment."""

    hidden: int = 32
    layers: int = 2
    heads: int = 4
    intermediate: int = 64
    max_position: int = 64
    type_vocab: int = 2
    vocab: int = len(VOCAB)
    eps: float = 1e-12
    hidden_act: str = "gelu"

    def as_json(self) -> dict[str, object]:
        return {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": self.hidden,
                "num_hidden_layers": self.layers, "num_attention_heads": self.heads,
                "intermediate_size": self.intermediate, "max_position_embeddings": self.max_position,
                "type_vocab_size": self.type_vocab, "vocab_size": self.vocab, "layer_norm_eps": self.eps,
                "hidden_act": self.hidden_act, "position_embedding_type": "absolute", "pad_token_id": 0,
                "attention_probs_dropout_prob": 0.1, "hidden_dropout_prob": 0.1, "initializer_range": 0.02}


@dataclass
class Checkpoint:
    """A built checkpoint folder and the exact float32 weights (HF names, no prefix) it holds."""

    path: Path
    config: TinyConfig
    weights: dict[str, np.ndarray] = field(default_factory=dict)


def random_weights(cfg: TinyConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """HF BertModel weights.  Scales are well above BERT's 0.02 init so that attention is far from
    uniform and the layers do real work: a wrong pooling, a transposed matrix or a swapped
    tensor then moves the output vector a long way, which is what makes the cosine check sharp."""
    rng = np.random.default_rng(seed)

    def mat(rows: int, cols: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)

    def vec(n: int, scale: float = 0.1, around: float = 0.0) -> np.ndarray:
        return (around + rng.standard_normal(n) * scale).astype(np.float32)

    h, i = cfg.hidden, cfg.intermediate
    w: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": mat(cfg.vocab, h, 1.0),
        "embeddings.position_embeddings.weight": mat(cfg.max_position, h, 0.5),
        "embeddings.token_type_embeddings.weight": mat(cfg.type_vocab, h, 0.5),
        "embeddings.LayerNorm.weight": vec(h, 0.1, 1.0),
        "embeddings.LayerNorm.bias": vec(h),
    }
    for n in range(cfg.layers):
        p = f"encoder.layer.{n}."
        for part in ("query", "key", "value"):
            w[f"{p}attention.self.{part}.weight"] = mat(h, h, 0.5)
            w[f"{p}attention.self.{part}.bias"] = vec(h)
        w[f"{p}attention.output.dense.weight"] = mat(h, h)
        w[f"{p}attention.output.dense.bias"] = vec(h)
        w[f"{p}attention.output.LayerNorm.weight"] = vec(h, 0.1, 1.0)
        w[f"{p}attention.output.LayerNorm.bias"] = vec(h)
        w[f"{p}intermediate.dense.weight"] = mat(i, h)
        w[f"{p}intermediate.dense.bias"] = vec(i)
        w[f"{p}output.dense.weight"] = mat(h, i)
        w[f"{p}output.dense.bias"] = vec(h)
        w[f"{p}output.LayerNorm.weight"] = vec(h, 0.1, 1.0)
        w[f"{p}output.LayerNorm.bias"] = vec(h)
    return w


def extra_tensors(cfg: TinyConfig) -> dict[str, np.ndarray]:
    """What a BertModel checkpoint also carries and the converter must drop: the NSP pooler (not
    the sentence-transformers pooling) and the position-id buffer (int64)."""
    rng = np.random.default_rng(99)
    return {"pooler.dense.weight": rng.standard_normal((cfg.hidden, cfg.hidden)).astype(np.float32),
            "pooler.dense.bias": np.zeros(cfg.hidden, np.float32),
            "embeddings.position_ids": np.arange(cfg.max_position, dtype=np.int64)[None, :]}


def tokenizer_json() -> dict[str, object]:
    """tokenizer.json as `tokenizers` writes it for a BertTokenizerFast (all-MiniLM-L6-v2's shape)."""
    def tpl(item: str, type_id: int = 0) -> dict[str, object]:
        if item.startswith("$"):
            return {"Sequence": {"id": item[1:], "type_id": type_id}}
        return {"SpecialToken": {"id": item, "type_id": type_id}}

    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": ID[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for t in SPECIALS],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [tpl("[CLS]"), tpl("$A"), tpl("[SEP]")],
            "pair": [tpl("[CLS]"), tpl("$A"), tpl("[SEP]"), tpl("$B", 1), tpl("[SEP]", 1)],
            "special_tokens": {t: {"id": t, "ids": [ID[t]], "tokens": [t]} for t in ("[CLS]", "[SEP]")},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": dict(ID)},
    }


def pooling_config(hidden: int, **modes: bool) -> dict[str, object]:
    """1_Pooling/config.json; mean pooling unless `modes` says otherwise."""
    cfg: dict[str, object] = {"word_embedding_dimension": hidden, "pooling_mode_cls_token": False,
                              "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
                              "pooling_mode_mean_sqrt_len_tokens": False,
                              "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": False,
                              "include_prompt": True}
    cfg.update({f"pooling_mode_{k}": v for k, v in modes.items()})
    return cfg


MODULES: list[dict[str, object]] = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def build_checkpoint(path: Path, cfg: TinyConfig | None = None, *, prefix: str = "", seed: int = 0,
                     pooling: str = "mean", tokenizer: str = "json") -> Checkpoint:
    """Write a sentence-transformers BERT folder at `path`.  `prefix` ("bert.") names the tensors as a
    BertFor* checkpoint does; `pooling` is "mean" or "cls"; `tokenizer` is "json" (tokenizer.json
    with its config files) or "vocab.txt" (the older slow-tokenizer folder, nothing else)."""
    from safetensors.numpy import save_file

    cfg = cfg or TinyConfig()
    path.mkdir(parents=True, exist_ok=True)
    weights = random_weights(cfg, seed)
    save_file({prefix + k: v for k, v in {**weights, **extra_tensors(cfg)}.items()},
              str(path / "model.safetensors"))
    write_json(path / "config.json", cfg.as_json())
    if tokenizer == "json":
        write_json(path / "tokenizer.json", tokenizer_json())
        names = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                 "mask_token": "[MASK]"}
        write_json(path / "tokenizer_config.json", {"do_lower_case": True, "tokenize_chinese_chars": True,
                                                    "strip_accents": None, "model_max_length": cfg.max_position,
                                                    "tokenizer_class": "BertTokenizer", **names})
        write_json(path / "special_tokens_map.json", names)
    elif tokenizer == "vocab.txt":
        (path / "vocab.txt").write_text("".join(t + "\n" for t in VOCAB), encoding="utf-8")
    else:
        raise ValueError(tokenizer)
    write_json(path / "modules.json", MODULES)
    write_json(path / "1_Pooling" / "config.json",
               pooling_config(cfg.hidden, mean_tokens=pooling == "mean", cls_token=pooling == "cls"))
    return Checkpoint(path=path, config=cfg, weights=weights)


# ---- the reference forward pass --------------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x: np.ndarray) -> np.ndarray:
    """BERT's GELU, the exact erf form (llama.cpp uses the tanh approximation: the small gap is one
    reason the e2e threshold is a cosine, not equality)."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def encode(weights: dict[str, np.ndarray], cfg: TinyConfig, ids: list[int]) -> np.ndarray:
    """Token states (n, hidden) of BertModel for one sequence, in float64.  One sequence, so no
    attention mask; token type 0 throughout, as llama.cpp uses."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}

    def linear(x: np.ndarray, name: str) -> np.ndarray:   # HF Linear: weight is (out, in)
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    n, d = len(ids), cfg.hidden // cfg.heads
    x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], cfg.eps)
    for layer in range(cfg.layers):
        p = f"encoder.layer.{layer}."
        q, k, v = (linear(x, f"{p}attention.self.{part}").reshape(n, cfg.heads, d).transpose(1, 0, 2)
                   for part in ("query", "key", "value"))
        att = softmax(q @ k.transpose(0, 2, 1) / math.sqrt(d))            # (heads, n, n)
        ctx = (att @ v).transpose(1, 0, 2).reshape(n, cfg.hidden)
        x = layer_norm(linear(ctx, f"{p}attention.output.dense") + x,
                       w[f"{p}attention.output.LayerNorm.weight"], w[f"{p}attention.output.LayerNorm.bias"], cfg.eps)
        ff = linear(gelu(linear(x, f"{p}intermediate.dense")), f"{p}output.dense")
        x = layer_norm(ff + x, w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"], cfg.eps)
    return x


def reference_embedding(weights: dict[str, np.ndarray], cfg: TinyConfig, ids: list[int], *,
                        pooling: str = "mean", normalize: bool = True) -> np.ndarray:
    """The sentence-transformers vector: pool the token states ([CLS] and [SEP] included, as the
    attention mask includes them), then L2-normalise."""
    states = encode(weights, cfg, ids)
    vec = states.mean(0) if pooling == "mean" else states[0] if pooling == "cls" else states[-1]
    return vec / np.linalg.norm(vec) if normalize else vec


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
