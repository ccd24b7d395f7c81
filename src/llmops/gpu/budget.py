"""The VRAM a llama.cpp server *should* use, from what it really runs.

    budget = weights offloaded + KV cache + compute buffer + CUDA context

* weights offloaded: the bytes of the GGUF tensors that land on the GPU, read from the file's
  tensor table (not guessed from the parameter count).
* KV cache: n_ctx x offloaded layers x (n_head_kv x head_dim_k x bytes(type_k)
  + n_head_kv x head_dim_v x bytes(type_v)).
* compute buffer: an estimate of llama.cpp's scratch graph (see `compute_buffer_bytes`).
* CUDA context: a per-process constant (driver, kernels, cuBLAS), measured by scripts/gpu-check.

Every term is shown separately and any term can be overridden per service by a budget file.
llama-server's own log lines ("CUDA0 model buffer size = X MiB", ...) are parsed into an
engine-reported figure, so the report can compare formula, engine and NVML.

`gguf` is imported lazily: the package must import on machines that lack it.
"""

from __future__ import annotations

import functools

import json
import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from llmops.errors import ConfigError

MIB = 1024 * 1024

# Defaults of llama-server when a flag is absent (llama.cpp common/common.h).  Each use of a
# default is recorded as an assumption in the budget, so the evidence says what was guessed.
DEFAULT_CTX = 4096
DEFAULT_NGL = 0
DEFAULT_UBATCH = 512
DEFAULT_CACHE_TYPE = "f16"
# llama.cpp pads the context it allocates KV for to a multiple of this.
CTX_PAD = 256
# Per-process CUDA context (driver state, loaded kernels, cuBLAS workspace).  A round figure;
# `scripts/gpu-check` measures the real one on a given machine; override it in a budget file.
DEFAULT_CUDA_CONTEXT_MIB = 256.0

# Bytes per element of the KV cache types llama-server accepts (-ctk/-ctv).
# Block-quantised types: block bytes / block elements (ggml's type traits).
CACHE_TYPE_BYTES: dict[str, float] = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
    "q4_1": 20 / 32,
    "iq4_nl": 18 / 32,
    "q5_0": 22 / 32,
    "q5_1": 24 / 32,
}

TERMS = ("weights_mib", "kv_cache_mib", "compute_mib", "cuda_context_mib")


