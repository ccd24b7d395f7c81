"""The VRAM a llama.cpp server will use, term by term, following llama.cpp's own semantics.

    buffers = weights on the GPU + KV cache on the GPU + CUDA compute buffer
    total   = buffers + per-process overhead (calibrated, see `calibration.py`)

* weights: the bytes of the GGUF tensors that land on the GPU, from the file's tensor table.
  `-ngl N` counts the output layer as one of N "layers" (n_layer + 1 in all): the last N-1
  repeating blocks plus the output layer go to the GPU; no `-ngl` means every layer.  A tied
  output matrix is a copy of token_embd on the GPU.
* KV cache: n_ctx x (offloaded repeating layers) x n_head_kv x (head_dim_k x bytes(-ctk)
  + head_dim_v x bytes(-ctv)).  `-np N` splits n_ctx between slots; the total is unchanged.
* compute buffer: a model of ggml's graph allocation, from the real H200 figures
  (`compute_buffer_mib`).  Within 1 MiB of llama.cpp's own figure on every measured run.
* overhead: what no buffer line accounts for (CUDA context, cuBLAS workspace, ggml's pool).
  519-690 MiB on the H200; measured per machine by `gpu-report`, never assumed to be 0.

A term that cannot be known is None with the reason in `Budget.unknown`; it is never 0.
`gguf` is imported lazily: the package must import on machines that lack it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..rounding import rounded
from ..errors import ConfigError
from .llamaargs import (  # noqa: F401 - re-exported for callers of the old module
    CACHE_TYPE_BYTES, CTX_PAD, DEFAULT_CACHE_TYPE, DEFAULT_PARALLEL, DEFAULT_UBATCH, ServerOptions,
    parse_server_args,
)
from .llamalog import EngineReport, parse_llama_log  # noqa: F401 - re-exported
from .model import LLAMA_LIKE_ARCHS, NON_STANDARD_KV_ARCHS, ModelInfo, read_model_info  # noqa: F401

MIB = 1024 * 1024

TERMS = ("weights_mib", "kv_cache_mib", "compute_mib", "cuda_context_mib")

# ggml-cuda runs the matrix products of layers left on the CPU on the GPU ("op offload") when a
# batch has at least this many tokens; it then stages each weight in the compute buffer.
OP_OFFLOAD_MIN_BATCH = 32

# Coefficients of the compute-buffer model, in units of one f32 activation row of the ubatch
# (n_embd x n_ubatch x 4 bytes = "E"; n_ff x n_ubatch x 4 bytes = "F").  Chosen from the
# structure of the llama graph and checked against the H200 runs (docs/gpu.md):
#   FFN peak (gate, up and their product live, plus the residual stream): 3 F + 4.5 E;
#   a CPU layer's product staged on the GPU: 2 F + its largest weight + 5.5 E;
#   attention without flash attention: the f32 scores n_kv x n_ubatch x n_head + 6.5 E.
FFN_F, FFN_E = 3.0, 4.5
STAGE_F, STAGE_E = 2.0, 5.5
ATTN_E = 6.5


@dataclass
class Budget:
    """One server's expected VRAM, term by term (MiB), and how each term was obtained."""

    service: str
    weights_mib: float | None = None
    kv_cache_mib: float | None = None
    compute_mib: float | None = None
    cuda_context_mib: float | None = None     # per-process overhead (the plan's overhead_mib)
    sources: dict[str, str] = field(default_factory=dict)   # term -> "formula"|"budget-file"|...
    params: dict[str, Any] = field(default_factory=dict)    # what the formula used
    assumptions: list[str] = field(default_factory=list)
    unknown: dict[str, str] = field(default_factory=dict)   # term -> why it cannot be known
    error: str | None = None                                # why the formula could not run

    @property
    def buffers_mib(self) -> float | None:
        vals = [self.weights_mib, self.kv_cache_mib, self.compute_mib]
        if any(v is None for v in vals):
            return None
        return float(sum(vals))  # type: ignore[arg-type]

    @property
    def total_mib(self) -> float | None:
        if self.buffers_mib is None or self.cuda_context_mib is None:
            return None
        return self.buffers_mib + self.cuda_context_mib

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            **{t: rounded(getattr(self, t), 2) for t in TERMS},
            "buffers_mib": rounded(self.buffers_mib, 2), "total_mib": rounded(self.total_mib, 2),
            "sources": dict(self.sources), "params": dict(self.params),
            "assumptions": list(self.assumptions), "unknown": dict(self.unknown),
            "error": self.error,
        }


