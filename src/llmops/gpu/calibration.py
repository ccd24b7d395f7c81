"""The per-process GPU memory that no llama.cpp buffer accounts for, calibrated per machine.

NVML's figure for a llama-server process = its own buffers (weights + KV + compute, which it
prints) + an overhead it does not print: the CUDA context, cuBLAS workspaces and ggml's CUDA
memory pool.  That overhead depends on the GPU, the driver and the kind of work, so it is
measured, not assumed: `llmops gpu-report` records NVML minus the engine's buffers for each
service as a calibration in 06_gpu_memory.json (`details.calibration`); `llmops gpu-plan
--calibration FILE` reads it back (the 06 JSON itself, or a YAML/JSON file of this form):

    name: my-laptop-rtx4060
    overhead_mib: {none_offloaded: 450, quantized: 520, cublas: 610}   # or one number for all

Without a file, the default below is used and named in the output.  It was measured on an
NVIDIA H200 with driver 580.159.04 / CUDA 13.0 (../shared/gpu-truth, docs/gpu.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..evidence import JsonObject

# Which overhead applies to a server (budget.overhead_class):
#   none_offloaded: no layer on the GPU (only the compute buffer and the CUDA context);
#   quantized:      layers offloaded, quantized weights, flash attention on (MMQ kernels);
#   cublas:         F16/BF16/F32 weights on the GPU or flash attention off (cuBLAS workspace).
CLASSES = ("none_offloaded", "quantized", "cublas")

DEFAULT_NAME = "h200-driver580-cuda13 (default; measured in docs/gpu.md)"
# NVML minus engine buffers on the H200 runs: 519 (q8-1b -ngl 0); 590, 592, 593, 593, 594
# (quantized, flash attention on); 690, 690 (q8-1b -fa off; f16-3b partial).  Rounded means.
DEFAULT_OVERHEAD = {"none_offloaded": 519.0, "quantized": 592.0, "cublas": 690.0}


@dataclass(frozen=True)
class ServiceOverhead:
    """What one service gave a calibration: its NVML figure less the engine's own buffers."""

    cls: str                        # its overhead class (CLASSES)
    nvml_mib: float
    engine_mib: float

    @property
    def overhead_mib(self) -> float:
        return self.nvml_mib - self.engine_mib

    def to_json(self) -> JsonObject:
        """The calibration's `measured[service]`."""
        return {"class": self.cls, "nvml_mib": round(self.nvml_mib, 1), "engine_mib": round(self.engine_mib, 2),
                "overhead_mib": round(self.overhead_mib, 1)}


@dataclass
class Calibration:
    name: str
    overhead_mib: dict[str, float]
    source: str = "default"
    measured: dict[str, ServiceOverhead] = field(default_factory=dict)   # service -> what was measured

    def overhead_for(self, cls: str) -> float:
        return float(self.overhead_mib[cls])

    def to_json(self) -> JsonObject:
        return {"name": self.name, "source": self.source,
                "overhead_mib": {k: round(v, 1) for k, v in self.overhead_mib.items()},
                "measured": {k: v.to_json() for k, v in self.measured.items()}}


def default_calibration() -> Calibration:
    return Calibration(name=DEFAULT_NAME, overhead_mib=dict(DEFAULT_OVERHEAD), source="default")


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ConfigError(f"{where} must be a non-negative number of MiB, got {v!r}")
    return float(v)


def calibration_from_mapping(data: Any, where: str) -> Calibration:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping")
    if "details" in data and isinstance(data["details"], dict):     # a 06_gpu_memory.json
        cal = data["details"].get("calibration")
        if not cal:
            raise ConfigError(f"{where}: this gpu-report result holds no calibration "
                              "(no llama-server with both an engine log and an NVML figure)")
        data = cal
    if "overhead_mib" not in data:
        raise ConfigError(f"{where}: no overhead_mib")
    raw = data["overhead_mib"]
    if isinstance(raw, dict):
        bad = set(raw) - set(CLASSES)
        if bad:
            raise ConfigError(f"{where}: unknown overhead class(es) {', '.join(sorted(map(str, bad)))};"
                              f" known: {', '.join(CLASSES)}")
        oh = dict(DEFAULT_OVERHEAD)
        oh.update({k: _number(v, f"{where}: overhead_mib.{k}") for k, v in raw.items()})
    else:
        v = _number(raw, f"{where}: overhead_mib")
        oh = {k: v for k in CLASSES}
    return Calibration(name=str(data.get("name") or where), overhead_mib=oh, source=where,
                       measured=_measured_from(data.get("measured")))


def _measured_from(raw: object) -> dict[str, ServiceOverhead]:
    """A calibration file's `measured` (as gpu-report writes it): the entries that say what they
    measured.  It is the file's record of where its figures came from; no figure is taken from it."""
    out: dict[str, ServiceOverhead] = {}
    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    for svc, e in (raw.items() if isinstance(raw, dict) else ()):
        if isinstance(e, dict) and e.get("class") and number(e.get("nvml_mib")) and number(e.get("engine_mib")):
            out[str(svc)] = ServiceOverhead(str(e["class"]), float(e["nvml_mib"]), float(e["engine_mib"]))
    return out


def load_calibration(path: Path | str) -> Calibration:
    """Read a calibration file (YAML/JSON) or a gpu-report 06_gpu_memory.json."""
    from ..validate import read_config_text

    p = Path(path)
    text = read_config_text(p, "calibration file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            import yaml
            data = yaml.safe_load(text)
        except Exception:  # noqa: BLE001 - yaml.YAMLError or no PyYAML
            raise ConfigError(f"calibration file {p}: neither JSON nor YAML") from None
    return calibration_from_mapping(data, f"calibration file {p}")


@dataclass(frozen=True)
class OverheadSample:
    """One service's figures for a calibration, any of which may be missing."""

    cls: str | None                 # its overhead class, from its budget's overhead source
    nvml_mib: float | None
    engine_mib: float | None


def measure_calibration(entries: dict[str, OverheadSample], name: str) -> Calibration | None:
    """A calibration from gpu-report's per-service figures.  Classes not measured keep the default
    figure; None if nothing measured."""
    by_class: dict[str, list[float]] = {}
    measured: dict[str, ServiceOverhead] = {}
    for svc, e in entries.items():
        if e.nvml_mib is None or e.engine_mib is None or not e.cls:
            continue
        m = measured[svc] = ServiceOverhead(e.cls, float(e.nvml_mib), float(e.engine_mib))
        by_class.setdefault(e.cls, []).append(m.overhead_mib)
    if not measured:
        return None
    oh_all = dict(DEFAULT_OVERHEAD)
    for cls, vals in by_class.items():
        oh_all[cls] = sum(vals) / len(vals)
    return Calibration(name=name, overhead_mib=oh_all, source="gpu-report", measured=measured)
