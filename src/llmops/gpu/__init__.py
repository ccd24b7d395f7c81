"""GPU memory: NVML sampler, PID -> container -> service attribution, VRAM budget and plan.

Modules: `model` (GGUF shape), `llamaargs` (llama-server command line and defaults),
`budget` (the terms), `llamalog` (the engine's own figures), `calibration` (per-process
overhead), `fit` (what llama.cpp's -fit will do), `plan` (`llmops gpu-plan`), `sampling` /
`analysis` / `text` / `check` (`llmops gpu-report`), `attribution`, `nvml`, `shapes` (sparse
GGUF files of real shapes).  Nothing here imports pynvml, gguf or docker at import time.
"""

from .attribution import (
    Attribution, Attributor, container_id_from_cgroup, detect_in_container, docker_label_resolver,
)
from .budget import (
    Budget, BudgetFile, budget_for_llama, budget_from_info, load_budget_file,
)
from .check import build_budgets, error_pct, format_gpu_text, run_gpu_report
from .llamaargs import ServerOptions, parse_server_args
from .llamalog import EngineReport, parse_llama_log
from .model import ModelInfo, read_model_info
from .nvml import NvmlSession, NvmlUnavailable, load_nvml, run_schedule, series_stats

__all__ = [
    "Attribution", "Attributor", "Budget", "BudgetFile", "EngineReport", "ModelInfo",
    "NvmlSession", "NvmlUnavailable", "ServerOptions", "budget_for_llama", "budget_from_info",
    "build_budgets", "container_id_from_cgroup", "detect_in_container", "docker_label_resolver",
    "error_pct", "format_gpu_text", "load_budget_file", "load_nvml", "parse_llama_log",
    "parse_server_args", "read_model_info", "run_gpu_report", "run_schedule", "series_stats",
]
