"""The metric families `llmops watch` exports, and their Prometheus text.

Rules every family keeps (a unit test holds them to it, and `promtool check metrics` to the
text): the `llmops_` prefix; the unit in the name (`_seconds`, `_bytes`); `_total` on counters
and only there; labels only `service`, `role` and `gpu` (compose service names, the six roles,
GPU indexes: bounded).  A series with nothing to say is absent, never a made-up zero: no GPU
means no GPU series and one `llmops_gpu_available 0`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .readings import Snapshot

SR = ("service", "role")


@dataclass(frozen=True)
class Family:
    name: str
    kind: str                  # gauge | counter
    labels: tuple[str, ...]
    unit: str                  # for the README's table
    help: str
    source: str = ""           # a llama-server series re-exported under this name (its own has ':')


FAMILIES: tuple[Family, ...] = (
    Family("llmops_service_up", "gauge", SR, "0/1", "1 when the service's container is running and its health probe passed."),
    Family("llmops_health_probe_duration_seconds", "gauge", SR, "seconds", "How long the last health probe took (to its answer or its timeout)."),
    Family("llmops_health_probes_total", "counter", SR, "probes", "Health probes sent."),
    Family("llmops_health_probe_failures_total", "counter", SR, "probes", "Health probes that failed: no answer in time, or not the healthy answer."),
    Family("llmops_gateway_probe_up", "gauge", SR, "0/1", "1 when the last one-token completion through the gateway got HTTP 200."),
    Family("llmops_gateway_probe_duration_seconds", "gauge", SR, "seconds", "How long the last completion through the gateway took."),
    Family("llmops_gateway_probes_total", "counter", SR, "requests", "Completions sent through the gateway (one per interval)."),
    Family("llmops_gateway_probe_failures_total", "counter", SR, "requests", "Completions through the gateway that did not get HTTP 200 in time."),
    Family("llmops_gateway_backend_info", "gauge", SR, "1", "The model server that served the last answered probe (value 1; its service and role)."),
    Family("llmops_gateway_on_secondary", "gauge", (), "0/1", "1 while the last answered probe was served by a secondary model server."),
    Family("llmops_failovers_total", "counter", (), "events", "Moves of the gateway from the primary to a secondary, as the probes saw them."),
    Family("llmops_failbacks_total", "counter", (), "events", "Moves of the gateway from a secondary back to the primary."),
    Family("llmops_llama_requests_processing", "gauge", SR, "requests", "Requests the llama-server is processing.", "llamacpp:requests_processing"),
    Family("llmops_llama_requests_deferred", "gauge", SR, "requests", "Requests the llama-server has deferred, waiting for a slot.", "llamacpp:requests_deferred"),
    Family("llmops_llama_prompt_tokens_per_second", "gauge", SR, "tokens/s", "Prompt tokens per second of prompt processing since the previous round, from the llama-server's counters (absent when it processed none)."),
    Family("llmops_llama_predicted_tokens_per_second", "gauge", SR, "tokens/s", "Tokens per second of generation since the previous round, from the llama-server's counters (absent when it generated none)."),
    Family("llmops_llama_prompt_tokens_total", "counter", SR, "tokens", "Prompt tokens the llama-server has processed.", "llamacpp:prompt_tokens_total"),
    Family("llmops_llama_predicted_tokens_total", "counter", SR, "tokens", "Tokens the llama-server has generated.", "llamacpp:tokens_predicted_total"),
    Family("llmops_llama_prompt_seconds_total", "counter", SR, "seconds", "Time the llama-server spent on prompts.", "llamacpp:prompt_seconds_total"),
    Family("llmops_llama_predicted_seconds_total", "counter", SR, "seconds", "Time the llama-server spent generating.", "llamacpp:tokens_predicted_seconds_total"),
    Family("llmops_llama_metrics_up", "gauge", SR, "0/1", "1 when the llama-server's /metrics answered (it needs --metrics)."),
    Family("llmops_vectordb_up", "gauge", SR, "0/1", "1 when the vector DB answered ready."),
    Family("llmops_vectordb_points", "gauge", SR, "points", "Points in the collection rag uses (exact count)."),
    Family("llmops_gpu_available", "gauge", (), "0/1", "1 when NVML sees a GPU; 0 and no other GPU series when not."),
    Family("llmops_gpu_memory_total_bytes", "gauge", ("gpu",), "bytes", "The GPU's memory, by NVML."),
    Family("llmops_gpu_memory_used_bytes", "gauge", ("gpu",), "bytes", "The GPU's used memory, by NVML (every process and the driver)."),
    Family("llmops_gpu_memory_headroom_bytes", "gauge", ("gpu",), "bytes", "The GPU's free memory, by NVML."),
    Family("llmops_service_gpu_memory_used_bytes", "gauge", ("service", "role", "gpu"), "bytes", "GPU memory held by the service's processes (PID -> cgroup -> compose service)."),
    Family("llmops_service_gpu_memory_expected_bytes", "gauge", SR, "bytes", "What gpu-plan expects the service to hold (only for servers whose model file it can read)."),
    Family("llmops_watch_scrape_duration_seconds", "gauge", (), "seconds", "How long the last interval's probes took, all together."),
    Family("llmops_watch_interval_seconds", "gauge", (), "seconds", "The interval between probe rounds (--interval)."),
    Family("llmops_watch_cycles_total", "counter", (), "rounds", "Probe rounds done."),
    Family("llmops_watch_overruns_total", "counter", (), "rounds", "Probe rounds that took longer than the interval (the next one started late)."),
    Family("llmops_watch_cpu_seconds_total", "counter", (), "seconds", "CPU time of the watch process (user + system)."),
)
BY_NAME = {f.name: f for f in FAMILIES}
# llama-server's series name -> ours, for the parser
LLAMA_SERIES = {f.source: f.name for f in FAMILIES if f.source}


class _Builder:
    """Families filled from one snapshot, emitted only when they hold a sample (absent, not 0)."""

    def __init__(self) -> None:
        self.families: dict[str, Metric] = {}

    def add(self, name: str, labels: tuple[str, ...], value: float) -> None:
        fam = self.families.get(name)
        if fam is None:
            f = BY_NAME[name]
            cls = CounterMetricFamily if f.kind == "counter" else GaugeMetricFamily
            fam = self.families[name] = cls(name, f.help, labels=list(f.labels))
        fam.add_metric(list(labels), float(value))


def _services(b: _Builder, s: Snapshot) -> None:
    for h in s.health:
        lv = (h.service, h.role)
        b.add("llmops_service_up", lv, 1 if h.up else 0)
        if h.latency_s is not None:
            b.add("llmops_health_probe_duration_seconds", lv, h.latency_s)
    for service, probes, failures in s.health_probes:
        b.add("llmops_health_probes_total", (service, s.role_of(service)), probes)
        b.add("llmops_health_probe_failures_total", (service, s.role_of(service)), failures)
    for r in s.llama:
        b.add("llmops_llama_metrics_up", (r.service, r.role), 1 if r.available else 0)
        for name, value in r.values:
            b.add(name, (r.service, r.role), value)
    if s.vectordb is not None:
        v = s.vectordb
        b.add("llmops_vectordb_up", (v.service, v.role), 1 if v.ready else 0)
        if v.points is not None:
            b.add("llmops_vectordb_points", (v.service, v.role), v.points)


def _gateway(b: _Builder, s: Snapshot) -> None:
    g = s.gateway
    if g is None:
        return
    lv = (g.service, "gateway")
    b.add("llmops_gateway_probe_up", lv, 1 if g.ok else 0)
    b.add("llmops_gateway_probe_duration_seconds", lv, g.latency_s)
    b.add("llmops_gateway_probes_total", lv, s.gateway_probes)
    b.add("llmops_gateway_probe_failures_total", lv, s.gateway_failures)
    if s.gateway_backend is not None:
        b.add("llmops_gateway_backend_info", (s.gateway_backend, s.role_of(s.gateway_backend)), 1)
    b.add("llmops_gateway_on_secondary", (), 1 if s.on_secondary else 0)
    b.add("llmops_failovers_total", (), s.failovers)
    b.add("llmops_failbacks_total", (), s.failbacks)


def _gpu(b: _Builder, s: Snapshot) -> None:
    b.add("llmops_gpu_available", (), 1 if s.gpu.available else 0)
    if not s.gpu.available:
        return
    for d in s.gpu.devices:
        b.add("llmops_gpu_memory_total_bytes", (str(d.index),), d.total_bytes)
        b.add("llmops_gpu_memory_used_bytes", (str(d.index),), d.used_bytes)
        b.add("llmops_gpu_memory_headroom_bytes", (str(d.index),), d.free_bytes)
    for service, index, used in s.gpu.per_service:
        b.add("llmops_service_gpu_memory_used_bytes", (service, s.role_of(service), str(index)), used)
    for service, expected in s.expected_gpu_bytes:
        b.add("llmops_service_gpu_memory_expected_bytes", (service, s.role_of(service)), expected)


def _watch(b: _Builder, s: Snapshot) -> None:
    b.add("llmops_watch_scrape_duration_seconds", (), s.scrape_duration_s)
    b.add("llmops_watch_interval_seconds", (), s.interval_s)
    b.add("llmops_watch_cycles_total", (), s.cycle)
    b.add("llmops_watch_overruns_total", (), s.overruns)
    b.add("llmops_watch_cpu_seconds_total", (), s.cpu_seconds)


def families(s: Snapshot) -> list[Metric]:
    b = _Builder()
    for part in (_services, _gateway, _gpu, _watch):
        part(b, s)
    return list(b.families.values())


class SnapshotCollector:
    """A prometheus-client collector over whatever snapshot `latest()` returns now."""

    def __init__(self, latest: Callable[[], "Snapshot | None"]) -> None:
        self.latest = latest

    def collect(self) -> Iterator[Metric]:
        s = self.latest()
        if s is not None:
            yield from families(s)


def registry_for(collector: SnapshotCollector) -> CollectorRegistry:
    """A registry holding only our families (no python_* or process_* defaults: every name is ours)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return reg


def exposition(s: Snapshot) -> bytes:
    """The Prometheus text (format 0.0.4) of one snapshot."""
    return generate_latest(registry_for(SnapshotCollector(lambda: s)))
