"""A llama-server command line (and its LLAMA_ARG_* environment) as the engine will read it.

Defaults follow current llama.cpp (as seen in the logs of ../shared/gpu-truth, docs/gpu.md):
* no `-ngl`: every layer, the output layer included, goes to the GPU;
* no `-c` (or `-c 0`): the model's training context;
* no `-np`: 4 slots sharing one unified KV cache;
* `-fa` defaults to `auto`, which is on with CUDA;
* `-fit` is on: before loading, the server may lower the context (then the layers) that it
  was not told explicitly, keeping `-fitt` MiB (1024) free.
Which values came from the command line and which are defaults is kept, so the plan and the
evidence can say what was assumed.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ..errors import ConfigError
from .llamaflags import LLAMA_SERVER_FLAGS

DEFAULT_PARALLEL = 4           # llama-server: n_parallel auto -> 4 slots, kv_unified
DEFAULT_UBATCH = 512
DEFAULT_BATCH = 2048
DEFAULT_CACHE_TYPE = "f16"
DEFAULT_FIT_TARGET_MIB = 1024.0   # -fitt
DEFAULT_FIT_CTX_MIN = 4096        # -fitc: fit does not lower the context below this
CTX_PAD = 256                     # llama.cpp pads the context it allocates KV for

# Bytes per element of the KV cache types llama-server accepts (-ctk/-ctv).
# Block-quantised types: block bytes / block elements (ggml's type traits).
CACHE_TYPE_BYTES: dict[str, float] = {
    "f32": 4.0, "f16": 2.0, "bf16": 2.0,
    "q8_0": 34 / 32, "q4_0": 18 / 32, "q4_1": 20 / 32, "iq4_nl": 18 / 32,
    "q5_0": 22 / 32, "q5_1": 24 / 32,
}


UNQUANTIZED_CACHE_TYPES = ("f32", "f16", "bf16")


@dataclass
class ServerOptions:
    """The llama-server settings that change VRAM, and which of them the user set."""

    ctx_size: int | None = None            # None or 0: the model's training context
    n_gpu_layers: int | None = None        # None / negative / "all": every layer
    parallel: int | None = None            # None: 4 slots, unified KV
    kv_unified: bool | None = None         # None: llama.cpp decides (unified when -np is auto)
    cache_type_k: str = DEFAULT_CACHE_TYPE
    cache_type_v: str = DEFAULT_CACHE_TYPE
    ubatch: int = DEFAULT_UBATCH
    batch: int = DEFAULT_BATCH
    flash_attn: str = "auto"               # on | off | auto (auto = on with CUDA)
    kv_offload: bool = True
    fit: bool = True
    fit_target_mib: float = DEFAULT_FIT_TARGET_MIB
    fit_ctx_min: int = DEFAULT_FIT_CTX_MIN
    model_arg: str | None = None
    user_set: set[str] = field(default_factory=set)   # option names given on the command line/env
    assumptions: list[str] = field(default_factory=list)
    unknown_flags: list[str] = field(default_factory=list)   # flags llama-server's parser lacks

    @property
    def flash_attn_on(self) -> bool:
        return self.flash_attn != "off"

    @property
    def n_seq(self) -> int:
        return self.parallel if self.parallel and self.parallel > 0 else DEFAULT_PARALLEL

    @property
    def unified(self) -> bool:
        if self.kv_unified is not None:
            return self.kv_unified
        return not (self.parallel and self.parallel > 0)


_VAR_DEFAULT = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}$")


def _resolve_value(raw: str, notes: list[str]) -> str:
    """`${VAR:-default}` left in an un-interpolated compose command resolves to its default."""
    m = _VAR_DEFAULT.match(raw)
    if m:
        notes.append(f"un-interpolated {raw!r} taken as its default {m.group(1)!r}")
        return m.group(1)
    return raw


_FLAGS: dict[str, str] = {
    "-c": "ctx", "--ctx-size": "ctx",
    "-ngl": "ngl", "--gpu-layers": "ngl", "--n-gpu-layers": "ngl",
    "-ctk": "ctk", "--cache-type-k": "ctk", "-ctv": "ctv", "--cache-type-v": "ctv",
    "-ub": "ub", "--ubatch-size": "ub", "-b": "b", "--batch-size": "b",
    "-m": "model", "--model": "model",
    "-np": "np", "--parallel": "np",
    "-fitt": "fitt", "--fit-target": "fitt", "-fitc": "fitc", "--fit-ctx": "fitc",
    "-fit": "fit", "--fit": "fit",
    # -fa takes a value since llama.cpp made it tri-state: a bare `-fa` eats the next word
    # ("unknown value for --flash-attn: '-ctv'"), so it is parsed like any valued flag.
    "-fa": "fa", "--flash-attn": "fa",
}
_SWITCHES = {"-nkvo": ("nkvo", "on"), "--no-kv-offload": ("nkvo", "on"),
             "-kvu": ("kvu", "on"), "--kv-unified": ("kvu", "on"),
             "--no-kv-unified": ("kvu", "off")}
_ENV = {
    "LLAMA_ARG_CTX_SIZE": "ctx", "LLAMA_ARG_N_GPU_LAYERS": "ngl", "LLAMA_ARG_CACHE_TYPE_K": "ctk",
    "LLAMA_ARG_CACHE_TYPE_V": "ctv", "LLAMA_ARG_UBATCH": "ub", "LLAMA_ARG_BATCH": "b",
    "LLAMA_ARG_FLASH_ATTN": "fa", "LLAMA_ARG_MODEL": "model", "LLAMA_ARG_N_PARALLEL": "np",
    "LLAMA_ARG_NO_KV_OFFLOAD": "nkvo", "LLAMA_ARG_KV_UNIFIED": "kvu", "LLAMA_ARG_FIT": "fit",
    "LLAMA_ARG_FIT_TARGET": "fitt", "LLAMA_ARG_FIT_CTX": "fitc",
}
_ON = {"on", "true", "1", "yes", "enabled"}
_OFF = {"off", "false", "0", "no", "disabled"}
# llama.cpp's -fa values, exactly (common_arg_utils::is_truthy / is_falsey / is_autoy): no "yes",
# no upper case; anything else is "unknown value for --flash-attn".
_FA_VALUES = {"on": "on", "enabled": "on", "true": "on", "1": "on",
              "off": "off", "disabled": "off", "false": "off", "0": "off",
              "auto": "auto", "-1": "auto"}
_NUMBER = re.compile(r"-?\d+(\.\d*)?")


def _flash_attn(value: str) -> str:
    v = value.strip()
    if v not in _FA_VALUES:
        raise ConfigError(f"llama-server -fa expects on, off or auto, got {value!r}")
    return _FA_VALUES[v]


def _unknown_flag(word: str) -> str | None:
    """The flag in `word` when llama-server's parser would not know it (a value is never one)."""
    if not word.startswith("-") or _NUMBER.fullmatch(word):
        return None
    flag = word.partition("=")[0] if word.startswith("--") else word
    return None if flag in LLAMA_SERVER_FLAGS else flag


