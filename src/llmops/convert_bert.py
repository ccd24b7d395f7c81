"""A BERT-family sentence-embedding checkpoint (safetensors) becomes a GGUF that llama-server serves.

llama.cpp's own `convert_hf_to_gguf.py` imports torch unconditionally, and the `gguf` package holds
only the reader and writer.  A BERT encoder needs neither torch nor transformers to convert: the
weights are renamed (`gguf.get_tensor_name_map`), the WordPiece vocabulary is written with
llama.cpp's phantom-space convention, and the sentence-transformers folder says how to pool
(`1_Pooling/config.json`) and whether to normalise (`modules.json`).  This module does what
`convert_hf_to_gguf.py`'s `BertModel` does, with numpy, `safetensors` and `gguf` only.

Pooling is written to the GGUF (`bert.pooling_type`), so llama-server pools as the model was trained
without a flag; the wrong pooling silently gives vectors at cosine 0.5-0.7 of the right ones.  For
the same reason what llama-server would run differently from the checkpoint is refused, not
converted: another pooling, an activation other than GELU, a cased tokenizer (llama.cpp lower-cases
all input), a sentence-transformers module after pooling.  The special token ids are always written
(llama.cpp otherwise assumes bert-base-uncased's [CLS]=101 and [SEP]=102).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

# What sentence-transformers' Pooling config calls each mode, and what llama.cpp calls it.
_POOLING_KEYS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
                 "pooling_mode_lasttoken": "last"}
# Modes llama.cpp has no pooling for: a GGUF of such a model would serve wrong vectors.
_UNSERVABLE_POOLING = ("pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                       "pooling_mode_weightedmean_tokens")
POOLINGS = ("mean", "cls", "last")
OUTTYPES = ("f32", "f16", "q8_0")
# Tensors BertModel checkpoints carry that the encoder does not use: the NSP pooler, the MLM head,
# and the position-id buffer (llama.cpp builds positions itself).
_DROPPED_PREFIXES = ("pooler.", "cls.")
_DROPPED = ("embeddings.position_ids",)
# The special tokens gguf can store ([CLS] is BERT's BOS: the template puts it first).
_SPECIAL = ("bos", "eos", "unk", "sep", "pad", "mask")
# llama.cpp's BERT graph applies GELU (the tanh form) whatever config.json says; these are the
# activations that graph reproduces.  Anything else (relu, silu) would load and serve wrong vectors.
_GELU_ACTS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast")
# The sentence-transformers modules llama-server reproduces: the encoder, its pooling (written to the
# GGUF) and the final L2 normalisation (its default).  Any other module (Dense, LayerNorm, ...) would
# be silently skipped.
_SERVABLE_MODULES = ("Transformer", "Pooling", "Normalize")
# BERT's special tokens by their usual names, as gguf names their roles: [CLS] is the BOS the
# template puts first, [SEP] both the EOS and the separator it puts last.
_BERT_SPECIALS = {"bos": "[CLS]", "eos": "[SEP]", "sep": "[SEP]", "unk": "[UNK]", "pad": "[PAD]",
                  "mask": "[MASK]"}
NORMALIZE_KEY = "llmops.embedding.normalize"   # our own key; llama.cpp ignores keys it does not know


@dataclass(frozen=True)
class ConvertedModel:
    """What was written, as `llmops build` and the CLI report it."""

    path: Path
    name: str
    dim: int
    layers: int
    vocab: int
    pooling: str
    normalize: bool
    outtype: str
    tensors: int
    size_bytes: int

    def serve_hint(self) -> str:
        """The llama-server flags this model needs: pooling is in the GGUF; normalising is not."""
        extra = "" if self.normalize else " --embd-normalize -1"
        return f"llama-server -m {self.path.name} --embeddings{extra}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not readable JSON ({e.__class__.__name__})") from None


def _modules(src: Path) -> list[dict[str, Any]]:
    mods = _read_json(src / "modules.json")
    if mods is None:
        return []
    if not isinstance(mods, list) or not all(isinstance(m, dict) for m in mods):
        raise ConfigError(f"{src / 'modules.json'}: expected a list of modules")
    return mods


def pooling_of(src: Path) -> str:
    """The pooling the model was trained with, from its sentence-transformers Pooling module."""
    mods = _modules(src)
    paths = [m.get("path") or "" for m in mods if str(m.get("type", "")).endswith(".Pooling")]
    cfg_path = src / (paths[0] if paths else "1_Pooling") / "config.json"
    cfg = _read_json(cfg_path)
    if not isinstance(cfg, dict):
        raise ConfigError(f"{src}: no sentence-transformers pooling config ({cfg_path.relative_to(src)}); "
                          f"name the pooling the model was trained with: --pooling {{{','.join(POOLINGS)}}}")
    unservable = [k for k in _UNSERVABLE_POOLING if cfg.get(k) is True]
    chosen = [v for k, v in _POOLING_KEYS.items() if cfg.get(k) is True]
    if unservable or len(chosen) != 1:
        modes = unservable + [k for k, v in _POOLING_KEYS.items() if v in chosen]
        raise ConfigError(f"{cfg_path}: pooling {modes or 'none'} cannot be served by llama-server "
                          f"(it pools by exactly one of {', '.join(POOLINGS)})")
    return chosen[0]


def normalize_of(src: Path) -> bool:
    """True when the model ends in a Normalize module (its vectors are meant to be unit length).
    Any module besides the encoder, its pooling and Normalize (a Dense projection, a LayerNorm) is
    refused: llama-server has nothing to apply it with, and would serve the vectors without it."""
    mods = _modules(src)
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in mods]
    others = [k for k in kinds if k not in _SERVABLE_MODULES]
    if others:
        after = " after pooling" if "Pooling" in kinds and kinds.index(others[0]) > kinds.index("Pooling") else ""
        raise ConfigError(f"{src / 'modules.json'}: the model has a {others[0] or 'nameless'} module{after}, "
                          f"which llama-server cannot apply")
    return "Normalize" in kinds


def _config(src: Path) -> dict[str, Any]:
    cfg = _read_json(src / "config.json")
    if not isinstance(cfg, dict):
        raise ConfigError(f"{src}: no config.json (expected a Hugging Face BERT checkpoint folder)")
    arch = cfg.get("architectures") or []
    if cfg.get("model_type") != "bert" and "BertModel" not in arch:
        raise ConfigError(f"{src / 'config.json'}: model_type {cfg.get('model_type')!r} is not a BERT encoder")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise ConfigError(f"{src / 'config.json'}: position_embedding_type "
                          f"{cfg.get('position_embedding_type')!r} is not supported (absolute only)")
    act = cfg.get("hidden_act", "gelu")
    if act not in _GELU_ACTS:
        raise ConfigError(f"{src / 'config.json'}: hidden_act {act!r} cannot be served by llama-server "
                          f"(its BERT graph applies GELU)")
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "vocab_size"):
        if not isinstance(cfg.get(key), int) or cfg[key] <= 0:
            raise ConfigError(f"{src / 'config.json'}: {key} missing or not a positive integer")
    return cfg


def _vocab(src: Path, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens in id order with their gguf token types, phantom-space converted as llama.cpp's WPM
    tokenizer expects: a word-initial piece gets U+2581, a `##` continuation loses its `##`."""
    import gguf

    tok = _read_json(src / "tokenizer.json")
    special: set[int] = set()
    if isinstance(tok, dict):
        model = tok.get("model") or {}
        if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
            raise ConfigError(f"{src / 'tokenizer.json'}: tokenizer is {model.get('type')!r}, not WordPiece")
        by_id = {int(i): str(t) for t, i in model["vocab"].items()}
        for added in tok.get("added_tokens") or []:
            by_id[int(added["id"])] = str(added["content"])
            if added.get("special"):
                special.add(int(added["id"]))
    elif (src / "vocab.txt").is_file():
        lines = (src / "vocab.txt").read_text(encoding="utf-8").splitlines()
        by_id = dict(enumerate(lines))
        # Only the tokens the tokenizer treats as special: not every bracketed one ([unused0] ...
        # are plain vocabulary that BertTokenizer never emits as a unit).
        names = set(_BERT_SPECIALS.values()) | _special_names(src)
        special = {i for i, t in by_id.items() if t in names}
    else:
        raise ConfigError(f"{src}: no tokenizer.json or vocab.txt")
    _refuse_cased(src, tok)
    if max(by_id, default=-1) >= vocab_size:
        raise ConfigError(f"{src}: the tokenizer has ids up to {max(by_id)}, beyond vocab_size {vocab_size}")

    def phantom(t: str) -> str:
        return t[2:] if t.startswith("##") else "\u2581" + t

    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:   # ids the checkpoint reserves but the tokenizer never emits
            tokens.append(f"[PAD{i}]")
            types.append(int(gguf.TokenType.UNUSED))
            continue
        # Special (CONTROL) tokens keep their text: llama.cpp finds them in the input by it.  The
        # rest are phantom-spaced, as convert_hf_to_gguf decides it: by type, not by brackets.
        t = by_id[i]
        tokens.append(t if i in special else phantom(t))
        types.append(int(gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL))
    return tokens, types


