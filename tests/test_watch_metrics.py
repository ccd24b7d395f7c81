"""The metric families: their names and labels keep the rules, GPU series are absent without a GPU,
and with one (the fake NVML of llmops.testing.nvml, real /proc-shaped cgroup files) each compose
service's memory is attributed through its container; the README lists every family and rule."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from llmops.testing.nvml import FakeGpu, FakeNvml
from llmops.watch.gpumem import GpuSampler, expected_gpu_bytes
from llmops.watch.metrics import FAMILIES, exposition
from llmops.watch.readings import GatewayReading, GpuReading, HealthReading, Snapshot

ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20
CHAT, CODE = "a" * 64, "b" * 64


def test_every_family_keeps_the_naming_rules() -> None:
    names = [f.name for f in FAMILIES]
    assert len(names) == len(set(names))
    for f in FAMILIES:
        assert re.fullmatch(r"llmops_[a-z0-9_]+", f.name), f.name
        assert f.kind in ("gauge", "counter")
        assert f.name.endswith("_total") == (f.kind == "counter"), f.name
        assert set(f.labels) <= {"service", "role", "gpu"}, f.name
        if f.unit in ("seconds", "bytes"):
            assert f"_{f.unit}" in f.name, f.name
        assert f.help.endswith(".") and "\n" not in f.help


def _snap(**kw) -> Snapshot:
    base = dict(cycle=3, interval_s=5.0, roles=(("inference-chat", "inference-primary"), ("inference-code", "inference-secondary")),
                health=(HealthReading("inference-chat", "inference-primary", True, 0.004),
                        HealthReading("inference-code", "inference-secondary", False, 2.0, "no answer", running=True)),
                health_probes=(("inference-chat", 3, 0), ("inference-code", 3, 3)))
    base.update(kw)
    return Snapshot(**base)


def test_without_a_gpu_the_gpu_series_are_absent_and_available_is_0() -> None:
    text = exposition(_snap(gpu=GpuReading(False, "NVML init failed"))).decode()
    assert "llmops_gpu_available 0.0" in text
    assert not [x for x in text.splitlines() if x.startswith(("llmops_gpu_memory", "llmops_service_gpu"))]
    assert "gpu_memory" not in text           # not even their HELP lines


def test_without_a_gateway_no_gateway_series() -> None:
    text = exposition(_snap()).decode()
    assert "llmops_gateway" not in text and "llmops_failovers_total" not in text


def test_a_failed_gateway_probe_keeps_the_last_backend() -> None:
    s = _snap(gateway=GatewayReading("api-gateway", False, 10.0, None, "no answer"), gateway_backend="inference-code",
              on_secondary=True, gateway_probes=9, gateway_failures=2, failovers=1)
    text = exposition(s).decode()
    assert 'llmops_gateway_probe_up{role="gateway",service="api-gateway"} 0.0' in text
    assert 'llmops_gateway_backend_info{role="inference-secondary",service="inference-code"} 1.0' in text
    assert "llmops_gateway_on_secondary 1.0" in text and "llmops_failovers_total 1.0" in text


def value(text: str, series: str) -> float:
    """The value of one series in Prometheus text (prometheus-client writes 8.5e+10 for big ones)."""
    line = next(x for x in text.splitlines() if x.startswith(series + " "))
    return float(line[len(series) + 1:])


def _proc(tmp_path: Path, pid: int, cgroup: str) -> None:
    d = tmp_path / str(pid)
    d.mkdir()
    (d / "cgroup").write_text(cgroup)
    (d / "comm").write_text("llama-server\n")


def test_gpu_memory_per_compose_service(tmp_path: Path) -> None:
    _proc(tmp_path, 101, f"0::/system.slice/docker-{CHAT}.scope\n")
    _proc(tmp_path, 102, f"12:memory:/docker/{CODE}\n")
    _proc(tmp_path, 103, "0::/user.slice\n")                     # a host process: not a service
    gpus = [FakeGpu(total_mib=81559, used_mib=6000, compute=[(101, 2500.0), (102, 2000.0), (103, 500.0)]),
            FakeGpu(total_mib=81559, used_mib=1500, compute=[(101, 1000.0)], uuid="GPU-1")]
    g = GpuSampler(FakeNvml(gpus), proc_root=tmp_path)
    try:
        r = g.sample({CHAT: "inference-chat", CODE: "inference-code"})
    finally:
        g.close()
    assert r.available
    assert [(d.index, d.total_bytes, d.used_bytes) for d in r.devices] == [(0, 81559 * MIB, 6000 * MIB), (1, 81559 * MIB, 1500 * MIB)]
    assert r.per_service == (("inference-chat", 0, 2500 * MIB), ("inference-chat", 1, 1000 * MIB),
                             ("inference-code", 0, 2000 * MIB))
    text = exposition(_snap(gpu=r, expected_gpu_bytes=(("inference-chat", 2400.0 * MIB),))).decode()
    assert value(text, "llmops_gpu_available") == 1
    assert value(text, 'llmops_gpu_memory_headroom_bytes{gpu="0"}') == (81559 - 6000) * MIB
    assert value(text, 'llmops_service_gpu_memory_used_bytes{gpu="1",role="inference-primary",service="inference-chat"}') == 1000 * MIB
    assert value(text, 'llmops_service_gpu_memory_expected_bytes{role="inference-primary",service="inference-chat"}') == 2400 * MIB
    assert 'service="unattributed"' not in text and "inference-code\",gpu=\"1" not in text


def test_no_nvml_is_said_once_not_raised() -> None:
    g = GpuSampler(FakeNvml([], init_error=9))
    assert not g.available and "Driver Not Loaded" in g.reason
    assert g.sample({}) == GpuReading(False, g.reason)


def test_no_planned_figure_for_servers_without_a_host_model() -> None:
    assert expected_gpu_bytes([]) == ({}, "no llama-server with its model on a host mount: no planned GPU figure")


def _monitoring_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Monitoring")
    end = text.find("\n## ", start + 5)
    return text[start:end if end > 0 else None]


def test_the_readme_lists_every_family_with_its_labels_and_every_rule() -> None:
    sec = _monitoring_section()
    for f in FAMILIES:
        row = next((x for x in sec.splitlines() if x.startswith(f"| `{f.name}` ")), None)
        assert row is not None, f"README's Monitoring table lacks {f.name}"
        labels = ", ".join(f"`{x}`" for x in f.labels) if f.labels else "-"
        assert f"| {labels} |" in row and f"| {f.unit} |" in row, (f.name, row)
    rules = yaml.safe_load((ROOT / "compose" / "prometheus" / "llmops.rules.yml").read_text())
    for r in rules["groups"][0]["rules"]:
        assert f"`{r['alert']}`" in sec, r["alert"]