def offloaded_layers(info: ModelInfo, ngl: int | None) -> tuple[int, bool]:
    """(repeating layers on the GPU, output layer on the GPU), as llama.cpp assigns them.

    llama.cpp numbers n_layer + 1 layers, the output layer last, and offloads the last `ngl` of
    them: `-ngl 12` on 28 blocks puts the output layer and blocks 17..27 (11) on the GPU.
    No `-ngl` (None) or a negative one means all.  The input layer (token_embd) stays on the CPU.
    """
    total = info.n_layer + 1
    n = total if ngl is None or ngl < 0 else min(int(ngl), total)
    return max(0, n - 1), n >= 1


def kv_cache_bytes(info: ModelInfo, n_ctx: int, layers: Iterable[int],
                   type_k: str, type_v: str) -> float:
    bk, bv = CACHE_TYPE_BYTES[type_k], CACHE_TYPE_BYTES[type_v]
    return float(sum(n_ctx * info.n_head_kv[i] * (info.head_dim_k * bk + info.head_dim_v * bv)
                     for i in layers))


def compute_buffer_mib(info: ModelInfo, *, n_ctx: int, n_seq: int, unified: bool, ubatch: int,
                       flash_attn: bool, gpu_layers: int, output_on_gpu: bool) -> float:
    """llama.cpp's CUDA compute buffer (MiB): the peak of ggml's graph allocator over one ubatch.

    Measured on the H200 (docs/gpu.md), flash attention on: 66.01 (1B), 76.01 (3B), 120.01 (8B)
    MiB with every layer offloaded; 71.00 for `-ngl 0`; 112.00 for 12/29 layers of an F16 3B.
    """
    u = max(1, ubatch)
    e = info.n_embd * u * 4 / MIB
    f = info.n_ff * u * 4 / MIB
    cpu_layers = info.n_layer - gpu_layers
    if gpu_layers == 0 and not output_on_gpu and u < OP_OFFLOAD_MIN_BATCH:
        return 0.0                           # nothing runs on the GPU at all
    mib = FFN_F * f + FFN_E * e
    if cpu_layers > 0 and u >= OP_OFFLOAD_MIN_BATCH:
        w_max = max(info.layer_max_tensor_bytes[:cpu_layers] or [0]) / MIB
        mib = max(mib, STAGE_F * f + w_max + STAGE_E * e)
    if not flash_attn:
        n_kv = n_ctx if unified else max(1, n_ctx // max(1, n_seq))
        mib = max(mib, n_kv * u * info.n_head * 4 / MIB + ATTN_E * e)
    return mib


# An encoder's compute buffer, from llama-server's own log (b11669, CPU backend, flash attention on,
# as auto gives with CUDA): 8.02 MiB at -ub 512 (1.94 at 128, 3.88 at 256, 17.03 at 1024) for a
# 384-wide, 1536-feed-forward BERT, whatever the layer count or -np.  Scaled by ubatch and width;
# not yet checked on a GPU, so it is reported as an estimate.
ENCODER_COMPUTE_MIB_PER_TOKEN = 8.02 / 512
ENCODER_REF_WIDTH = 384 + 1536


def encoder_compute_mib(info: ModelInfo, ubatch: int) -> float:
    return ENCODER_COMPUTE_MIB_PER_TOKEN * max(1, ubatch) * (info.n_embd + info.n_ff) / ENCODER_REF_WIDTH


def resolve_ctx(info: ModelInfo, opts: ServerOptions, notes: list[str]) -> int:
    if opts.ctx_size:
        return opts.ctx_size
    if info.n_ctx_train:
        notes.append(f"no -c: the model's training context {info.n_ctx_train} (llama.cpp default)")
        return info.n_ctx_train
    raise ConfigError(f"{info.path}: no -c and the model states no context_length")


def budget_from_info(info: ModelInfo, opts: ServerOptions, service: str = "",
                     cuda_context_mib: float | None = None, *,
                     n_ctx: int | None = None, n_gpu_layers: int | None = None,
                     calibration: Any = None) -> Budget:
    """The budget of one server.  `n_ctx`/`n_gpu_layers` override the command line (what fit
    would choose).  The overhead comes from `cuda_context_mib` if given, else `calibration`
    (a `calibration.Calibration`), else the default calibration."""
    b = Budget(service=service, assumptions=list(opts.assumptions))
    ctx = n_ctx if n_ctx is not None else resolve_ctx(info, opts, b.assumptions)
    ctx_alloc = int(math.ceil(ctx / CTX_PAD) * CTX_PAD)
    ngl = n_gpu_layers if n_gpu_layers is not None else opts.n_gpu_layers
    if ngl is None and n_gpu_layers is None:
        b.assumptions.append("no -ngl: every layer on the GPU (llama.cpp default)")
    n_gpu, out_gpu = offloaded_layers(info, ngl)
    if opts.parallel is None:
        b.assumptions.append(f"no -np: {DEFAULT_PARALLEL} slots, unified KV (llama.cpp default)")
    if opts.flash_attn == "auto":
        b.assumptions.append("flash attention auto: on with CUDA")
    gpu_layers = list(range(info.n_layer - n_gpu, info.n_layer))
    weights = float(sum(info.layer_bytes[i] for i in gpu_layers))
    if info.encoder:
        _encoder_terms(b, info, opts, n_gpu, weights)
        _set_overhead(b, info, n_gpu, False, opts.flash_attn_on, cuda_context_mib, calibration)
        b.params = _encoder_params(info, opts, ctx, ctx_alloc, n_gpu)
        return b
    if out_gpu:
        weights += info.output_bytes
        if info.tied_output:
            weights += info.token_embd_bytes   # duplicated onto the GPU as the output matrix
    b.weights_mib = weights / MIB
    b.sources = {t: "formula" for t in TERMS}
    if info.arch in NON_STANDARD_KV_ARCHS:
        b.unknown["kv_cache_mib"] = (f"architecture {info.arch!r} keeps recurrent state or "
                                     "sliding-window KV, which the KV formula does not model")
    else:
        kv_layers = gpu_layers if opts.kv_offload else []
        b.kv_cache_mib = kv_cache_bytes(info, ctx_alloc, kv_layers, opts.cache_type_k,
                                        opts.cache_type_v) / MIB
    if info.arch not in LLAMA_LIKE_ARCHS:
        b.unknown["compute_mib"] = (f"architecture {info.arch!r}: the compute-buffer model was "
                                    "measured on llama-like graphs only")
    elif not info.n_embd or not info.n_ff:
        b.unknown["compute_mib"] = "the model states no embedding or feed-forward length"
    else:
        b.compute_mib = compute_buffer_mib(
            info, n_ctx=ctx_alloc, n_seq=opts.n_seq, unified=opts.unified,
            ubatch=min(opts.ubatch, opts.batch), flash_attn=opts.flash_attn_on,
            gpu_layers=n_gpu, output_on_gpu=out_gpu)
    for t in b.unknown:
        b.sources[t] = "unknown"
    _set_overhead(b, info, n_gpu, out_gpu, opts.flash_attn_on, cuda_context_mib, calibration)
    b.params = {
        "model": info.path, "arch": info.arch, "n_layer": info.n_layer,
        "gpu_layers": n_gpu, "output_on_gpu": out_gpu,
        "n_gpu_layers": n_gpu + (1 if out_gpu else 0),
        "n_ctx": ctx, "n_ctx_alloc": ctx_alloc,
        "n_ctx_train": info.n_ctx_train, "n_parallel": opts.n_seq, "kv_unified": opts.unified,
        "cache_type_k": opts.cache_type_k, "cache_type_v": opts.cache_type_v,
        "n_head": info.n_head, "n_head_kv": sorted(set(info.n_head_kv)),
        "head_dim_k": info.head_dim_k, "head_dim_v": info.head_dim_v, "n_embd": info.n_embd,
        "n_vocab": info.n_vocab, "n_ff": info.n_ff, "ubatch": min(opts.ubatch, opts.batch),
        "flash_attn": opts.flash_attn_on, "flash_attn_arg": opts.flash_attn,
        "kv_offload": opts.kv_offload, "tied_output": info.tied_output,
        "weight_types": info.weight_types, "file_mib": round(info.file_bytes / MIB, 2),
        "fit": opts.fit, "fit_target_mib": opts.fit_target_mib,
    }
    return b


def _set_overhead(b: Budget, info: ModelInfo, n_gpu: int, out_gpu: bool, flash_attn: bool,
                  cuda_context_mib: float | None, calibration: Any) -> None:
    """The per-process overhead: given, else the calibration's figure for this server's class."""
    if cuda_context_mib is not None:
        b.cuda_context_mib = float(cuda_context_mib)
        return
    from .calibration import default_calibration

    cal = calibration or default_calibration()
    cls = overhead_class(info, n_gpu, out_gpu, flash_attn)
    b.cuda_context_mib = cal.overhead_for(cls)
    b.sources["cuda_context_mib"] = f"calibration {cal.name} ({cls})"


def _encoder_terms(b: Budget, info: ModelInfo, opts: ServerOptions, n_gpu: int, weights: float) -> None:
    """An embedding encoder (BERT): its layers' weights (the embeddings are the input layer, on
    the CPU; there is no output head), no KV cache (llama.cpp gives a non-causal model no
    memory: its log has no KV buffer), and the estimated compute buffer."""
    ub = min(opts.ubatch, opts.batch)
    b.weights_mib = weights / MIB
    b.kv_cache_mib = 0.0
    b.compute_mib = encoder_compute_mib(info, ub) if n_gpu else 0.0
    b.sources = {t: "formula" for t in TERMS}
    b.sources["kv_cache_mib"] = "none: a non-causal encoder has no KV cache"
    b.sources["compute_mib"] = "estimate: scaled from llama-server's CPU log (not yet measured on a GPU)"
    b.assumptions.append(f"{info.arch} encoder: compute buffer estimated at {b.compute_mib:.1f} MiB for -ub {ub}")


def _encoder_params(info: ModelInfo, opts: ServerOptions, ctx: int, ctx_alloc: int,
                    n_gpu: int) -> dict[str, Any]:
    return {"model": info.path, "arch": info.arch, "n_layer": info.n_layer, "gpu_layers": n_gpu,
            "output_on_gpu": False, "n_gpu_layers": n_gpu, "n_ctx": ctx, "n_ctx_alloc": ctx_alloc,
            "n_ctx_train": info.n_ctx_train, "n_parallel": opts.n_seq, "kv_unified": opts.unified,
            "n_embd": info.n_embd, "n_ff": info.n_ff, "n_head": info.n_head,
            "ubatch": min(opts.ubatch, opts.batch),
            "flash_attn": opts.flash_attn_on, "flash_attn_arg": opts.flash_attn, "encoder": True}


def overhead_class(info: ModelInfo, gpu_layers: int, output_on_gpu: bool,
                   flash_attn: bool) -> str:
    """Which calibrated overhead applies: the H200 runs show three levels (docs/gpu.md)."""
    if gpu_layers == 0 and not output_on_gpu:
        return "none_offloaded"
    if not flash_attn or any(t in ("F16", "BF16", "F32") for t in info.weight_types):
        return "cublas"          # cuBLAS does the matrix work: its workspace is allocated
    return "quantized"


def budget_for_llama(model_path: Path | str, argv: Iterable[str] | str | None, *,
                     service: str = "", env: Mapping[str, str] | None = None,
                     cuda_context_mib: float | None = None, calibration: Any = None,
                     n_ctx: int | None = None, n_gpu_layers: int | None = None) -> Budget:
    """The expected VRAM of one llama-server: its GGUF file (host path) and its command line
    (`n_ctx`/`n_gpu_layers`: what the server really runs, when its fit changed them)."""
    opts = parse_server_args(argv, env)
    info = read_model_info(model_path)
    return budget_from_info(info, opts, service=service, cuda_context_mib=cuda_context_mib,
                            calibration=calibration, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers)


# ----------------------------------------------------------------------------- budget file

@dataclass
class BudgetFile:
    overhead_mib: float = 0.0
    cuda_context_mib: float | None = None
    services: dict[str, dict[str, float]] = field(default_factory=dict)
    path: str | None = None


_FILE_KEYS = {"overhead_mib", "cuda_context_mib", "services"}


def load_budget_file(path: Path | str) -> BudgetFile:
    """Load a YAML or JSON budget file; anything malformed is one ConfigError line.

        overhead_mib: 0            # optional: added once (display server, other tenants)
        cuda_context_mib: 300      # optional: default per-process CUDA context
        services:
          inference-chat: {weights_mib: 2000, kv_cache_mib: 128}   # any of the four terms
    """
    from ..validate import read_config_text

    p = Path(path)
    text = read_config_text(p, "budget file")
    data: Any
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"budget file {p}: invalid JSON at line {exc.lineno}: {exc.msg}") \
                from None
    else:
        try:
            import yaml
            data = yaml.safe_load(text)
        except ImportError:
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                raise ConfigError(f"budget file {p}: PyYAML is not installed; use JSON") from None
        except Exception as exc:  # yaml.YAMLError
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"budget file {p}: invalid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"budget file {p}: expected a mapping at the top level")
    unknown = set(data) - _FILE_KEYS
    if unknown:
        raise ConfigError(f"budget file {p}: unknown key(s) {', '.join(sorted(map(str, unknown)))}"
                          f"; allowed: {', '.join(sorted(_FILE_KEYS))}")
    bf = BudgetFile(path=str(p))
    if "overhead_mib" in data:
        bf.overhead_mib = _mib(data["overhead_mib"], p, "overhead_mib")
    if "cuda_context_mib" in data:
        bf.cuda_context_mib = _mib(data["cuda_context_mib"], p, "cuda_context_mib")
    services = data.get("services") or {}
    if not isinstance(services, dict):
        raise ConfigError(f"budget file {p}: 'services' must map service names to terms")
    for name, terms in services.items():
        if terms is None:
            terms = {}
        if not isinstance(terms, dict):
            raise ConfigError(f"budget file {p}: services.{name} must be a mapping of terms")
        bad = set(terms) - set(TERMS)
        if bad:
            raise ConfigError(f"budget file {p}: services.{name}: unknown term(s) "
                              f"{', '.join(sorted(map(str, bad)))}; allowed: {', '.join(TERMS)}")
        bf.services[str(name)] = {t: _mib(v, p, f"services.{name}.{t}") for t, v in terms.items()}
    return bf


def _mib(v: Any, p: Path, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ConfigError(f"budget file {p}: {where} must be a non-negative number of MiB, got {v!r}")
    return float(v)


def apply_overrides(b: Budget, terms: Mapping[str, float]) -> Budget:
    for t, v in terms.items():
        setattr(b, t, float(v))
        b.sources[t] = "budget-file"
        b.unknown.pop(t, None)
    return b