# ----------------------------------------------------------------------------- model metadata

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
    """Read a GGUF file's metadata and tensor table.  Raises ConfigError on an unreadable file.

    Both llama-servers often run the same file, and reading one takes seconds: cache by
    (path, size, mtime) so a changed file is read again."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return _read_model_info(str(p), -1, -1)
    return _read_model_info(str(p.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _read_model_info(path: str, _size: int, _mtime_ns: int) -> ModelInfo:
    try:
        from gguf import GGUFReader
    except ImportError as exc:
        raise ConfigError(f"cannot read {path}: the 'gguf' package is not installed") from exc
    p = Path(path)
    try:
        reader = GGUFReader(str(p), "r")
    except Exception as exc:  # gguf raises ValueError/OSError/struct errors on bad files
        raise ConfigError(f"cannot read GGUF file {p}: {exc}") from exc

    fields: dict[str, Any] = {}
    for key, f in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key != "tokenizer.ggml.tokens":
            continue
        try:
            fields[key] = _field_value(f)
        except Exception:
            continue

    arch = str(fields.get("general.architecture", "llama"))

    def kv(name: str, default: Any = None) -> Any:
        return fields.get(f"{arch}.{name}", default)

    n_layer = kv("block_count")
    if n_layer is None:
        raise ConfigError(f"GGUF file {p} has no {arch}.block_count")
    n_layer = int(n_layer)
    n_embd = int(kv("embedding_length", 0))
    n_head = int(kv("attention.head_count", 0) if not isinstance(kv("attention.head_count"), list)
                 else max(kv("attention.head_count")))
    hkv = kv("attention.head_count_kv", n_head)
    n_head_kv = [int(x) for x in hkv] if isinstance(hkv, list) else [int(hkv)] * n_layer
    if len(n_head_kv) < n_layer:
        n_head_kv += [n_head_kv[-1] if n_head_kv else n_head] * (n_layer - len(n_head_kv))
    head_dim = (n_embd // n_head) if n_head else 0
    head_dim_k = int(kv("attention.key_length", head_dim))
    head_dim_v = int(kv("attention.value_length", head_dim))
    n_ff_raw = kv("feed_forward_length", 0)
    n_ff = int(max(n_ff_raw) if isinstance(n_ff_raw, list) else n_ff_raw)

    layer_bytes = [0] * n_layer
    input_bytes = output_bytes = token_embd_bytes = 0
    has_output = False
    vocab_from_tensor = None
    for t in reader.tensors:
        name = t.name
        nb = _tensor_bytes(t)
        m = re.match(r"blk\.(\d+)\.", name)
        if m and int(m.group(1)) < n_layer:
            layer_bytes[int(m.group(1))] += nb
        elif name.startswith("token_embd."):
            input_bytes += nb
            if name == "token_embd.weight":
                token_embd_bytes = nb
                shape = [int(x) for x in t.shape]
                vocab_from_tensor = max(shape) if shape else None
        else:
            if name == "output.weight":
                has_output = True
            output_bytes += nb

    n_vocab = kv("vocab_size")
    if n_vocab is None:
        toks = fields.get("tokenizer.ggml.tokens")
        n_vocab = len(toks) if isinstance(toks, list) else (vocab_from_tensor or 0)

    n_ctx_train = kv("context_length")
    return ModelInfo(
        path=str(p), arch=arch, n_layer=n_layer,
        n_ctx_train=int(n_ctx_train) if n_ctx_train is not None else None,
        n_embd=n_embd, n_head=n_head, n_head_kv=n_head_kv, head_dim_k=head_dim_k,
        head_dim_v=head_dim_v, n_vocab=int(n_vocab), n_ff=n_ff, layer_bytes=layer_bytes,
        input_bytes=input_bytes, output_bytes=output_bytes, tied_output=not has_output,
        token_embd_bytes=token_embd_bytes, file_bytes=p.stat().st_size,
    )


# ----------------------------------------------------------------------------- server options

@dataclass
class ServerOptions:
    """The llama-server flags that change VRAM, and which of them were defaults."""

    ctx_size: int | None = None          # None: absent; 0: "from the model"
    n_gpu_layers: int | str | None = None  # int, "all"/"auto", or None (absent)
    cache_type_k: str = DEFAULT_CACHE_TYPE
    cache_type_v: str = DEFAULT_CACHE_TYPE
    ubatch: int = DEFAULT_UBATCH
    flash_attn: bool = False
    kv_offload: bool = True
    model_arg: str | None = None
    parallel: int | None = None
    assumptions: list[str] = field(default_factory=list)


_VAR_DEFAULT = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}$")


def _resolve_value(raw: str, notes: list[str]) -> str:
    """`${VAR:-default}` left in an un-interpolated compose command resolves to its default."""
    m = _VAR_DEFAULT.match(raw)
    if m:
        notes.append(f"un-interpolated {raw!r} taken as its default {m.group(1)!r}")
        return m.group(1)
    return raw


# flag spellings -> option name
_FLAGS: dict[str, str] = {
    "-c": "ctx", "--ctx-size": "ctx",
    "-ngl": "ngl", "--gpu-layers": "ngl", "--n-gpu-layers": "ngl",
    "-ctk": "ctk", "--cache-type-k": "ctk",
    "-ctv": "ctv", "--cache-type-v": "ctv",
    "-ub": "ub", "--ubatch-size": "ub",
    "-m": "model", "--model": "model",
    "-np": "np", "--parallel": "np",
}
_BOOL_FLAGS = {"-fa": "fa", "--flash-attn": "fa", "-nkvo": "nkvo", "--no-kv-offload": "nkvo"}
_ENV = {
    "LLAMA_ARG_CTX_SIZE": "ctx", "LLAMA_ARG_N_GPU_LAYERS": "ngl", "LLAMA_ARG_CACHE_TYPE_K": "ctk",
    "LLAMA_ARG_CACHE_TYPE_V": "ctv", "LLAMA_ARG_UBATCH": "ub", "LLAMA_ARG_FLASH_ATTN": "fa",
    "LLAMA_ARG_MODEL": "model", "LLAMA_ARG_N_PARALLEL": "np", "LLAMA_ARG_NO_KV_OFFLOAD": "nkvo",
}


def _int(value: str, flag: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"llama-server {flag} expects an integer, got {value!r}") from None


def parse_server_args(argv: Iterable[str] | str | None,
                      env: Mapping[str, str] | None = None) -> ServerOptions:
    """Parse a llama-server command line (with or without the program name) and LLAMA_ARG_* env.

    Command-line flags win over environment variables, as in llama-server.
    """
    if argv is None:
        argv = []
    if isinstance(argv, str):
        argv = shlex.split(argv)
    args = [str(a) for a in argv]
    notes: list[str] = []
    raw: dict[str, str] = {}
    for key, opt in _ENV.items():
        if env and key in env:
            raw[opt] = _resolve_value(str(env[key]), notes)
    i = 0
    while i < len(args):
        a = args[i]
        flag, eq, inline = a.partition("=") if a.startswith("--") else (a, "", "")
        if flag in _FLAGS:
            if eq:
                value = inline
            elif i + 1 < len(args):
                value = args[i + 1]
                i += 1
            else:
                raise ConfigError(f"llama-server flag {flag} has no value")
            raw[_FLAGS[flag]] = _resolve_value(value, notes)
        elif flag in _BOOL_FLAGS:
            opt = _BOOL_FLAGS[flag]
            value = inline if eq else "on"
            # newer llama.cpp: -fa on|off|auto
            if not eq and i + 1 < len(args) and args[i + 1].lower() in ("on", "off", "auto",
                                                                          "true", "false", "1", "0"):
                value = args[i + 1]
                i += 1
            raw[opt] = value
        i += 1

    o = ServerOptions(assumptions=notes)
    if "ctx" in raw:
        o.ctx_size = _int(raw["ctx"], "-c")
    if "ngl" in raw:
        v = raw["ngl"].strip().lower()
        o.n_gpu_layers = v if v in ("all", "auto") else _int(v, "-ngl")
    if "ctk" in raw:
        o.cache_type_k = raw["ctk"].lower()
    if "ctv" in raw:
        o.cache_type_v = raw["ctv"].lower()
    for t in (o.cache_type_k, o.cache_type_v):
        if t not in CACHE_TYPE_BYTES:
            raise ConfigError(f"unknown llama-server cache type {t!r}; "
                              f"known: {', '.join(CACHE_TYPE_BYTES)}")
    if "ub" in raw:
        o.ubatch = _int(raw["ub"], "-ub")
    if "np" in raw:
        o.parallel = _int(raw["np"], "-np")
    if "model" in raw:
        o.model_arg = raw["model"]
    if "fa" in raw:
        v = raw["fa"].lower()
        o.flash_attn = v in ("on", "true", "1", "auto", "enabled")
        if v == "auto":
            notes.append("flash attention 'auto' assumed on")
    if "nkvo" in raw:
        o.kv_offload = raw["nkvo"].lower() in ("off", "false", "0")   # -nkvo: KV stays on host
    return o


# ----------------------------------------------------------------------------- the budget

@dataclass
class Budget:
    """One service's expected VRAM, term by term (MiB), and how each term was obtained."""

    service: str
    weights_mib: float | None = None
    kv_cache_mib: float | None = None
    compute_mib: float | None = None
    cuda_context_mib: float | None = None
    sources: dict[str, str] = field(default_factory=dict)   # term -> "formula"|"budget-file"|...
    params: dict[str, Any] = field(default_factory=dict)    # what the formula used
    assumptions: list[str] = field(default_factory=list)
    error: str | None = None                                # why the formula could not run

    @property
    def total_mib(self) -> float | None:
        vals = [getattr(self, t) for t in TERMS]
        if any(v is None for v in vals):
            return None
        return float(sum(vals))  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            **{t: _r(getattr(self, t)) for t in TERMS},
            "total_mib": _r(self.total_mib),
            "sources": dict(self.sources), "params": dict(self.params),
            "assumptions": list(self.assumptions), "error": self.error,
        }


