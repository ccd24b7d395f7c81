"""Sampling: read NVML on a drift-free schedule and return what was seen, a `Recording`.

Nothing is judged here; `analysis.analyse` turns a recording into the check's result.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..errors import UsageError
from ..evidence import JsonObject
from .nvml import DeviceSample, NvmlSession, load_nvml, run_schedule


@dataclass(frozen=True)
class SampledGpu:
    """One GPU the recording sampled.  Its fields head each of the evidence's `details.devices`."""

    index: int
    name: str
    uuid: str | None
    mig_enabled: bool | None
    memory_api: str | None              # v2 or v1: which NVML memory call answered
    memory_v2_error: str | None         # why v2 did not, when it did not

    def to_json(self) -> JsonObject:
        return asdict(self)


@dataclass(frozen=True)
class DriverVersions:
    """The driver the recording ran on (`details.driver_version`, `.cuda_driver_version`)."""

    driver_version: str | None
    cuda_driver_version: str | None

    def to_json(self) -> JsonObject:
        return asdict(self)


@dataclass
class Recording:
    ticks: list[tuple[float, list[DeviceSample]]]
    schedule: Any                       # nvml.Schedule: samples, missed, max lateness
    devices: list[SampledGpu]
    driver: DriverVersions
    unsupported: dict[str, str]         # what NVML could not give -> why (nvml.NvmlSession.unsupported)
    cpu_s: float
    wall_s: float
    notes: list[str] = field(default_factory=list)
    sample_error: str | None = None
    duration_s: float = 0.0             # the window and the interval asked for
    interval_s: float = 0.0

    @property
    def pids(self) -> list[int]:
        return sorted({p.pid for _, row in self.ticks for s in row for p in s.processes})

    def gpu_env(self) -> JsonObject:
        """The GPU environment for the run's manifest (`details.gpu_env`, the manifest's `gpu`)."""
        return {**self.driver.to_json(), "devices": [
            {"index": d.index, "name": d.name, "uuid": d.uuid,
             "total_mib": (round(self.ticks[-1][1][i].total_mib, 1) if self.ticks else None),
             "memory_api": d.memory_api, "mig_enabled": d.mig_enabled}
            for i, d in enumerate(self.devices)]}


def record(*, duration_s: float, interval_s: float, device: int | None, nvml: Any = None,
           on_sample: Callable[[float, list[DeviceSample]], None] | None = None,
           clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> Recording:
    """Sample every selected GPU for `duration_s` every `interval_s`.

    Raises NvmlUnavailable when there is no GPU/driver (the caller reports `skipped`) and
    UsageError for a GPU index that does not exist."""
    notes: list[str] = []
    if nvml is None:
        nvml, load_notes = load_nvml()
        notes.extend(load_notes)
    session = NvmlSession(nvml).__enter__()
    try:
        devices = session.devices
        if device is not None:
            if not 0 <= device < len(devices):
                raise UsageError(f"no GPU {device}: this machine has GPU "
                                 f"{'0' if len(devices) == 1 else f'0..{len(devices) - 1}'}")
            devices = [devices[device]]
        ticks: list[tuple[float, list[DeviceSample]]] = []
        sample_error: list[str] = []

        def tick(k: int, now: float) -> None:
            if sample_error:
                return
            row: list[DeviceSample] = []
            try:
                for d in devices:
                    row.append(session.sample(d, now))
            except Exception as exc:   # NVMLError mid-run (GPU fell off the bus, driver reload)
                sample_error.append(f"sampling GPU failed at sample {k}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
                return
            ticks.append((now, row))
            if on_sample:
                on_sample(now, row)

        cpu0, wall0 = time.process_time(), time.monotonic()
        sched = run_schedule(duration_s, interval_s, tick, clock=clock, sleep=sleep)
        cpu_s, wall_s = time.process_time() - cpu0, time.monotonic() - wall0
        sampled = [SampledGpu(d.index, d.name, d.uuid, d.mig_enabled, session.memory_api.get(d.index),
                              session.v2_errors.get(d.index)) for d in devices]
        driver = DriverVersions(session.driver_version, session.cuda_driver_version)
        unsupported = session.unsupported
    finally:
        session.__exit__(None, None, None)
    return Recording(ticks=ticks, schedule=sched, devices=sampled, driver=driver,
                     unsupported=unsupported, cpu_s=cpu_s, wall_s=wall_s, notes=notes,
                     sample_error=sample_error[0] if sample_error else None,
                     duration_s=duration_s, interval_s=interval_s)
