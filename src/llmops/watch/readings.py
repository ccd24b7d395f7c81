"""What one interval measured, as plain values: the probes write these, the exposition and the
CLI's table read them.  A `Snapshot` is immutable once published, so the HTTP thread can read
the latest one while the loop builds the next."""

from __future__ import annotations

from dataclasses import dataclass, field

@dataclass(frozen=True)
class HealthReading:
    service: str
    role: str
    ok: bool
    latency_s: float | None          # None: not probed (no URL, container not running)
    reason: str = ""                 # why not ok, scrubbed of the key
    running: bool | None = None      # Docker's word; None when Docker was not asked
    body_collection: str | None = None   # rag's /health names the collection it uses

    @property
    def up(self) -> bool:
        return self.ok and self.running is not False


@dataclass(frozen=True)
class LlamaReading:
    service: str
    role: str
    available: bool                  # /metrics answered (llama-server started with --metrics)
    values: tuple[tuple[str, float], ...] = ()   # our series name -> value


@dataclass(frozen=True)
class GatewayReading:
    service: str
    ok: bool
    latency_s: float
    backend: str | None              # the compose service that served it
    reason: str = ""


@dataclass(frozen=True)
class VectorReading:
    service: str
    role: str
    ready: bool
    points: int | None               # in the collection rag uses; None: unknown


@dataclass(frozen=True)
class GpuDevice:
    index: int
    total_bytes: float
    used_bytes: float
    free_bytes: float


@dataclass(frozen=True)
class GpuReading:
    available: bool
    reason: str = ""                 # why not, once
    devices: tuple[GpuDevice, ...] = ()
    # (service, gpu index) -> bytes used by that service's processes
    per_service: tuple[tuple[str, int, float], ...] = ()


@dataclass(frozen=True)
class Snapshot:
    cycle: int
    interval_s: float
    health: tuple[HealthReading, ...] = ()
    llama: tuple[LlamaReading, ...] = ()
    gateway: GatewayReading | None = None
    vectordb: VectorReading | None = None
    gpu: GpuReading = field(default_factory=lambda: GpuReading(False, "not sampled yet"))
    expected_gpu_bytes: tuple[tuple[str, float], ...] = ()
    roles: tuple[tuple[str, str], ...] = ()          # service -> role, for labels
    # running totals
    health_probes: tuple[tuple[str, int, int], ...] = ()   # service, probes, failures
    gateway_probes: int = 0
    gateway_failures: int = 0
    on_secondary: bool = False
    gateway_backend: str | None = None
    failovers: int = 0
    failbacks: int = 0
    scrape_duration_s: float = 0.0
    overruns: int = 0
    cpu_seconds: float = 0.0

    def role_of(self, service: str) -> str:
        return dict(self.roles).get(service, "")