def _r(v: float | None, nd: int = 2) -> float | None:
    return None if v is None else round(float(v), nd)


def offloaded_layers(info: ModelInfo, ngl: int | str | None) -> tuple[int, bool]:
    """(repeating layers on the GPU, output layer on the GPU), as llama.cpp assigns them.

    llama.cpp puts the *last* `ngl` repeating layers on the GPU and the output layer too when
    `ngl > n_layer`.  The input layer (token_embd) always stays on the CPU.
    """
    if ngl in ("all", "auto") or (isinstance(ngl, int) and ngl < 0):
        return info.n_layer, True
    n = int(ngl or 0)
    return min(n, info.n_layer), n > info.n_layer


def kv_cache_bytes(info: ModelInfo, n_ctx: int, layers: Iterable[int],
                   type_k: str, type_v: str) -> float:
    bk, bv = CACHE_TYPE_BYTES[type_k], CACHE_TYPE_BYTES[type_v]
    return float(sum(n_ctx * info.n_head_kv[i] * (info.head_dim_k * bk + info.head_dim_v * bv)
                     for i in layers))


def compute_buffer_bytes(info: ModelInfo, n_ctx: int, ubatch: int, flash_attn: bool,
                         output_on_gpu: bool) -> float:
    """Estimate of llama.cpp's GPU compute (scratch) buffer, in bytes.

    ggml's graph allocator reuses memory, so the buffer is roughly its largest live tensor plus
    the per-token activations:
      * attention scores, f32 [n_ctx x n_ubatch x n_head] (not materialised with flash attention);
      * logits, f32 [n_vocab x n_ubatch], when the output layer is on the GPU;
      * activations, f32 n_ubatch x (4 n_embd + 2 n_ff).
    It is an estimate (within ~10-20% of what llama.cpp prints for Llama-class models); pass the
    server log to compare, or override `compute_mib` in a budget file.
    """
    ub = max(1, min(ubatch, n_ctx))
    attn = 0.0 if flash_attn else 4.0 * n_ctx * ub * info.n_head
    logits = 4.0 * info.n_vocab * ub if output_on_gpu else 0.0
    act = 4.0 * ub * (4 * info.n_embd + 2 * info.n_ff)
    return max(attn, logits) + act


