"""A fake NVML module for tests and demos (pass it as `run_gpu_report(..., nvml=FakeNvml(...))`).

It mimics the parts of nvidia-ml-py's `pynvml` that llmops uses, including its failure modes:
no v2 memory call, `usedGpuMemory` None, NOT_SUPPORTED for utilisation or process lists,
init failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

MIB = 1024 * 1024

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13

_NAMES = {1: "Uninitialized", 3: "Not Supported", 9: "Driver Not Loaded",
          12: "NVML Shared Library Not Found", 13: "Function Not Found"}


class FakeNVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _NAMES.get(self.value, f"Unknown Error {self.value}")


@dataclass
class FakeGpu:
    """One GPU.  `used_mib` may be a list: the n-th memory query returns the n-th (last repeats)."""

    total_mib: float = 24576
    used_mib: float | list[float] = 0
    reserved_mib: float = 0
    name: str = "Fake GPU"
    uuid: str = "GPU-fake"
    util: tuple[int, int] | None = (10, 5)           # None: NOT_SUPPORTED
    compute: list[tuple[int, float | None]] | None = field(default_factory=list)  # None: NOT_SUPPORTED
    graphics: list[tuple[int, float | None]] | None = field(default_factory=list)
    mig: bool | None = None                          # None: NOT_SUPPORTED
    memory_calls: int = 0

    def used_now(self) -> float:
        if isinstance(self.used_mib, list):
            v = self.used_mib[min(self.memory_calls, len(self.used_mib) - 1)]
        else:
            v = self.used_mib
        self.memory_calls += 1
        return float(v)

    def compute_now(self) -> list[tuple[int, float | None]] | None:
        return self.compute


@dataclass
class StateFileGpu(FakeGpu):
    """A FakeGpu whose used memory and compute processes are read from a JSON file at every
    query - {"used": MiB, "procs": [[pid, MiB or null], ...]} - so that a test and the `llmops`
    process it starts see one and the same fake GPU."""

    state_file: str = ""

    def _state(self) -> dict[str, Any]:
        return json.loads(Path(self.state_file).read_text(encoding="utf-8"))

    def used_now(self) -> float:
        self.memory_calls += 1
        return float(self._state()["used"])

    def compute_now(self) -> list[tuple[int, float | None]] | None:
        return [(int(pid), mib) for pid, mib in self._state()["procs"]]


def write_pynvml_shim(folder: Path, state_file: Path) -> Path:
    """Write a `pynvml.py` into `folder` that stands for a one-GPU StateFileGpu; put `folder`
    first on a child process's PYTHONPATH to give it the fake instead of the real binding."""
    shim = folder / "pynvml.py"
    shim.write_text(
        "import sys\n"
        "from llmops.testing.nvml import FakeNvml, StateFileGpu\n"
        f"sys.modules[__name__] = FakeNvml([StateFileGpu(total_mib=81559, state_file={str(state_file)!r})])\n",
        encoding="utf-8")
    return shim


class FakeNvml:
    NVMLError = FakeNVMLError
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED

    def __init__(self, gpus: list[FakeGpu], *, v2: bool | str = True,
                 init_error: int | None = None, driver: str = "550.54.15",
                 cuda: int = 12040) -> None:
        """`v2`: True (supported), False (binding lacks nvmlMemory_v2), "error" (the driver
        lacks nvmlDeviceGetMemoryInfo_v2: FunctionNotFound)."""
        self.gpus = gpus
        self.v2 = v2
        self.init_error = init_error
        self.driver = driver
        self.cuda = cuda
        self.initialised = False
        self.calls: list[str] = []
        if v2:
            self.nvmlMemory_v2 = 0x02000028

    # lifecycle
    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise FakeNVMLError(self.init_error)
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def _check(self) -> None:
        if not self.initialised:
            raise FakeNVMLError(NVML_ERROR_UNINITIALIZED)

    # system
    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return self.cuda

    # devices
    def nvmlDeviceGetCount(self) -> int:
        self._check()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeGpu:
        self._check()
        return self.gpus[i]

    def nvmlDeviceGetName(self, h: FakeGpu) -> str:
        return h.name

    def nvmlDeviceGetUUID(self, h: FakeGpu) -> str:
        return h.uuid

    def nvmlDeviceGetMigMode(self, h: FakeGpu) -> list[int]:
        if h.mig is None:
            raise FakeNVMLError(NVML_ERROR_NOT_SUPPORTED)
        return [int(h.mig), int(h.mig)]

    def nvmlDeviceGetMemoryInfo(self, h: FakeGpu, version: Any = None) -> Any:
        self._check()
        self.calls.append("mem_v2" if version else "mem_v1")
        if version:
            if self.v2 == "error":
                raise FakeNVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)
            used = h.used_now()
            free = h.total_mib - used - h.reserved_mib
            return SimpleNamespace(version=version, total=int(h.total_mib * MIB),
                                   reserved=int(h.reserved_mib * MIB), free=int(free * MIB),
                                   used=int(used * MIB))
        used = h.used_now() + h.reserved_mib        # v1's "used" includes reserved memory
        return SimpleNamespace(total=int(h.total_mib * MIB), free=int((h.total_mib - used) * MIB),
                               used=int(used * MIB))

    def nvmlDeviceGetUtilizationRates(self, h: FakeGpu) -> Any:
        if h.util is None:
            raise FakeNVMLError(NVML_ERROR_NOT_SUPPORTED)
        return SimpleNamespace(gpu=h.util[0], memory=h.util[1])

    @staticmethod
    def _procs(plist: list[tuple[int, float | None]] | None) -> list[Any]:
        if plist is None:
            raise FakeNVMLError(NVML_ERROR_NOT_SUPPORTED)
        return [SimpleNamespace(pid=pid, usedGpuMemory=None if m is None else int(m * MIB),
                                gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF)
                for pid, m in plist]

    def nvmlDeviceGetComputeRunningProcesses(self, h: FakeGpu) -> list[Any]:
        return self._procs(h.compute_now())

    def nvmlDeviceGetGraphicsRunningProcesses(self, h: FakeGpu) -> list[Any]:
        return self._procs(h.graphics)


class FakeClock:
    """A monotonic clock for run_schedule: `sleep` advances it; `cost` is added per tick."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        assert s >= 0
        self.t += s