def _refuse_cased(src: Path, tok: Any) -> None:
    """llama.cpp's WordPiece tokenizer lower-cases all input.  A cased model's vocabulary would load
    and serve, but "Paris" would be looked up as "paris": vectors unlike the model's, silently."""
    norm = tok.get("normalizer") if isinstance(tok, dict) else None
    if isinstance(norm, dict) and norm.get("type") == "BertNormalizer" and norm.get("lowercase") is False:
        where = "tokenizer.json (normalizer lowercase false)"
    elif isinstance(cfg := _read_json(src / "tokenizer_config.json"), dict) and cfg.get("do_lower_case") is False:
        where = "tokenizer_config.json (do_lower_case false)"
    else:
        return
    raise ConfigError(f"{src}: the tokenizer is cased ({where}); llama-server's BERT tokenizer "
                      f"lower-cases all text, so it would not tokenize as the model was trained")


def _special_names(src: Path) -> set[str]:
    """The special tokens tokenizer_config.json / special_tokens_map.json name (`*_token` keys)."""
    names: set[str] = set()
    for f in ("tokenizer_config.json", "special_tokens_map.json"):
        cfg = _read_json(src / f)
        for k, v in (cfg.items() if isinstance(cfg, dict) else ()):
            v = v.get("content") if isinstance(v, dict) else v
            if k.endswith("_token") and isinstance(v, str):
                names.add(v)
    return names