def budget_from_info(info: ModelInfo, opts: ServerOptions, service: str = "",
                     cuda_context_mib: float = DEFAULT_CUDA_CONTEXT_MIB) -> Budget:
    b = Budget(service=service, assumptions=list(opts.assumptions))
    # context
    if opts.ctx_size is None:
        n_ctx = DEFAULT_CTX
        b.assumptions.append(f"no -c/--ctx-size: llama-server default {DEFAULT_CTX} assumed")
    elif opts.ctx_size == 0:
        n_ctx = info.n_ctx_train or DEFAULT_CTX
        b.assumptions.append(f"-c 0: the model's context_length {n_ctx} used")
    else:
        n_ctx = opts.ctx_size
    n_ctx_alloc = int(math.ceil(n_ctx / CTX_PAD) * CTX_PAD)
    # layers
    ngl = opts.n_gpu_layers
    if ngl is None:
        ngl = DEFAULT_NGL
        b.assumptions.append(f"no -ngl/--n-gpu-layers: default {DEFAULT_NGL} assumed")
    n_gpu, out_gpu = offloaded_layers(info, ngl)
    gpu_layers = list(range(info.n_layer - n_gpu, info.n_layer))
    weights = float(sum(info.layer_bytes[i] for i in gpu_layers))
    if out_gpu:
        weights += info.output_bytes
        if info.tied_output:
            weights += info.token_embd_bytes   # duplicated onto the GPU as the output matrix
    kv_layers = gpu_layers if opts.kv_offload else []
    kv = kv_cache_bytes(info, n_ctx_alloc, kv_layers, opts.cache_type_k, opts.cache_type_v)
    compute = compute_buffer_bytes(info, n_ctx_alloc, opts.ubatch, opts.flash_attn, out_gpu) \
        if n_gpu > 0 or out_gpu else 0.0
    b.weights_mib = weights / MIB
    b.kv_cache_mib = kv / MIB
    b.compute_mib = compute / MIB
    b.cuda_context_mib = float(cuda_context_mib) if (n_gpu > 0 or out_gpu) else 0.0
    b.sources = {t: "formula" for t in TERMS}
    b.params = {
        "model": info.path, "arch": info.arch, "n_layer": info.n_layer,
        "gpu_layers": n_gpu, "output_on_gpu": out_gpu, "n_ctx": n_ctx, "n_ctx_alloc": n_ctx_alloc,
        "n_ctx_train": info.n_ctx_train, "cache_type_k": opts.cache_type_k,
        "cache_type_v": opts.cache_type_v, "n_head": info.n_head,
        "n_head_kv": sorted(set(info.n_head_kv)), "head_dim_k": info.head_dim_k,
        "head_dim_v": info.head_dim_v, "n_embd": info.n_embd, "n_vocab": info.n_vocab,
        "n_ff": info.n_ff, "ubatch": opts.ubatch, "flash_attn": opts.flash_attn,
        "kv_offload": opts.kv_offload, "tied_output": info.tied_output,
        "file_mib": round(info.file_bytes / MIB, 2),
    }
    return b


