"""GPU memory: NVML sampler, PID -> container -> service attribution, VRAM budget and plan.

Modules: `server` (`ModelServer`: one llama-server, whoever found it), `model` (GGUF shape),
`llamaargs` (llama-server command line and defaults), `budget` (the terms), `llamalog` (the
engine's own figures), `calibration` (per-process overhead), `fit` (what llama.cpp's -fit will
do), `plan` (`llmops gpu-plan`), `expect` / `sampling` / `analysis` / `text` / `check`
(`llmops gpu-report`), `hostproc` (servers named by PID), `attribution`, `nvml`.  Nothing here
imports pynvml, gguf or docker at import time, nor renders (the CLI does), nor imports the test
stand-ins of `llmops.testing`.
"""

from .attribution import (
    Attribution, Attributor, container_id_from_cgroup, detect_in_container, docker_label_resolver,
)
from .budget import (
    Budget, BudgetFile, budget_for_llama, budget_from_info, load_budget_file,
)
from .check import GpuReportOptions, build_budgets, error_pct, format_gpu_text, run_gpu_report
from .expect import Expectation, expectation
from .llamaargs import ServerOptions, parse_server_args
from .llamalog import EngineReport, parse_llama_log
from .model import ModelInfo, read_model_info
from .nvml import NvmlSession, NvmlUnavailable, load_nvml, pid_memory, run_schedule, series_stats
from .server import ModelServer, servers_from_stack

__all__ = [
    "Attribution", "Attributor", "Budget", "BudgetFile", "EngineReport", "Expectation",
    "GpuReportOptions", "ModelInfo", "ModelServer", "NvmlSession", "NvmlUnavailable",
    "ServerOptions", "budget_for_llama", "budget_from_info", "build_budgets",
    "container_id_from_cgroup", "detect_in_container", "docker_label_resolver", "error_pct",
    "expectation", "format_gpu_text", "load_budget_file", "load_nvml", "parse_llama_log",
    "parse_server_args", "pid_memory", "read_model_info", "run_gpu_report", "run_schedule",
    "series_stats", "servers_from_stack",
]