def _special_vocab(src: Path, tokens: list[str], types: list[int]) -> Any:
    """gguf's reader of the special tokens, as convert_hf_to_gguf uses it, completed where it
    finds nothing.  It takes the ids from tokenizer_config.json only, so a vocab.txt folder or a
    tokenizer.json without that file came out with no BOS or separator id, and llama.cpp then
    falls back to bert-base-uncased's 101/102: on any other vocabulary llama-server aborts on the
    first request (or embeds the wrong tokens).  Missing roles are filled in by BERT's usual names,
    and [CLS] ... [SEP] is added around every input, as BERT's template does."""
    import gguf

    sv = gguf.SpecialVocab(src, n_vocab=len(tokens), special_token_types=_SPECIAL)
    control = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty == int(gguf.TokenType.CONTROL)}
    for typ, tok in _BERT_SPECIALS.items():
        if typ not in sv.special_token_ids and tok in control:
            sv.special_token_ids[typ] = control[tok]
    for typ in ("bos", "sep"):
        if typ not in sv.special_token_ids:
            raise ConfigError(f"{src}: no {_BERT_SPECIALS[typ]} token ({typ}) in the vocabulary; "
                              f"llama-server's BERT tokenizer needs one")
    sv.add_special_token.setdefault("bos", True)
    sv.add_special_token.setdefault("eos", True)
    return sv


