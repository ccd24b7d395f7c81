"""NVML sampling: memory (v2, falling back to v1), utilisation and processes, per GPU.

The NVML binding is `nvidia-ml-py` (module `pynvml`).  The module is passed in (`nvml=`), so
tests inject a fake; `load_nvml()` imports the real one.  Nothing here imports pynvml at module
import time.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

MIB = 1024 * 1024


class NvmlUnavailable(Exception):
    """No NVML: binding missing, library not found, no driver, no GPU.  One-line reason."""


def deprecated_pynvml_installed() -> str | None:
    """The warning to give when the deprecated `pynvml` distribution is installed.

    That distribution shadows or wraps nvidia-ml-py's `pynvml` module and raises a FutureWarning."""
    try:
        v = importlib.metadata.version("pynvml")
    except importlib.metadata.PackageNotFoundError:
        return None
    return (f"the deprecated 'pynvml' distribution {v} is installed; uninstall it and use "
            "'nvidia-ml-py' (same module name)")


def load_nvml() -> tuple[Any, list[str]]:
    """Import the NVML binding.  Returns (module, warnings).  Raises NvmlUnavailable."""
    notes: list[str] = []
    dep = deprecated_pynvml_installed()
    if dep:
        notes.append(dep)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # recorded above instead
        try:
            mod = importlib.import_module("pynvml")
        except ImportError as exc:
            raise NvmlUnavailable(f"NVML binding not installed (pip install nvidia-ml-py): {exc}") \
                from None
    return mod, notes


def _err_text(nv: Any, exc: BaseException) -> str:
    s = str(exc).strip() or type(exc).__name__
    return s.splitlines()[0]


def _is_not_supported(nv: Any, exc: BaseException) -> bool:
    code = getattr(exc, "value", None)
    return code is not None and code == getattr(nv, "NVML_ERROR_NOT_SUPPORTED", 3)


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


@dataclass
class ProcSample:
    pid: int
    used_mib: float | None     # None: NVML could not say (never 0)
    kinds: tuple[str, ...]     # ("compute",), ("graphics",) or both


@dataclass
class DeviceSample:
    index: int
    t: float                   # monotonic seconds
    total_mib: float
    used_mib: float
    free_mib: float
    reserved_mib: float | None
    memory_api: str            # "v2" | "v1"
    util_gpu_pct: float | None
    util_mem_pct: float | None
    processes: list[ProcSample] = field(default_factory=list)
    processes_error: str | None = None


@dataclass
class DeviceInfo:
    index: int
    name: str
    uuid: str | None
    handle: Any
    mig_enabled: bool | None


