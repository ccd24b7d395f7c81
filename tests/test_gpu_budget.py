"""VRAM budget: GGUF metadata (the real SmolLM2 file), llama-server flags, engine logs, budget file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmops.errors import ConfigError, ExitCode
from llmops.testing.gguf_shapes import LLAMA_SHAPES, write_sparse_gguf
from llmops.gpu.budget import (
    CACHE_TYPE_BYTES, MIB, budget_for_llama, budget_from_info, load_budget_file, parse_llama_log,
    parse_server_args, read_model_info,
)

@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A sparse GGUF of Llama-3.2-1B's shape (Q8_0, tied output): header and tensor table only."""
    return write_sparse_gguf(tmp_path_factory.mktemp("m") / "l1b-q8.gguf", LLAMA_SHAPES["l1b-q8"])


@pytest.fixture(scope="module")
def ref(model_file):
    """The model's tensor table read independently of llmops, straight from gguf."""
    gguf = pytest.importorskip("gguf")
    r = gguf.GGUFReader(str(model_file), "r")
    f = {k: v.contents() for k, v in r.fields.items() if not k.startswith("tokenizer.")}
    arch = f["general.architecture"]
    return {"tensors": {t.name: int(t.n_bytes) for t in r.tensors},
            "n_layer": f[f"{arch}.block_count"], "n_head": f[f"{arch}.attention.head_count"],
            "n_head_kv": f[f"{arch}.attention.head_count_kv"],
            "n_embd": f[f"{arch}.embedding_length"], "ctx_train": f[f"{arch}.context_length"]}


@pytest.fixture(scope="module")
def info(model_file):
    return read_model_info(model_file)


def test_sparse_file_is_sparse_and_reads_like_the_model(model_file, ref, info):
    st = model_file.stat()
    assert st.st_blocks * 512 < 1024 * 1024 < st.st_size      # the data region is a hole
    assert info.n_layer == ref["n_layer"] == 16 and info.n_head == ref["n_head"]
    assert set(info.n_head_kv) == {ref["n_head_kv"]} and len(info.n_head_kv) == info.n_layer
    assert info.head_dim_k == info.head_dim_v == ref["n_embd"] // ref["n_head"]
    assert info.n_ctx_train == ref["ctx_train"]
    assert info.total_tensor_bytes == sum(ref["tensors"].values())
    for i in (0, info.n_layer - 1):
        assert info.layer_bytes[i] == sum(v for k, v in ref["tensors"].items() if k.startswith(f"blk.{i}."))
    assert info.tied_output == ("output.weight" not in ref["tensors"])


def test_full_offload_budget_from_the_tensor_table(model_file, ref, info):
    b = budget_for_llama(model_file, ["llama-server", "-m", "/models/x.gguf", "-c", "2048",
                                      "-np", "2", "-ngl", "99"], cuda_context_mib=300)
    t = ref["tensors"]
    on_gpu = sum(v for k, v in t.items() if not k.startswith("token_embd.")) + t["token_embd.weight"]
    assert b.weights_mib == pytest.approx(on_gpu / MIB)
    head_dim = ref["n_embd"] // ref["n_head"]
    assert b.kv_cache_mib == pytest.approx(2048 * ref["n_layer"] * ref["n_head_kv"] * head_dim * 4 / MIB)
    assert b.cuda_context_mib == 300 and b.compute_mib > 0
    assert b.total_mib == pytest.approx(b.buffers_mib + 300)
    assert b.params["gpu_layers"] == ref["n_layer"] and b.params["output_on_gpu"] is True


def test_only_m_uses_llama_cpp_defaults(info):
    """No -ngl: all layers; no -c: training context; no -np: 4 slots; FA auto: on; non-zero."""
    b = budget_from_info(info, parse_server_args(["-m", "x.gguf"]))
    p = b.params
    assert (p["n_gpu_layers"], p["output_on_gpu"], p["n_ctx"], p["n_parallel"], p["kv_unified"],
            p["flash_attn"]) == (info.n_layer + 1, True, info.n_ctx_train, 4, True, True)
    assert b.total_mib and b.total_mib > b.buffers_mib > 1000
    assert b.sources["cuda_context_mib"].startswith("calibration")
    assert sum("default" in a for a in b.assumptions) == 3


