"""convert_bert: a tiny BERT checkpoint (tests/bert_tiny.py) becomes a GGUF, read back with gguf's own
reader.  No torch, no Docker, no network: what llama-server makes of the file is
tests/e2e/test_convert_bert_llama.py's job; here, that every key, token and tensor is what llama.cpp's
BERT loader expects, and that every refusal is one clear ConfigError line.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from bert_tiny import (ID, MODULES, SENTENCE_IDS, VOCAB, Checkpoint, TinyConfig, build_checkpoint, cosine,
                       pooling_config, reference_embedding, write_json)

from llmops.convert_bert import ConvertedModel, convert_bert, normalize_of, pooling_of
from llmops.errors import ConfigError

PHANTOM = "\u2581"


# ---- helpers ---------------------------------------------------------------------------------------

def hf_to_gguf(cfg: TinyConfig) -> dict[str, str]:
    """The HF BertModel name of every tensor llama.cpp's BERT graph loads, written out by hand (not
    taken from gguf's own tensor map, which is what the converter uses)."""
    names = {"embeddings.word_embeddings.weight": "token_embd.weight",
             "embeddings.position_embeddings.weight": "position_embd.weight",
             "embeddings.token_type_embeddings.weight": "token_types.weight",
             "embeddings.LayerNorm.weight": "token_embd_norm.weight",
             "embeddings.LayerNorm.bias": "token_embd_norm.bias"}
    per_layer = {"attention.self.query": "attn_q", "attention.self.key": "attn_k",
                 "attention.self.value": "attn_v", "attention.output.dense": "attn_output",
                 "attention.output.LayerNorm": "attn_output_norm", "intermediate.dense": "ffn_up",
                 "output.dense": "ffn_down", "output.LayerNorm": "layer_output_norm"}
    for n in range(cfg.layers):
        for hf, g in per_layer.items():
            for part in ("weight", "bias"):
                names[f"encoder.layer.{n}.{hf}.{part}"] = f"blk.{n}.{g}.{part}"
    return names


def field(reader: gguf.GGUFReader, key: str) -> Any:
    f = reader.get_field(key)
    assert f is not None, f"{key} missing from the GGUF"
    return f.contents()


def tensors(reader: gguf.GGUFReader) -> dict[str, Any]:
    return {t.name: t for t in reader.tensors}


def as_float(t: Any) -> np.ndarray:
    """A tensor's values in numpy's (rows, cols) order, dequantised where it is quantised."""
    if t.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
        return np.asarray(t.data, dtype=np.float32)
    return gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)


def weights_back(reader: gguf.GGUFReader, cfg: TinyConfig) -> dict[str, np.ndarray]:
    """The checkpoint's weights as the GGUF holds them, under their HF names again."""
    ts = tensors(reader)
    return {hf: as_float(ts[g]) for hf, g in hf_to_gguf(cfg).items()}