class NvmlSession:
    """An initialised NVML.  Use as a context manager; raises NvmlUnavailable on init failure."""

    def __init__(self, nvml: Any) -> None:
        self.nv = nvml
        self.devices: list[DeviceInfo] = []
        self.driver_version: str | None = None
        self.cuda_driver_version: str | None = None
        self.notes: list[str] = []
        self._memory_api: dict[int, str] = {}
        self._v2_error: dict[int, str] = {}
        self._unsupported: dict[tuple[int, str], str] = {}

    def __enter__(self) -> "NvmlSession":
        nv = self.nv
        err = getattr(nv, "NVMLError", Exception)
        try:
            nv.nvmlInit()
        except err as exc:
            raise NvmlUnavailable(f"NVML init failed: {_err_text(nv, exc)}") from None
        except OSError as exc:
            raise NvmlUnavailable(f"NVML library not loadable: {exc}") from None
        try:
            n = nv.nvmlDeviceGetCount()
            for i in range(n):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                self.devices.append(DeviceInfo(index=i, name=self._try(lambda: _s(nv.nvmlDeviceGetName(h)), "?"),
                                               uuid=self._try(lambda: _s(nv.nvmlDeviceGetUUID(h)), None),
                                               handle=h, mig_enabled=self._mig(h)))
        except err as exc:
            self._shutdown()
            raise NvmlUnavailable(f"NVML device enumeration failed: {_err_text(nv, exc)}") from None
        if not self.devices:
            self._shutdown()
            raise NvmlUnavailable("NVML found no GPU")
        self.driver_version = self._try(lambda: _s(nv.nvmlSystemGetDriverVersion()), None)
        cuda = self._try(lambda: int(nv.nvmlSystemGetCudaDriverVersion()), None)
        if cuda:
            self.cuda_driver_version = f"{cuda // 1000}.{(cuda % 1000) // 10}"
        return self

    def __exit__(self, *exc: Any) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        try:
            self.nv.nvmlShutdown()
        except Exception:
            pass

    def _try(self, fn: Callable[[], Any], default: Any) -> Any:
        try:
            return fn()
        except Exception:
            return default

    def _mig(self, h: Any) -> bool | None:
        fn = getattr(self.nv, "nvmlDeviceGetMigMode", None)
        if fn is None:
            return None
        try:
            cur = fn(h)
            cur = cur[0] if isinstance(cur, (tuple, list)) else cur
            return bool(cur)
        except Exception:
            return None   # NotSupported on non-MIG GPUs

    @property
    def memory_api(self) -> dict[int, str]:
        return dict(self._memory_api)

    @property
    def v2_errors(self) -> dict[int, str]:
        return dict(self._v2_error)

    @property
    def unsupported(self) -> dict[str, str]:
        return {f"gpu{i}.{what}": why for (i, what), why in self._unsupported.items()}

    def _memory(self, d: DeviceInfo) -> tuple[float, float, float, float | None, str]:
        nv = self.nv
        if self._memory_api.get(d.index) != "v1":
            try:
                ver = getattr(nv, "nvmlMemory_v2")
                m = nv.nvmlDeviceGetMemoryInfo(d.handle, version=ver)
                self._memory_api[d.index] = "v2"
                return (m.total / MIB, m.used / MIB, m.free / MIB,
                        getattr(m, "reserved", 0) / MIB, "v2")
            except Exception as exc:   # AttributeError, TypeError (old binding), NVMLError
                self._v2_error[d.index] = f"{type(exc).__name__}: {_err_text(nv, exc)}"
                self._memory_api[d.index] = "v1"
        m = nv.nvmlDeviceGetMemoryInfo(d.handle)
        return m.total / MIB, m.used / MIB, m.free / MIB, None, "v1"

    def _util(self, d: DeviceInfo) -> tuple[float | None, float | None]:
        key = (d.index, "utilization")
        if key in self._unsupported:
            return None, None
        try:
            u = self.nv.nvmlDeviceGetUtilizationRates(d.handle)
            return float(u.gpu), float(u.memory)
        except Exception as exc:
            self._unsupported[key] = _err_text(self.nv, exc)
            return None, None

    def _procs(self, d: DeviceInfo) -> tuple[list[ProcSample], str | None]:
        nv = self.nv
        by_pid: dict[int, ProcSample] = {}
        errors: list[str] = []
        for kind, fname in (("compute", "nvmlDeviceGetComputeRunningProcesses"),
                            ("graphics", "nvmlDeviceGetGraphicsRunningProcesses")):
            key = (d.index, f"{kind}_processes")
            if key in self._unsupported:
                errors.append(f"{kind}: {self._unsupported[key]}")
                continue
            try:
                plist = getattr(nv, fname)(d.handle)
            except Exception as exc:
                msg = _err_text(nv, exc)
                if _is_not_supported(nv, exc) or isinstance(exc, AttributeError):
                    self._unsupported[key] = msg
                errors.append(f"{kind}: {msg}")
                continue
            for p in plist or []:
                pid = int(p.pid)
                used = getattr(p, "usedGpuMemory", None)
                used_mib = None if used is None else used / MIB
                prev = by_pid.get(pid)
                if prev is None:
                    by_pid[pid] = ProcSample(pid=pid, used_mib=used_mib, kinds=(kind,))
                else:
                    # the same context listed as compute and graphics: one allocation, not two
                    both = prev.used_mib if used_mib is None else (
                        used_mib if prev.used_mib is None else max(prev.used_mib, used_mib))
                    by_pid[pid] = ProcSample(pid=pid, used_mib=both,
                                             kinds=tuple(sorted(set(prev.kinds) | {kind})))
        return sorted(by_pid.values(), key=lambda p: p.pid), ("; ".join(errors) or None)

    def sample(self, d: DeviceInfo, t: float) -> DeviceSample:
        total, used, free, reserved, api = self._memory(d)
        ug, um = self._util(d)
        procs, perr = self._procs(d)
        return DeviceSample(index=d.index, t=t, total_mib=total, used_mib=used, free_mib=free,
                            reserved_mib=reserved, memory_api=api, util_gpu_pct=ug,
                            util_mem_pct=um, processes=procs, processes_error=perr)

    def sample_all(self, t: float) -> list[DeviceSample]:
        """One sample of every GPU."""
        return [self.sample(d, t) for d in self.devices]