def _int(value: str, flag: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"llama-server {flag} expects an integer, got {value!r}") from None


def _switch(value: str, flag: str) -> bool:
    v = value.strip().lower()
    if v in _ON:
        return True
    if v in _OFF:
        return False
    raise ConfigError(f"llama-server {flag} expects on or off, got {value!r}")


def parse_server_args(argv: Iterable[str] | str | None,
                      env: Mapping[str, str] | None = None) -> ServerOptions:
    """Parse a llama-server command line (with or without the program name) and LLAMA_ARG_* env.

    Command-line flags win over environment variables, as in llama-server.  Raises ConfigError
    (one line) for a value the server would refuse.
    """
    if argv is None:
        argv = []
    if isinstance(argv, str):
        try:
            argv = shlex.split(argv)
        except ValueError as exc:
            raise ConfigError(f"cannot split the llama-server command line: {exc}") from None
    notes: list[str] = []
    unknown: list[str] = []
    raw = _raw_values([str(a) for a in argv], env, notes, unknown)
    o = ServerOptions(assumptions=notes, user_set=set(raw), unknown_flags=unknown)
    _set_sizes(o, raw)
    _set_switches(o, raw)
    _set_fit(o, raw)
    return o


def _raw_values(args: list[str], env: Mapping[str, str] | None, notes: list[str],
                unknown: list[str]) -> dict[str, str]:
    """Option name -> its text, the environment first and the command line over it; flags
    llama-server would not know go to `unknown`."""
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
        elif flag in _SWITCHES:
            opt, value = _SWITCHES[flag]
            raw[opt] = value
        elif _unknown_flag(a):
            unknown.append(flag)
        i += 1
    return raw