def config_error(fn: Callable[[], object], *needles: str) -> str:
    """The call raises ConfigError, as one line naming each of `needles`."""
    with pytest.raises(ConfigError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    return msg


@pytest.fixture
def ckpt(tmp_path: Path) -> Checkpoint:
    return build_checkpoint(tmp_path / "tiny-bert")


def convert(ck: Checkpoint, tmp_path: Path, outtype: str = "f32", **kw: Any) -> tuple[ConvertedModel, gguf.GGUFReader]:
    m = convert_bert(ck.path, tmp_path / f"out-{outtype}.gguf", outtype=outtype, **kw)
    return m, gguf.GGUFReader(str(m.path))


# ---- metadata --------------------------------------------------------------------------------------

def test_metadata_is_what_llama_cpp_bert_loader_reads(ckpt: Checkpoint, tmp_path: Path) -> None:
    m, r = convert(ckpt, tmp_path, "f16")
    cfg = ckpt.config
    assert field(r, "general.architecture") == "bert"
    assert field(r, "general.name") == "tiny-bert"
    assert field(r, "bert.block_count") == cfg.layers
    assert field(r, "bert.context_length") == cfg.max_position
    assert field(r, "bert.embedding_length") == cfg.hidden
    assert field(r, "bert.feed_forward_length") == cfg.intermediate
    assert field(r, "bert.attention.head_count") == cfg.heads
    assert field(r, "bert.attention.layer_norm_epsilon") == pytest.approx(cfg.eps, rel=1e-6)
    assert field(r, "bert.attention.causal") is False
    assert field(r, "bert.pooling_type") == int(gguf.PoolingType.MEAN) == 1
    assert field(r, "general.file_type") == int(gguf.LlamaFileType.MOSTLY_F16)
    assert field(r, "tokenizer.ggml.token_type_count") == cfg.type_vocab
    assert field(r, "llmops.embedding.normalize") is True
    assert (m.dim, m.layers, m.vocab, m.pooling, m.normalize, m.outtype) == (32, 2, 40, "mean", True, "f16")
    assert m.size_bytes == m.path.stat().st_size
    assert m.serve_hint() == f"llama-server -m {m.path.name} --embeddings"


def test_tokenizer_is_phantom_space_wordpiece(ckpt: Checkpoint, tmp_path: Path) -> None:
    _, r = convert(ckpt, tmp_path)
    assert field(r, "tokenizer.ggml.model") == "bert"
    assert field(r, "tokenizer.ggml.pre") == "bert-bge"
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    assert len(tokens) == len(types) == len(VOCAB)
    # llama.cpp's WPM tokenizer prefixes each word with U+2581 and matches "##" pieces bare.
    assert tokens[ID["[CLS]"]] == "[CLS]" and tokens[ID["[PAD]"]] == "[PAD]"
    assert tokens[ID["cat"]] == PHANTOM + "cat"
    assert tokens[ID["##ed"]] == "ed"
    assert tokens[ID["happy"]] == PHANTOM + "happy" and tokens[ID["##happy"]] == "happy"
    assert tokens[ID[","]] == PHANTOM + ","
    # A bracketed token that is not special is plain vocabulary, as convert_hf_to_gguf writes it.
    assert tokens[ID["[unused0]"]] == PHANTOM + "[unused0]"
    control, normal = int(gguf.TokenType.CONTROL), int(gguf.TokenType.NORMAL)
    assert [i for i, t in enumerate(types) if t == control] == [ID[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")]
    assert all(t == normal for i, t in enumerate(types) if i >= 5)


def test_special_tokens_are_bert_s_own_ids(ckpt: Checkpoint, tmp_path: Path) -> None:
    """Not bert-base-uncased's 101/102, which llama.cpp assumes when the GGUF names none."""
    _, r = convert(ckpt, tmp_path)
    assert field(r, "tokenizer.ggml.bos_token_id") == ID["[CLS]"]
    assert field(r, "tokenizer.ggml.eos_token_id") == ID["[SEP]"]
    assert field(r, "tokenizer.ggml.seperator_token_id") == ID["[SEP]"]   # (sic) gguf's key
    assert field(r, "tokenizer.ggml.unknown_token_id") == ID["[UNK]"]
    assert field(r, "tokenizer.ggml.padding_token_id") == ID["[PAD]"]
    assert field(r, "tokenizer.ggml.mask_token_id") == ID["[MASK]"]
    assert field(r, "tokenizer.ggml.add_bos_token") is True
    assert field(r, "tokenizer.ggml.add_eos_token") is True


@pytest.mark.parametrize("drop", ["tokenizer_config.json", "vocab.txt-only"])
def test_special_tokens_without_tokenizer_config(tmp_path: Path, drop: str) -> None:
    """gguf's SpecialVocab reads the ids from tokenizer_config.json only; without it the GGUF had no
    BOS/SEP and llama-server aborted on the first request (seen on the real server)."""
    if drop == "vocab.txt-only":
        ck = build_checkpoint(tmp_path / "ck", tokenizer="vocab.txt")
    else:
        ck = build_checkpoint(tmp_path / "ck")
        (ck.path / "tokenizer_config.json").unlink()
        (ck.path / "special_tokens_map.json").unlink()
    _, r = convert(ck, tmp_path)
    assert field(r, "tokenizer.ggml.bos_token_id") == ID["[CLS]"]
    assert field(r, "tokenizer.ggml.seperator_token_id") == ID["[SEP]"]
    assert field(r, "tokenizer.ggml.eos_token_id") == ID["[SEP]"]
    assert field(r, "tokenizer.ggml.unknown_token_id") == ID["[UNK]"]
    assert field(r, "tokenizer.ggml.add_bos_token") is True


def test_vocab_txt_gives_the_same_vocabulary_as_tokenizer_json(tmp_path: Path) -> None:
    _, a = convert(build_checkpoint(tmp_path / "json"), tmp_path / "a")
    _, b = convert(build_checkpoint(tmp_path / "txt", tokenizer="vocab.txt"), tmp_path / "b")
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type"):
        assert field(a, key) == field(b, key), key


def test_cls_pooling_and_no_normalize(tmp_path: Path) -> None:
    ck = build_checkpoint(tmp_path / "ck", pooling="cls")
    write_json(ck.path / "modules.json", MODULES[:2])   # no Normalize module
    assert pooling_of(ck.path) == "cls" and normalize_of(ck.path) is False
    m, r = convert(ck, tmp_path)
    assert field(r, "bert.pooling_type") == int(gguf.PoolingType.CLS) == 2
    assert field(r, "llmops.embedding.normalize") is False
    assert m.serve_hint().endswith("--embeddings --embd-normalize -1")


def test_pooling_argument_overrides_the_config(ckpt: Checkpoint, tmp_path: Path) -> None:
    m, r = convert(ckpt, tmp_path, pooling="cls")
    assert m.pooling == "cls" and field(r, "bert.pooling_type") == 2


def test_name_argument(ckpt: Checkpoint, tmp_path: Path) -> None:
    m, r = convert(ckpt, tmp_path, name="MiniTiny")
    assert m.name == "MiniTiny" and field(r, "general.name") == "MiniTiny"


# ---- tensors ---------------------------------------------------------------------------------------

def test_tensor_names_are_exactly_the_bert_graph(ckpt: Checkpoint, tmp_path: Path) -> None:
    m, r = convert(ckpt, tmp_path)
    names = set(tensors(r))
    assert names == set(hf_to_gguf(ckpt.config).values())
    assert not any("pooler" in n or "position_ids" in n for n in names)
    assert m.tensors == len(names) == 5 + 16 * ckpt.config.layers


def test_shapes_are_ggml_order(ckpt: Checkpoint, tmp_path: Path) -> None:
    """GGUFReader's `shape` is ggml's ne[] (fastest dimension first: (in, out) for a matrix), the
    reverse of numpy's; `data` is in numpy order.  llama.cpp's loader checks ne[] against
    {n_embd, n_vocab}, {n_embd, n_ff}, {n_ff, n_embd}, {n_embd, n_ctx_train}, {n_embd, n_token_types}."""
    _, r = convert(ckpt, tmp_path)
    c, ts = ckpt.config, tensors(r)
    h, ff = c.hidden, c.intermediate
    want = {"token_embd.weight": (h, c.vocab), "position_embd.weight": (h, c.max_position),
            "token_types.weight": (h, c.type_vocab), "token_embd_norm.weight": (h,),
            "blk.0.attn_q.weight": (h, h), "blk.1.attn_v.bias": (h,), "blk.0.ffn_up.weight": (h, ff),
            "blk.0.ffn_up.bias": (ff,), "blk.1.ffn_down.weight": (ff, h), "blk.1.layer_output_norm.bias": (h,)}
    for name, ne in want.items():
        assert tuple(int(x) for x in ts[name].shape) == ne, name
        assert ts[name].data.shape == ne[::-1], name


def test_f32_values_round_trip_exactly(ckpt: Checkpoint, tmp_path: Path) -> None:
    _, r = convert(ckpt, tmp_path, "f32")
    assert field(r, "general.file_type") == int(gguf.LlamaFileType.ALL_F32)
    back = weights_back(r, ckpt.config)
    for hf, w in ckpt.weights.items():
        assert tensors(r)[hf_to_gguf(ckpt.config)[hf]].tensor_type == gguf.GGMLQuantizationType.F32
        np.testing.assert_array_equal(back[hf], w, err_msg=hf)


def test_f16_matrices_and_f32_vectors(ckpt: Checkpoint, tmp_path: Path) -> None:
    """Matrices f16 (rounded as numpy rounds to f16, nothing more); vectors, position and
    token-type embeddings kept f32 as convert_hf_to_gguf keeps them."""
    _, r = convert(ckpt, tmp_path, "f16")
    ts, names = tensors(r), hf_to_gguf(ckpt.config)
    for hf, w in ckpt.weights.items():
        g = names[hf]
        keep_f32 = w.ndim == 1 or g.startswith(("position_embd", "token_types"))
        want = gguf.GGMLQuantizationType.F32 if keep_f32 else gguf.GGMLQuantizationType.F16
        assert ts[g].tensor_type == want, g
        expect = w if keep_f32 else w.astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(as_float(ts[g]), expect, err_msg=g)


def test_q8_0_where_rows_are_blocks_of_32(ckpt: Checkpoint, tmp_path: Path) -> None:
    _, r = convert(ckpt, tmp_path, "q8_0")
    assert field(r, "general.file_type") == int(gguf.LlamaFileType.MOSTLY_Q8_0)
    ts, names = tensors(r), hf_to_gguf(ckpt.config)
    for hf, w in ckpt.weights.items():
        g = names[hf]
        if w.ndim == 1 or g.startswith(("position_embd", "token_types")):
            assert ts[g].tensor_type == gguf.GGMLQuantizationType.F32, g
            continue
        assert ts[g].tensor_type == gguf.GGMLQuantizationType.Q8_0, g
        # Q8_0: blocks of 32 along a row, each an f16 scale max|x|/127 and int8s; the error is at
        # most half a step, plus the scale's own f16 rounding (a step is a fair bound for both).
        step = np.abs(w.reshape(w.shape[0], -1, 32)).max(-1, keepdims=True) / 127
        err = np.abs(as_float(ts[g]).reshape(step.shape[0], -1, 32) - w.reshape(step.shape[0], -1, 32))
        assert (err <= step).all(), g


def test_q8_0_falls_back_to_f16_on_rows_not_a_multiple_of_32(tmp_path: Path) -> None:
    ck = build_checkpoint(tmp_path / "ck", TinyConfig(hidden=48, heads=4, intermediate=64))
    _, r = convert(ck, tmp_path, "q8_0")
    ts = tensors(r)
    # ne[0] (the row length) is the hidden size 48 for all but ffn_down, whose rows are n_ff=64.
    assert ts["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert ts["token_embd.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert ts["blk.0.ffn_up.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert ts["blk.0.ffn_down.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert ts["blk.0.attn_q.bias"].tensor_type == gguf.GGMLQuantizationType.F32


def test_bert_prefix_is_stripped(tmp_path: Path) -> None:
    """A BertFor* checkpoint names every tensor "bert.…": the same model, the same GGUF tensors."""
    _, plain = convert(build_checkpoint(tmp_path / "plain"), tmp_path / "a")
    _, pref = convert(build_checkpoint(tmp_path / "pref", prefix="bert."), tmp_path / "b")
    a, b = tensors(plain), tensors(pref)
    assert set(a) == set(b)
    for n in a:
        np.testing.assert_array_equal(np.asarray(a[n].data), np.asarray(b[n].data), err_msg=n)


@pytest.mark.parametrize("outtype,floor", [("f32", 1 - 1e-12), ("f16", 0.9999), ("q8_0", 0.999)])
def test_the_gguf_weights_compute_the_checkpoint_s_vectors(ckpt: Checkpoint, tmp_path: Path,
                                                           outtype: str, floor: float) -> None:
    """The numpy reference run on the weights read back from the GGUF gives the checkpoint's
    vector: nothing was transposed, swapped between layers or dropped."""
    _, r = convert(ckpt, tmp_path, outtype)
    want = reference_embedding(ckpt.weights, ckpt.config, SENTENCE_IDS)
    got = reference_embedding(weights_back(r, ckpt.config), ckpt.config, SENTENCE_IDS)
    assert cosine(want, got) >= floor


def test_reference_is_sensitive_to_pooling(ckpt: Checkpoint) -> None:
    """The e2e cosine thresholds (0.9999 / 0.999) mean something only if a wrong model scores far
    below them: the wrong pooling and a neighbouring seed's weights both do."""
    mean = reference_embedding(ckpt.weights, ckpt.config, SENTENCE_IDS)
    cls = reference_embedding(ckpt.weights, ckpt.config, SENTENCE_IDS, pooling="cls")
    other = build_checkpoint(ckpt.path.parent / "other", seed=1)
    assert cosine(mean, cls) < 0.9
    assert cosine(mean, reference_embedding(other.weights, other.config, SENTENCE_IDS)) < 0.9
    assert np.linalg.norm(mean) == pytest.approx(1.0)


# ---- refusals --------------------------------------------------------------------------------------

def test_not_a_folder(tmp_path: Path) -> None:
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    config_error(lambda: convert_bert(f, tmp_path / "o.gguf"), str(f), "not a folder")
    config_error(lambda: convert_bert(tmp_path / "absent", tmp_path / "o.gguf"), "absent", "not a folder")


def test_no_config_json(ckpt: Checkpoint, tmp_path: Path) -> None:
    (ckpt.path / "config.json").unlink()
    config_error(lambda: convert(ckpt, tmp_path), "no config.json")


def test_config_json_not_json(ckpt: Checkpoint, tmp_path: Path) -> None:
    (ckpt.path / "config.json").write_text("{not json")
    config_error(lambda: convert(ckpt, tmp_path), "config.json", "not readable JSON")


def test_not_bert(ckpt: Checkpoint, tmp_path: Path) -> None:
    cfg = {**ckpt.config.as_json(), "model_type": "roberta", "architectures": ["RobertaModel"]}
    write_json(ckpt.path / "config.json", cfg)
    config_error(lambda: convert(ckpt, tmp_path), "config.json", "'roberta'", "not a BERT encoder")


@pytest.mark.parametrize("key,value,needle", [
    ("hidden_act", "relu", "hidden_act 'relu'"),
    ("position_embedding_type", "relative_key", "position_embedding_type 'relative_key'"),
    ("num_attention_heads", 0, "num_attention_heads"),
])
def test_config_the_bert_graph_cannot_run(ckpt: Checkpoint, tmp_path: Path, key: str, value: object,
                                          needle: str) -> None:
    write_json(ckpt.path / "config.json", {**ckpt.config.as_json(), key: value})
    config_error(lambda: convert(ckpt, tmp_path), "config.json", needle)


def test_no_safetensors(ckpt: Checkpoint, tmp_path: Path) -> None:
    (ckpt.path / "model.safetensors").rename(ckpt.path / "pytorch_model.bin")
    config_error(lambda: convert(ckpt, tmp_path), "no *.safetensors")


def test_unreadable_safetensors(ckpt: Checkpoint, tmp_path: Path) -> None:
    (ckpt.path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    config_error(lambda: convert(ckpt, tmp_path), "model.safetensors", "not readable as safetensors")


@pytest.mark.parametrize("modes,needle", [
    ({"mean_tokens": False, "max_tokens": True}, "pooling_mode_max_tokens"),
    ({"cls_token": True}, "pooling_mode_mean_tokens"),                    # mean and cls both on
    ({"mean_tokens": False, "mean_sqrt_len_tokens": True}, "pooling_mode_mean_sqrt_len_tokens"),
    ({"mean_tokens": False}, "none"),
])
def test_pooling_llama_server_cannot_do(ckpt: Checkpoint, tmp_path: Path, modes: dict[str, bool],
                                        needle: str) -> None:
    write_json(ckpt.path / "1_Pooling" / "config.json", pooling_config(32, **modes))
    msg = config_error(lambda: convert(ckpt, tmp_path), str(ckpt.path / "1_Pooling" / "config.json"), needle,
                       "cannot be served")
    if modes.get("cls_token"):
        assert "pooling_mode_cls_token" in msg


def test_no_pooling_config_then_the_pooling_argument(ckpt: Checkpoint, tmp_path: Path) -> None:
    (ckpt.path / "1_Pooling" / "config.json").unlink()
    config_error(lambda: convert(ckpt, tmp_path), "no sentence-transformers pooling config",
                 "1_Pooling/config.json", "--pooling {mean,cls,last}")
    m, r = convert(ckpt, tmp_path, pooling="cls")
    assert m.pooling == "cls" and field(r, "bert.pooling_type") == int(gguf.PoolingType.CLS)


def test_pooling_path_from_modules_json(ckpt: Checkpoint, tmp_path: Path) -> None:
    (ckpt.path / "1_Pooling").rename(ckpt.path / "pool")
    write_json(ckpt.path / "modules.json", [{**m, "path": "pool"} if m["path"] == "1_Pooling" else m for m in MODULES])
    assert pooling_of(ckpt.path) == "mean"


@pytest.mark.parametrize("kind", ["Dense", "LayerNorm"])
def test_module_llama_server_cannot_apply(ckpt: Checkpoint, tmp_path: Path, kind: str) -> None:
    mods = [*MODULES[:2], {"idx": 2, "name": "2", "path": f"2_{kind}", "type": f"sentence_transformers.models.{kind}"},
            {**MODULES[2], "idx": 3}]
    write_json(ckpt.path / "modules.json", mods)
    config_error(lambda: convert(ckpt, tmp_path), "modules.json", f"{kind} module after pooling",
                 "cannot apply")


def test_modules_json_not_a_list(ckpt: Checkpoint, tmp_path: Path) -> None:
    write_json(ckpt.path / "modules.json", {"0": "Transformer"})
    config_error(lambda: convert(ckpt, tmp_path), "modules.json", "expected a list")


def _resave(ck: Checkpoint, extra: dict[str, np.ndarray], prefix: str = "") -> None:
    """Rewrite the safetensors with the checkpoint's weights (under `prefix`) plus `extra`."""
    from safetensors.numpy import save_file

    save_file({**{prefix + k: v for k, v in ck.weights.items()}, **extra}, str(ck.path / "model.safetensors"))


def test_tensor_with_no_place_in_the_graph(ckpt: Checkpoint, tmp_path: Path) -> None:
    _resave(ckpt, {"encoder.layer.0.attention.self.rotary_emb.weight": np.zeros((4, 4), np.float32)})
    config_error(lambda: convert(ckpt, tmp_path), "'encoder.layer.0.attention.self.rotary_emb.weight'",
                 "no place in llama.cpp's BERT graph")


def test_same_tensor_twice(ckpt: Checkpoint, tmp_path: Path) -> None:
    """`x` and `bert.x` both: which one the model means cannot be known, so neither is guessed."""
    w = ckpt.weights["embeddings.LayerNorm.bias"]
    _resave(ckpt, {"bert.embeddings.LayerNorm.bias": w + 1})
    config_error(lambda: convert(ckpt, tmp_path), "embeddings.LayerNorm.bias", "token_embd_norm.bias")


def test_no_word_embeddings(ckpt: Checkpoint, tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({k: v for k, v in ckpt.weights.items() if "word_embeddings" not in k}, str(ckpt.path / "model.safetensors"))
    config_error(lambda: convert(ckpt, tmp_path), "no word-embedding tensor")


def test_word_embeddings_not_the_config_s_shape(ckpt: Checkpoint, tmp_path: Path) -> None:
    write_json(ckpt.path / "config.json", {**ckpt.config.as_json(), "vocab_size": 48})
    config_error(lambda: convert(ckpt, tmp_path), "word embeddings are (40, 32)", "(48, 32)")


def test_tokenizer_beyond_vocab_size(ckpt: Checkpoint, tmp_path: Path) -> None:
    write_json(ckpt.path / "config.json", {**ckpt.config.as_json(), "vocab_size": 30})
    config_error(lambda: convert(ckpt, tmp_path), "ids up to 39", "beyond vocab_size 30")


def test_no_tokenizer(ckpt: Checkpoint, tmp_path: Path) -> None:
    (ckpt.path / "tokenizer.json").unlink()
    config_error(lambda: convert(ckpt, tmp_path), "no tokenizer.json or vocab.txt")


def test_tokenizer_not_wordpiece(ckpt: Checkpoint, tmp_path: Path) -> None:
    tok = json.loads((ckpt.path / "tokenizer.json").read_text())
    tok["model"] = {"type": "Unigram", "vocab": [["a", 0.0]]}
    write_json(ckpt.path / "tokenizer.json", tok)
    config_error(lambda: convert(ckpt, tmp_path), "tokenizer.json", "'Unigram'", "not WordPiece")


@pytest.mark.parametrize("where", ["tokenizer.json", "tokenizer_config.json"])
def test_cased_tokenizer(ckpt: Checkpoint, tmp_path: Path, where: str) -> None:
    """llama.cpp's WPM tokenizer lower-cases everything (the e2e test sees "The" become "the")."""
    f = ckpt.path / where
    data = json.loads(f.read_text())
    if where == "tokenizer.json":
        data["normalizer"]["lowercase"] = False
    else:
        data["do_lower_case"] = False
    write_json(f, data)
    config_error(lambda: convert(ckpt, tmp_path), where, "cased", "lower-cases")


def test_vocabulary_without_cls(tmp_path: Path) -> None:
    ck = build_checkpoint(tmp_path / "ck", tokenizer="vocab.txt")
    (ck.path / "vocab.txt").write_text("".join(("[BOS]" if t == "[CLS]" else t) + "\n" for t in VOCAB))
    config_error(lambda: convert(ck, tmp_path), "no [CLS] token")


@pytest.mark.parametrize("kw,needle", [({"outtype": "bf16"}, "--outtype 'bf16'"),
                                       ({"outtype": "q4_0"}, "choose one of f32, f16, q8_0"),
                                       ({"pooling": "max"}, "--pooling 'max'")])
def test_bad_arguments(ckpt: Checkpoint, tmp_path: Path, kw: dict[str, str], needle: str) -> None:
    config_error(lambda: convert_bert(ckpt.path, tmp_path / "o.gguf", **kw), needle)
    assert not (tmp_path / "o.gguf").exists()


def test_output_is_a_folder(ckpt: Checkpoint, tmp_path: Path) -> None:
    (tmp_path / "out.gguf").mkdir()
    config_error(lambda: convert_bert(ckpt.path, tmp_path / "out.gguf"), "out.gguf", "is a folder")


# ---- the output file is whole or absent --------------------------------------------------------------

def _fail_after_header(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the writer die as a full disk would: after the header and metadata are on disk, part-way
    into the tensor data."""
    def dying(self: gguf.GGUFWriter, *a: Any, **kw: Any) -> None:
        assert self.fout is not None
        self.fout[0].write(b"\0" * 1000)
        self.fout[0].flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", dying)


def test_failure_mid_write_leaves_no_file(ckpt: Checkpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "models" / "m.gguf"
    _fail_after_header(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        convert_bert(ckpt.path, out)
    assert sorted(p.name for p in out.parent.iterdir()) == []


def test_failure_mid_write_keeps_the_previous_file(ckpt: Checkpoint, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "m.gguf"
    convert_bert(ckpt.path, out)
    before = out.read_bytes()
    _fail_after_header(monkeypatch)
    with pytest.raises(OSError):
        convert_bert(ckpt.path, out, outtype="f32")
    assert out.read_bytes() == before
    assert not out.with_name("m.gguf.part").exists()


def test_refusal_leaves_no_file(ckpt: Checkpoint, tmp_path: Path) -> None:
    _resave(ckpt, {"mystery.weight": np.zeros(3, np.float32)})
    out = tmp_path / "m.gguf"
    config_error(lambda: convert_bert(ckpt.path, out), "mystery.weight")
    assert list(tmp_path.glob("m.gguf*")) == []