def test_ngl_counts_the_output_layer(info):
    """-ngl N: the output layer and the last N-1 blocks (llama.cpp: 'offloaded 12/29')."""
    k = 7
    b = budget_from_info(info, parse_server_args(["-c", "1024", "-ngl", str(k)]))
    assert b.params["gpu_layers"] == k - 1 and b.params["output_on_gpu"] is True
    assert b.weights_mib == pytest.approx((sum(info.layer_bytes[-(k - 1):]) + info.output_bytes
                                           + info.token_embd_bytes) / MIB)
    one_layer_kv = 1024 * info.n_head_kv[0] * (info.head_dim_k + info.head_dim_v) * 2
    assert b.kv_cache_mib == pytest.approx((k - 1) * one_layer_kv / MIB)   # KV of GPU layers only
    b2 = budget_from_info(info, parse_server_args(["-ngl", str(info.n_layer), "-c", "1024"]))
    assert b2.params["gpu_layers"] == info.n_layer - 1 and b2.params["output_on_gpu"]


def test_cpu_only_server_still_has_a_compute_buffer(info):
    """-ngl 0 on CUDA: ggml still runs the big matrix products on the GPU (71 MiB on the H200)."""
    b = budget_from_info(info, parse_server_args(["-c", "4096", "-np", "2", "-ngl", "0"]))
    assert (b.weights_mib, b.kv_cache_mib) == (0, 0)
    assert b.compute_mib == pytest.approx(71.0, abs=0.5)
    assert b.sources["cuda_context_mib"].endswith("(none_offloaded)")


def test_cache_type_and_context_scale_kv(info):
    f16 = budget_from_info(info, parse_server_args(["-c", "4096", "-ngl", "all"]))
    q8 = budget_from_info(info, parse_server_args(["-c", "4096", "-ngl", "all", "-ctk", "q8_0",
                                                   "--cache-type-v=q4_0"]))
    half = budget_from_info(info, parse_server_args(["-c", "2048", "-ngl", "all"]))
    assert q8.kv_cache_mib == pytest.approx(
        f16.kv_cache_mib * (CACHE_TYPE_BYTES["q8_0"] + CACHE_TYPE_BYTES["q4_0"]) / 4)
    assert half.kv_cache_mib == pytest.approx(f16.kv_cache_mib / 2)
    full = budget_from_info(info, parse_server_args(["-c", "0", "-ngl", "99"]))
    assert full.params["n_ctx"] == info.n_ctx_train
    nkvo = budget_from_info(info, parse_server_args(["-c", "4096", "-ngl", "99", "-nkvo"]))
    assert nkvo.kv_cache_mib == 0
    # -np splits the context between slots; the KV total is unchanged
    np4 = budget_from_info(info, parse_server_args(["-c", "4096", "-ngl", "all", "-np", "4"]))
    assert np4.kv_cache_mib == f16.kv_cache_mib


def test_flash_attention_and_ubatch_change_compute(info):
    on = budget_from_info(info, parse_server_args(["-c", "4096", "-np", "2", "-ngl", "99"]))
    off = budget_from_info(info, parse_server_args(["-c", "4096", "-np", "2", "-ngl", "99", "-fa", "off"]))
    ub = budget_from_info(info, parse_server_args(["-c", "4096", "-np", "2", "-ngl", "99", "-ub", "256"]))
    assert off.compute_mib > on.compute_mib and off.params["flash_attn"] is False
    assert ub.compute_mib == pytest.approx(on.compute_mib / 2)
    assert off.sources["cuda_context_mib"].endswith("(cublas)")


def test_unknown_architecture_marks_the_term_unknown(tmp_path):
    from llmops.testing.gguf_shapes import LlamaShape

    f = write_sparse_gguf(tmp_path / "odd.gguf", LlamaShape(512, 2, 8, 2, 1024, "Q8_0", arch="oddformer"))
    b = budget_for_llama(f, ["-c", "1024"])
    assert b.compute_mib is None and "oddformer" in b.unknown["compute_mib"]
    assert b.weights_mib > 0 and b.buffers_mib is None and b.total_mib is None
    assert b.to_json()["compute_mib"] is None      # never 0 for unknown