def pid_memory(row: list[DeviceSample]) -> dict[int, float | None]:
    """PID -> MiB held over the GPUs of one sample: a process on several GPUs is summed, and one
    whose memory NVML could not say on any of them stays unknown (None, never 0)."""
    seen: dict[int, float | None] = {}
    for s in row:
        for p in s.processes:
            if p.pid not in seen:
                seen[p.pid] = p.used_mib
            elif seen[p.pid] is not None and p.used_mib is not None:
                seen[p.pid] = seen[p.pid] + p.used_mib  # type: ignore[operator]
            else:
                seen[p.pid] = None
    return seen


# ----------------------------------------------------------------------------- schedule and stats

@dataclass
class ScheduleStats:
    samples: int = 0
    missed: int = 0          # deadlines skipped because a tick overran
    max_lateness_s: float = 0.0


def run_schedule(duration_s: float, interval_s: float, tick: Callable[[int, float], None], *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> ScheduleStats:
    """Call `tick(k, now)` at start + k*interval for k = 0 .. floor(duration/interval).

    Deadlines are computed from the start, never from the previous tick, so the schedule does
    not drift; a tick that overruns skips the deadlines it missed (counted) instead of bunching.
    """
    if interval_s <= 0:
        raise ValueError("interval must be > 0")
    duration_s = max(0.0, duration_s)
    last_k = int(math.floor(duration_s / interval_s + 1e-9))
    st = ScheduleStats()
    start = clock()
    k = 0
    while k <= last_k:
        deadline = start + k * interval_s
        now = clock()
        if now < deadline:
            sleep(deadline - now)
            now = clock()
        st.max_lateness_s = max(st.max_lateness_s, now - deadline)
        tick(k, now)
        st.samples += 1
        after = clock()
        nxt = max(k + 1, int(math.ceil((after - start) / interval_s - 1e-9)))
        st.missed += max(0, min(nxt, last_k + 1) - (k + 1))
        k = nxt
    return st


@dataclass
class SeriesStats:
    n: int
    mean: float | None
    p95: float | None
    peak: float | None
    t_peak: float | None
    last: float | None

    def to_json(self, nd: int = 1) -> dict[str, Any]:
        r = (lambda v: None if v is None else round(v, nd))
        return {"n": self.n, "mean": r(self.mean), "p95": r(self.p95), "peak": r(self.peak),
                "t_peak_s": None if self.t_peak is None else round(self.t_peak, 3),
                "last": r(self.last)}


def series_stats(points: list[tuple[float, float | None]]) -> SeriesStats:
    """mean, p95 (nearest rank), peak and the time of the (first) peak of (t, value) points;
    None values are unknown and ignored."""
    vals = [(t, v) for t, v in points if v is not None]
    if not vals:
        return SeriesStats(0, None, None, None, None, None)
    xs = sorted(v for _, v in vals)
    rank = max(1, int(math.ceil(0.95 * len(xs))))
    t_peak, peak = max(vals, key=lambda tv: (tv[1], -tv[0]))
    return SeriesStats(n=len(xs), mean=sum(xs) / len(xs), p95=xs[rank - 1], peak=peak,
                       t_peak=t_peak, last=vals[-1][1])