def _set_sizes(o: ServerOptions, raw: dict[str, str]) -> None:
    """Context, layers, KV cache types, batches and slots."""
    if "ctx" in raw:
        o.ctx_size = _int(raw["ctx"], "-c")
        if o.ctx_size < 0:
            raise ConfigError(f"llama-server -c must be >= 0, got {o.ctx_size}")
        if o.ctx_size == 0:
            o.user_set.discard("ctx")      # -c 0 means "from the model", as if absent
    if "ngl" in raw:
        v = raw["ngl"].strip().lower()
        o.n_gpu_layers = -1 if v in ("all", "auto") else _int(v, "-ngl")
    if "ctk" in raw:
        o.cache_type_k = raw["ctk"].lower()
    if "ctv" in raw:
        o.cache_type_v = raw["ctv"].lower()
    for flag, t in (("-ctk", o.cache_type_k), ("-ctv", o.cache_type_v)):
        if t not in CACHE_TYPE_BYTES:
            raise ConfigError(f"unknown llama-server {flag} cache type {t!r}; "
                              f"known: {', '.join(CACHE_TYPE_BYTES)}")
    if "ub" in raw:
        o.ubatch = _int(raw["ub"], "-ub")
    if "b" in raw:
        o.batch = _int(raw["b"], "-b")
    if o.ubatch <= 0 or o.batch <= 0:
        raise ConfigError("llama-server -b and -ub must be > 0")
    if "np" in raw:
        o.parallel = _int(raw["np"], "-np")
        if o.parallel <= 0:
            o.parallel = None            # -np -1 / 0: auto


def _set_switches(o: ServerOptions, raw: dict[str, str]) -> None:
    """Unified KV, the model, flash attention and KV offload."""
    if "kvu" in raw:
        o.kv_unified = _switch(raw["kvu"], "--kv-unified")
    if "model" in raw:
        o.model_arg = raw["model"]
    if "fa" in raw:
        o.flash_attn = _flash_attn(raw["fa"])
    if o.cache_type_v not in UNQUANTIZED_CACHE_TYPES and o.flash_attn == "off":
        # llama_init_from_model: "V cache quantization requires flash_attn"; with `auto` the
        # server turns it on (CUDA), so only an explicit off is refused here.
        raise ConfigError(f"llama-server -ctv {o.cache_type_v} needs flash attention, but -fa is off: "
                          "llama.cpp refuses a quantized V cache without it (use -fa on or auto)")
    if "nkvo" in raw:
        o.kv_offload = not _switch(raw["nkvo"], "-nkvo")


def _set_fit(o: ServerOptions, raw: dict[str, str]) -> None:
    if "fit" in raw:
        o.fit = _switch(raw["fit"], "-fit")
    if "fitt" in raw:
        o.fit_target_mib = float(_int(raw["fitt"], "-fitt"))
    if "fitc" in raw:
        o.fit_ctx_min = _int(raw["fitc"], "-fitc")