def test_parse_server_args_forms():
    o = parse_server_args(["--ctx-size=8192", "--n-gpu-layers", "35", "--cache-type-k", "Q8_0",
                           "-ctv", "q8_0", "-ub", "256", "--model", "/m.gguf", "-fa", "on"])
    assert (o.ctx_size, o.n_gpu_layers, o.cache_type_k, o.cache_type_v, o.ubatch, o.model_arg,
            o.flash_attn) == (8192, 35, "q8_0", "q8_0", 256, "/m.gguf", "on")
    assert parse_server_args("llama-server -c 512 -ngl all").n_gpu_layers == -1
    assert parse_server_args("-fa off -fit off -fitt 512").flash_attn == "off"
    o = parse_server_args("-fit off -fitt 512 -np 3")
    assert (o.fit, o.fit_target_mib, o.parallel, o.unified) == (False, 512, 3, False)
    o = parse_server_args(["-c", "${CHAT_CTX:-4096}", "-ngl", "${CHAT_NGL:-99}"])
    assert (o.ctx_size, o.n_gpu_layers) == (4096, 99) and len(o.assumptions) == 2
    # env applies, flags win
    o = parse_server_args(["-c", "1024"], env={"LLAMA_ARG_CTX_SIZE": "2048", "LLAMA_ARG_N_GPU_LAYERS": "5"})
    assert (o.ctx_size, o.n_gpu_layers) == (1024, 5)
    o = parse_server_args(None)
    assert o.ctx_size is None and o.n_gpu_layers is None and o.cache_type_k == "f16"
    assert (o.flash_attn, o.n_seq, o.unified, o.fit, o.fit_target_mib) == ("auto", 4, True, True, 1024)
    # the LLAMA_ARG_* forms of the settings that change memory
    o = parse_server_args([], env={"LLAMA_ARG_FLASH_ATTN": "off", "LLAMA_ARG_N_PARALLEL": "2",
                                   "LLAMA_ARG_UBATCH": "128", "LLAMA_ARG_CACHE_TYPE_K": "q8_0",
                                   "LLAMA_ARG_FIT": "off"})
    assert (o.flash_attn, o.parallel, o.ubatch, o.cache_type_k, o.fit) == ("off", 2, 128, "q8_0", False)


