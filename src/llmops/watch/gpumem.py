"""GPU memory per compose service, for each interval: NVML's device figures, and each process's
memory summed by the service its cgroup names (the PID -> container -> service attribution
`gpu-report` uses).  Without NVML or a GPU there is nothing to sample: `GpuReading(False, why)`,
and the GPU series are left out of the exposition rather than written as zeros.

Blocking calls (the loop runs `sample` in a worker thread, with a timeout)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..gpu.attribution import Attributor
from ..gpu.nvml import MIB, NvmlSession, NvmlUnavailable, load_nvml
from .readings import GpuDevice, GpuReading


class GpuSampler:
    def __init__(self, nvml: Any = None, proc_root: Path = Path("/proc")) -> None:
        """`nvml`: the binding (default: nvidia-ml-py's); `proc_root`: where PIDs' cgroups are read."""
        self.proc_root = proc_root
        self.session: NvmlSession | None = None
        self.reason = ""
        try:
            mod = nvml if nvml is not None else load_nvml()[0]
            self.session = NvmlSession(mod).__enter__()
        except NvmlUnavailable as e:
            self.reason = str(e).splitlines()[0] if str(e) else "no NVML"
        except Exception as e:  # noqa: BLE001 - a broken driver is "no GPU here", said once
            self.reason = f"NVML failed: {type(e).__name__}"

    @property
    def available(self) -> bool:
        return self.session is not None

    def sample(self, containers: dict[str, str], clock: Callable[[], float] | None = None) -> GpuReading:
        """One reading; `containers`: container ID -> compose service."""
        if self.session is None:
            return GpuReading(False, self.reason)
        s = self.session
        devices, pids = [], {}
        for d in s.devices:
            smp = s.sample(d, clock() if clock else 0.0)
            devices.append(GpuDevice(d.index, smp.total_mib * MIB, smp.used_mib * MIB, smp.free_mib * MIB))
            for p in smp.processes:
                if p.used_mib is not None:
                    pids.setdefault(p.pid, []).append((d.index, p.used_mib * MIB))
        att = Attributor(proc_root=self.proc_root, known=containers).attribute(pids)
        per: dict[tuple[str, int], float] = {}
        for pid, uses in pids.items():
            service = att.pids[pid].service if pid in att.pids else None
            if service is None:
                continue
            for index, used in uses:
                per[(service, index)] = per.get((service, index), 0.0) + used
        return GpuReading(True, "", tuple(devices), tuple((svc, i, b) for (svc, i), b in sorted(per.items())))

    def close(self) -> None:
        if self.session is not None:
            self.session.__exit__(None, None, None)
            self.session = None


def expected_gpu_bytes(services: list[Any]) -> tuple[dict[str, float], str]:
    """The plan's figure per llama-server (gpu-plan's arithmetic on the GGUF files the services
    mount), and a note when there is none.  A server whose model is baked into its image (the cpu
    profile) is not planned, as in gpu-plan."""
    from ..gpu.plan import plan_servers, specs_from_services

    try:
        specs = specs_from_services(services, allow_unknown_flags=True)
        if not specs:
            return {}, "no llama-server with its model on a host mount: no planned GPU figure"
        plan = plan_servers(specs, gpu_mib=None, gpu_source="llmops watch")
    except Exception as e:  # noqa: BLE001 - the plan refines the metrics; it must not stop them
        return {}, f"no planned GPU figure: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    out = {row["name"]: float(row["total_mib"]) * MIB for row in plan.servers if row.get("total_mib") is not None}
    return out, ""
