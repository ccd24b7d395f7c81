"""What llama-server says about its own memory, read from its log.

Lines it reads (current llama.cpp; older forms too):
* buffers:     `load_tensors:        CUDA0 model buffer size =  1252.41 MiB`
               `llama_kv_cache:      CUDA0 KV buffer size =   128.00 MiB`
               `sched_reserve:      CUDA0 compute buffer size =    66.01 MiB`
               (the buffer sizes are printed only at `-lv 4` or `-v` on current builds)
* offload:     `offloading output layer to GPU`, `offloading 15 repeating layers to GPU`,
               `offloaded 17/17 layers to GPU`
* projection:  `common_params_fit_impl: projected to use 1446 MiB of device memory vs. 142629
               MiB of free device memory`
* fit outcome: `..., no changes needed` / `successfully fit params` / `failed to fit` and any
               other line of the fit step (what it changed), or no fit line at all (-fit off)
* context:     `llama_context: n_ctx = 4096`, `n_seq_max`, `n_ubatch`, `flash_attn`,
               `kv_unified`, and `Flash Attention enabled|disabled`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..rounding import rounded


@dataclass
class EngineReport:
    """Buffer sizes and load facts llama-server printed.  Buffers in MiB, keyed by buffer name
    (CUDA0, CPU_Mapped, CUDA_Host, ...)."""

    model: dict[str, float] = field(default_factory=dict)
    kv: dict[str, float] = field(default_factory=dict)
    compute: dict[str, float] = field(default_factory=dict)
    output: dict[str, float] = field(default_factory=dict)
    kv_self_mib: float | None = None     # older "KV self size" total, device not named
    offloaded: tuple[int, int] | None = None          # (layers on GPU, layers in all)
    output_offloaded: bool | None = None
    repeating_offloaded: int | None = None
    projected_mib: float | None = None
    projected_free_mib: float | None = None
    fit: str = "not run"          # not run | no changes | changed | failed
    fit_lines: list[str] = field(default_factory=list)
    n_ctx: int | None = None
    n_seq_max: int | None = None
    n_ubatch: int | None = None
    kv_unified: bool | None = None
    flash_attn: str | None = None         # the argument: auto | enabled | disabled
    flash_attn_enabled: bool | None = None  # what auto resolved to

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
        """Weights + KV + compute (+ output) on GPU buffers: the engine's own figure.  The
        per-process overhead is not included: no buffer line accounts for it."""
        return self.gpu_weights_mib + (self.gpu_kv_mib or 0.0) + self.gpu_compute_mib \
            + self._gpu_sum(self.output)

    @property
    def reported_mib(self) -> float | None:
        """The engine's own figure (`gpu_total_mib`), or None when its log has no buffer-size
        lines (current llama.cpp prints them only at -lv 4): never a 0 it did not say."""
        return None if self.empty else self.gpu_total_mib

    @property
    def fit_changes(self) -> list[str]:
        """What the fit step changed, in its own words (empty when it changed nothing)."""
        if self.fit not in ("changed", "failed"):
            return []
        skip = ("projected to use", "getting device memory", "fitting params to free memory took",
                "successfully fit params", "memory breakdown")
        return [ln for ln in self.fit_lines if not any(s in ln for s in skip)]

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "kv": self.kv, "compute": self.compute, "output": self.output,
                "kv_self_mib": self.kv_self_mib, "gpu_weights_mib": rounded(self.gpu_weights_mib, 2),
                "gpu_kv_mib": rounded(self.gpu_kv_mib, 2), "gpu_compute_mib": rounded(self.gpu_compute_mib, 2),
                "gpu_total_mib": rounded(self.gpu_total_mib, 2),
                "offloaded": list(self.offloaded) if self.offloaded else None,
                "output_offloaded": self.output_offloaded,
                "repeating_offloaded": self.repeating_offloaded,
                "projected_mib": self.projected_mib, "projected_free_mib": self.projected_free_mib,
                "fit": self.fit, "fit_changes": self.fit_changes, "n_ctx": self.n_ctx,
                "n_seq_max": self.n_seq_max, "n_ubatch": self.n_ubatch,
                "kv_unified": self.kv_unified, "flash_attn": self.flash_attn,
                "flash_attn_enabled": self.flash_attn_enabled}


_NUM = r"([0-9]+(?:\.[0-9]+)?)"
_BUF_RE = re.compile(
    r"(?P<dev>[A-Za-z][A-Za-z0-9_]*)\s+(?:(?P<kind>model|KV|compute|output)\s+)?buffer size\s*=\s*"
    + _NUM.replace("(", "(?P<mib>", 1) + r"\s*MiB")
_KV_SELF_RE = re.compile(r"KV self size\s*=\s*" + _NUM + r"\s*MiB")
_OFFLOADED_RE = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_REPEATING_RE = re.compile(r"offloading (\d+) repeating layers to GPU")
_PROJECTED_RE = re.compile(r"projected to use " + _NUM + r" MiB of device memory vs\. " + _NUM
                           + r" MiB of free device memory")
_FIT_LINE_RE = re.compile(r"(common_params_fit\w*|common_fit_params\w*|llama_params_fit\w*):\s*(.*)")
_CTX_RE = re.compile(r"llama_context:\s+(n_ctx|n_seq_max|n_ubatch|flash_attn|kv_unified)\s*=\s*(\S+)")


def parse_llama_log(text: str | None) -> EngineReport:
    """Parse a llama-server log.  For a log covering several loads the latest one wins: a new
    load (its `load_tensors` offload line) starts the report afresh."""
    rep = EngineReport()
    for line in (text or "").splitlines():
        m = _BUF_RE.search(line)
        if m:
            kind = m.group("kind") or "model"   # older llm_load_tensors: "CUDA0 buffer size"
            {"model": rep.model, "KV": rep.kv, "compute": rep.compute,
             "output": rep.output}[kind][m.group("dev")] = float(m.group("mib"))
            continue
        m = _KV_SELF_RE.search(line)
        if m:
            rep.kv_self_mib = float(m.group(1))
            continue
        m = _FIT_LINE_RE.search(line)
        if m:
            msg = m.group(2).strip()
            if "getting device memory data for initial parameters" in msg:
                rep.fit_lines, rep.fit = [], "changed"     # a new fit run
            rep.fit_lines.append(msg)
            pm = _PROJECTED_RE.search(msg)
            if pm:
                rep.projected_mib, rep.projected_free_mib = float(pm.group(1)), float(pm.group(2))
            if "no changes needed" in msg:
                rep.fit = "no changes"
            elif "failed to fit" in msg or "abort" in msg.lower():
                rep.fit = "failed"
            continue
        m = _REPEATING_RE.search(line)
        if m:
            rep.repeating_offloaded = int(m.group(1))
            continue
        if "offloading output layer to GPU" in line:
            rep.output_offloaded = True
            continue
        m = _OFFLOADED_RE.search(line)
        if m:
            rep.offloaded = (int(m.group(1)), int(m.group(2)))
            if rep.output_offloaded is None:
                rep.output_offloaded = False
            continue
        m = _CTX_RE.search(line)
        if m:
            key, val = m.group(1), m.group(2)
            if key in ("n_ctx", "n_seq_max", "n_ubatch"):
                setattr(rep, key, int(val))
            elif key == "kv_unified":
                rep.kv_unified = val.lower() == "true"
            else:
                rep.flash_attn = val
                if val in ("enabled", "disabled"):
                    rep.flash_attn_enabled = val == "enabled"
            continue
        if "Flash Attention enabled" in line:
            rep.flash_attn_enabled = True
        elif "Flash Attention disabled" in line or "flash_attn is not compatible" in line:
            rep.flash_attn_enabled = False
    return rep