@pytest.mark.parametrize("argv, needle", [
    (["-c", "lots"], "-c"), (["-ngl"], "-ngl"), (["-ctk", "q3_weird"], "q3_weird"),
    (["-ngl", "abc"], "-ngl"), (["--flash-attn=maybe"], "-fa"),
])
def test_parse_server_args_rejects_bad_values(argv, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        parse_server_args(argv)


def test_unreadable_model_is_config_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(ConfigError, match="bad.gguf"):
        read_model_info(bad)


LOG_NEW = """\
load_tensors: offloading 30 repeating layers to GPU
load_tensors:   CPU_Mapped model buffer size =    28.69 MiB
load_tensors:        CUDA0 model buffer size =    92.10 MiB
llama_context:  CUDA_Host  output buffer size =     0.19 MiB
llama_kv_cache_unified:      CUDA0 KV buffer size =    45.00 MiB
llama_kv_cache_unified: size =   45.00 MiB (  2048 cells,  30 layers,  1 seqs), K (f16):   22.50 MiB, V (f16):   22.50 MiB
llama_context:      CUDA0 compute buffer size =   105.50 MiB
llama_context:  CUDA_Host compute buffer size =     5.13 MiB
"""
LOG_OLD = """\
llm_load_tensors:        CPU buffer size =    70.31 MiB
llm_load_tensors:      CUDA0 buffer size =  3577.56 MiB
llama_kv_cache_init:      CUDA0 KV buffer size =   256.00 MiB
llama_new_context_with_model: KV self size  =  256.00 MiB, K (f16):  128.00 MiB, V (f16):  128.00 MiB
llama_new_context_with_model:      CUDA0 compute buffer size =   164.01 MiB
llama_new_context_with_model:  CUDA_Host compute buffer size =    12.01 MiB
"""
LOG_CPU = """\
load_tensors:   CPU_Mapped model buffer size =    92.10 MiB
llama_kv_cache_unified:        CPU KV buffer size =    45.00 MiB
llama_context:        CPU compute buffer size =   106.00 MiB
"""


def test_parse_llama_log_versions():
    new = parse_llama_log(LOG_NEW)
    assert new.gpu_weights_mib == pytest.approx(92.10)
    assert new.gpu_kv_mib == pytest.approx(45.0)
    assert new.gpu_compute_mib == pytest.approx(105.50)
    assert new.gpu_total_mib == pytest.approx(92.10 + 45.0 + 105.50)
    assert new.model["CPU_Mapped"] == pytest.approx(28.69) and new.compute["CUDA_Host"] == pytest.approx(5.13)
    old = parse_llama_log(LOG_OLD)
    assert old.gpu_weights_mib == pytest.approx(3577.56) and old.model["CPU"] == pytest.approx(70.31)
    assert old.kv_self_mib == pytest.approx(256.0)
    assert old.gpu_total_mib == pytest.approx(3577.56 + 256 + 164.01)   # KV not double counted
    cpu = parse_llama_log(LOG_CPU)
    assert cpu.gpu_total_mib == 0 and cpu.kv["CPU"] == pytest.approx(45.0)
    assert parse_llama_log("nothing here\n").empty
    # a restart: the latest load wins
    twice = parse_llama_log(LOG_OLD + LOG_OLD.replace("3577.56", "1000.00"))
    assert twice.gpu_weights_mib == pytest.approx(1000.0)


def test_budget_file_yaml_and_json(tmp_path):
    y = tmp_path / "b.yaml"
    y.write_text("overhead_mib: 512\ncuda_context_mib: 300\nservices:\n"
                 "  inference-chat: {weights_mib: 2000, kv_cache_mib: 128.5}\n  inference-code:\n")
    bf = load_budget_file(y)
    assert bf.overhead_mib == 512 and bf.cuda_context_mib == 300
    assert bf.services == {"inference-chat": {"weights_mib": 2000.0, "kv_cache_mib": 128.5},
                           "inference-code": {}}
    j = tmp_path / "b.json"
    j.write_text(json.dumps({"services": {"a": {"compute_mib": 1}}}))
    assert load_budget_file(j).services == {"a": {"compute_mib": 1.0}}


@pytest.mark.parametrize("name, text, needle", [
    ("b.yaml", "services: [unclosed\n", "invalid YAML"),
    ("b.json", "{not json", "invalid JSON"),
    ("b.yaml", "- a\n- b\n", "mapping"),
    ("b.yaml", "overhead: 1\n", "unknown key"),
    ("b.yaml", "services: {x: {weights: 1}}\n", "unknown term"),
    ("b.yaml", "services: {x: {weights_mib: -1}}\n", "non-negative"),
    ("b.yaml", "services: {x: {weights_mib: lots}}\n", "non-negative"),
    ("b.yaml", "services: {x: 5}\n", "mapping"),
])
def test_malformed_budget_file_is_one_line_config_error(tmp_path, name, text, needle):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ConfigError) as ei:
        load_budget_file(p)
    msg = str(ei.value)
    assert needle in msg and str(p) in msg and "\n" not in msg
    assert ei.value.exit_code == ExitCode.USAGE


def test_missing_budget_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_budget_file(tmp_path / "nope.yaml")


def synthetic(n_layer=4, layer_bytes=None, tied=False):
    from llmops.gpu.model import ModelInfo
    lb = layer_bytes or [(i + 1) * 10 * MIB for i in range(n_layer)]
    return ModelInfo(path="synthetic", arch="llama", n_layer=n_layer, n_ctx_train=4096, n_embd=512,
                     n_head=8, n_head_kv=[2] * n_layer, head_dim_k=64, head_dim_v=64, n_vocab=1000,
                     n_ff=1024, layer_bytes=lb, input_bytes=7 * MIB, output_bytes=3 * MIB,
                     tied_output=tied, token_embd_bytes=7 * MIB, file_bytes=sum(lb) + 10 * MIB)