def budget_for_llama(model_path: Path | str, argv: Iterable[str] | str | None, *,
                     service: str = "", env: Mapping[str, str] | None = None,
                     cuda_context_mib: float = DEFAULT_CUDA_CONTEXT_MIB) -> Budget:
    """The expected VRAM of one llama-server: its GGUF file (host path) and its command line."""
    opts = parse_server_args(argv, env)
    info = read_model_info(model_path)
    return budget_from_info(info, opts, service=service, cuda_context_mib=cuda_context_mib)


# ----------------------------------------------------------------------------- engine's own log

@dataclass
class EngineReport:
    """Buffer sizes llama-server printed, MiB, keyed by buffer name (CUDA0, CPU_Mapped, ...)."""

    model: dict[str, float] = field(default_factory=dict)
    kv: dict[str, float] = field(default_factory=dict)
    compute: dict[str, float] = field(default_factory=dict)
    output: dict[str, float] = field(default_factory=dict)
    kv_self_mib: float | None = None     # older "KV self size" total, device not named

    @staticmethod
    def is_gpu(name: str) -> bool:
        return bool(re.fullmatch(r"(CUDA|ROCm|HIP|Vulkan|SYCL|MUSA|Metal|CANN)\d*", name))

    def _gpu_sum(self, d: dict[str, float]) -> float:
        return sum(v for k, v in d.items() if self.is_gpu(k))

    @property
    def empty(self) -> bool:
        return not (self.model or self.kv or self.compute or self.output or self.kv_self_mib)

    @property
    def gpu_weights_mib(self) -> float:
        return self._gpu_sum(self.model)

    @property
    def gpu_kv_mib(self) -> float | None:
        if self.kv:
            return self._gpu_sum(self.kv)
        return None

    @property
    def gpu_compute_mib(self) -> float:
        return self._gpu_sum(self.compute)

    @property
    def gpu_total_mib(self) -> float:
        """Weights + KV + compute on GPU buffers (CUDA context not included: engines don't log it)."""
        return self.gpu_weights_mib + (self.gpu_kv_mib or 0.0) + self.gpu_compute_mib \
            + self._gpu_sum(self.output)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "kv": self.kv, "compute": self.compute, "output": self.output,
                "kv_self_mib": self.kv_self_mib, "gpu_weights_mib": _r(self.gpu_weights_mib),
                "gpu_kv_mib": _r(self.gpu_kv_mib), "gpu_compute_mib": _r(self.gpu_compute_mib),
                "gpu_total_mib": _r(self.gpu_total_mib)}


_BUF_RE = re.compile(
    r"(?P<dev>[A-Za-z][A-Za-z0-9_]*)\s+(?:(?P<kind>model|KV|compute|output)\s+)?buffer size\s*=\s*"
    r"(?P<mib>[0-9]+(?:\.[0-9]+)?)\s*MiB")
_KV_SELF_RE = re.compile(r"KV self size\s*=\s*(?P<mib>[0-9]+(?:\.[0-9]+)?)\s*MiB")


def parse_llama_log(text: str | None) -> EngineReport:
    """Parse llama.cpp's buffer-size lines.  The last value per (kind, buffer) wins, so a log
    covering several restarts reports the latest load."""
    rep = EngineReport()
    for line in (text or "").splitlines():
        m = _BUF_RE.search(line)
        if m:
            kind = m.group("kind")
            if kind is None:       # older llm_load_tensors: "CUDA0 buffer size = ..."
                kind = "model"
            mib = float(m.group("mib"))
            {"model": rep.model, "KV": rep.kv, "compute": rep.compute,
             "output": rep.output}[kind][m.group("dev")] = mib
            continue
        m = _KV_SELF_RE.search(line)
        if m:
            rep.kv_self_mib = float(m.group("mib"))
    return rep


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
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"budget file {p}: {exc.strerror or exc}") from None
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
    return b