def _tensors(src: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    files = sorted(src.glob("*.safetensors"))
    if not files:
        raise ConfigError(f"{src}: no *.safetensors weights (a pytorch_model.bin needs torch to read; "
                          f"save the model as safetensors first)")
    out: dict[str, Any] = {}
    for f in files:
        try:
            out.update(load_file(str(f)))
        except (SafetensorError, OSError, ValueError, TypeError) as e:
            raise ConfigError(f"{f}: not readable as safetensors by numpy ({e}); bf16 weights need "
                              f"converting to f16/f32 first") from None
    return out


def _gguf_name(tensor_map: Any, name: str) -> str | None:
    """The GGUF name of a checkpoint tensor; None for one the encoder does not use."""
    bare = name.removeprefix("bert.")
    if bare in _DROPPED or bare.startswith(_DROPPED_PREFIXES):
        return None
    mapped = tensor_map.get_name(bare, try_suffixes=(".weight", ".bias"))
    if mapped is None:
        raise ConfigError(f"tensor {name!r} has no place in llama.cpp's BERT graph")
    return str(mapped)


def _encode(name: str, data: Any, outtype: str) -> tuple[Any, Any]:
    """(array, raw dtype or None): norms, biases and the position/type embeddings stay f32, as
    convert_hf_to_gguf keeps them; matrices take the requested type."""
    import gguf
    import numpy as np

    data = np.ascontiguousarray(data, dtype=np.float32)
    keep_f32 = data.ndim <= 1 or name.startswith(("position_embd", "token_types"))
    if outtype == "f32" or keep_f32:
        return data, None
    if outtype == "q8_0" and data.shape[-1] % 32 == 0:
        return gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0
    return data.astype(np.float16), None


def _renamed(src: Path, weights: dict[str, Any], tensor_map: Any) -> dict[str, Any]:
    """The checkpoint's tensors under their GGUF names (those llama.cpp has no use for dropped)."""
    renamed: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for k, v in weights.items():
        g = _gguf_name(tensor_map, k)
        if g is None:
            continue
        if g in origin:   # e.g. both `x` and `bert.x`: which one the model means is unknowable
            raise ConfigError(f"{src}: tensors {origin[g]!r} and {k!r} are both {g!r}")
        renamed[g], origin[g] = v, k
    return renamed


def convert_bert(src: Path, out: Path, *, outtype: str = "f16", name: str | None = None,
                 pooling: str | None = None) -> ConvertedModel:
    """Convert the checkpoint folder `src` into the GGUF file `out` (written whole, then renamed)."""
    import gguf

    if outtype not in OUTTYPES:
        raise ConfigError(f"--outtype {outtype!r}: choose one of {', '.join(OUTTYPES)}")
    if pooling is not None and pooling not in POOLINGS:
        raise ConfigError(f"--pooling {pooling!r}: choose one of {', '.join(POOLINGS)}")
    if not src.is_dir():
        raise ConfigError(f"{src}: not a folder (expected a Hugging Face BERT checkpoint folder)")
    cfg = _config(src)
    pool = pooling or pooling_of(src)
    normalize = normalize_of(src)
    tokens, types = _vocab(src, cfg["vocab_size"])
    weights = _tensors(src)
    layers = cfg["num_hidden_layers"]
    renamed = _renamed(src, weights, gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, layers))
    if renamed.get("token_embd.weight") is None:
        raise ConfigError(f"{src}: no word-embedding tensor (embeddings.word_embeddings.weight)")
    if renamed["token_embd.weight"].shape != (cfg["vocab_size"], cfg["hidden_size"]):
        raise ConfigError(f"{src}: word embeddings are {renamed['token_embd.weight'].shape}, config says "
                          f"({cfg['vocab_size']}, {cfg['hidden_size']})")

    special_vocab = _special_vocab(src, tokens, types)
    if out.is_dir():
        raise ConfigError(f"{out}: is a folder; name the .gguf file to write")

    model_name = name or src.name
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype]
    tmp = out.with_name(out.name + ".part")
    out.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    try:
        w.add_name(model_name)
        w.add_block_count(layers)
        w.add_context_length(cfg["max_position_embeddings"])
        w.add_embedding_length(cfg["hidden_size"])
        w.add_feed_forward_length(cfg["intermediate_size"])
        w.add_head_count(cfg["num_attention_heads"])
        w.add_layer_norm_eps(float(cfg.get("layer_norm_eps", 1e-12)))
        w.add_causal_attention(False)
        w.add_pooling_type({"mean": gguf.PoolingType.MEAN, "cls": gguf.PoolingType.CLS,
                            "last": gguf.PoolingType.LAST}[pool])
        w.add_file_type(file_type)
        w.add_bool(NORMALIZE_KEY, normalize)
        w.add_token_type_count(int(cfg.get("type_vocab_size", 1)))
        w.add_tokenizer_model("bert")
        # llama.cpp's name for the BERT pre-tokenizer (split on whitespace and punctuation).
        w.add_tokenizer_pre("bert-bge")
        w.add_token_list(tokens)
        w.add_token_types(types)
        # The special token ids, and which ones the template adds: [CLS] first and [SEP] last.
        special_vocab.add_to_gguf(w, quiet=True)
        for g in sorted(renamed):
            data, raw = _encode(g, renamed[g], outtype)
            w.add_tensor(g, data, raw_dtype=raw)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, out)
    except BaseException:
        # A failure part-way (disk full, an interrupt) leaves neither a half-written .part nor a
        # changed `out`: a previous good file at `out` stays as it was.
        w.close()
        tmp.unlink(missing_ok=True)
        raise
    return ConvertedModel(path=out, name=model_name, dim=cfg["hidden_size"], layers=layers,
                          vocab=len(tokens), pooling=pool, normalize=normalize, outtype=outtype,
                          tensors=len(renamed), size_bytes=out.stat().st_size)