def test_offload_order_and_output_layer_with_distinct_layer_sizes():
    info = synthetic()                        # layers of 10, 20, 30, 40 MiB
    two = budget_from_info(info, parse_server_args(["-ngl", "3", "-c", "256"]))
    assert two.weights_mib == pytest.approx(30 + 40 + 3)         # the LAST layers, + the output layer
    allp = budget_from_info(info, parse_server_args(["-ngl", "5", "-c", "256"]))
    assert allp.weights_mib == pytest.approx(100 + 3)           # + output, not the input embedding
    tied = budget_from_info(synthetic(tied=True), parse_server_args(["-ngl", "all", "-c", "256"]))
    assert tied.weights_mib == pytest.approx(100 + 3 + 7)       # tied: embedding duplicated as output
    # per-layer KV heads (GGUF array) are honoured per offloaded layer
    info_h = synthetic()
    info_h.n_head_kv = [1, 2, 4, 8]
    kv = budget_from_info(info_h, parse_server_args(["-ngl", "3", "-c", "256"])).kv_cache_mib
    assert kv == pytest.approx(256 * (4 + 8) * (64 * 2 + 64 * 2) / MIB)
    # context is padded to llama.cpp's 256-cell granularity
    pad = budget_from_info(info, parse_server_args(["-ngl", "all", "-c", "300"]))
    assert pad.params["n_ctx_alloc"] == 512


# ---- llama.cpp's own argument rules (common/arg.cpp, llama_init_from_model) ----------------------

@pytest.mark.parametrize("argv", [["-fa", "maybe"], ["-fa", "yes"], ["-fa", "ON"], ["-fa"],
                                  ["-fa", "-ctv", "q8_0"], ["--flash-attn=maybe"]])
def test_flash_attn_takes_only_llama_cpp_values(argv):
    # `-fa maybe` was read as on; a bare `-fa` eats the next word in llama.cpp
    with pytest.raises(ConfigError, match="-fa"):
        parse_server_args(argv)


@pytest.mark.parametrize("value, want", [("on", "on"), ("1", "on"), ("enabled", "on"), ("true", "on"),
                                         ("off", "off"), ("0", "off"), ("disabled", "off"),
                                         ("auto", "auto"), ("-1", "auto")])
def test_flash_attn_llama_cpp_spellings(value, want):
    assert parse_server_args(["-fa", value]).flash_attn == want
    assert parse_server_args([], env={"LLAMA_ARG_FLASH_ATTN": value}).flash_attn == want


def test_quantized_v_cache_needs_flash_attention():
    with pytest.raises(ConfigError, match=r"-ctv q4_0 needs flash attention, but -fa is off"):
        parse_server_args("-ctv q4_0 -fa off")
    with pytest.raises(ConfigError, match="needs flash attention"):
        parse_server_args([], env={"LLAMA_ARG_CACHE_TYPE_V": "q8_0", "LLAMA_ARG_FLASH_ATTN": "off"})
    # auto is on with CUDA, as llama.cpp plans it; a quantized K alone needs nothing
    assert parse_server_args("-ctv q4_0 -fa auto").flash_attn_on
    assert parse_server_args("-ctv q4_0").flash_attn_on
    assert parse_server_args("-ctk q4_0 -fa off").cache_type_k == "q4_0"
    assert parse_server_args("-ctv bf16 -fa off").cache_type_v == "bf16"


def test_unknown_flags_are_collected_and_known_ones_are_not():
    o = parse_server_args("llama-server -m /m.gguf --ctx 999999 --bogus-flag --host 0.0.0.0 --port 8080 "
                          "-lv 4 --seed -1 --jinja -t 1 --metrics --api-key=k")
    assert o.unknown_flags == ["--ctx", "--bogus-flag"]
    assert o.ctx_size is None            # --ctx is not -c/--ctx-size: llama.cpp would refuse it


def test_gpu_plan_refuses_unknown_flags_unless_allowed():
    from llmops.gpu.plan import spec_from_args

    with pytest.raises(ConfigError, match=r"llama-server does not know --ctx, --bogus-flag") as ei:
        spec_from_args("-m /m.gguf --ctx 999999 --bogus-flag", 0)
    assert "--allow-unknown-flags" in str(ei.value) and "\n" not in str(ei.value)
    assert spec_from_args("-m /m.gguf --ctx 999999 --bogus-flag", 0, allow_unknown_flags=True).name == "server-1"


def test_compose_gpu_profile_uses_only_known_flags():
    from llmops.gpu.plan import specs_from_compose
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {"CHAT_MODEL_FILE": "chat.gguf", "CODE_MODEL_FILE": "code.gguf", "MODELS_DIR": "/models"}
    try:
        specs = specs_from_compose(root, env)
    except ConfigError as e:             # a mount layout this test does not mimic: not a flag problem
        assert "does not know" not in str(e)
    else:
        assert specs
