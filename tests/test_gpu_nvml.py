"""NVML sampler against an injected fake NVML: memory API fallback, unknown values, schedule."""

from __future__ import annotations

import importlib.metadata
import math

import pytest

from llmops.gpu import nvml as nvml_mod
from llmops.gpu.nvml import NvmlSession, NvmlUnavailable, run_schedule, series_stats
from llmops.testing.nvml import FakeClock, FakeGpu, FakeNvml


def _sample(fake: FakeNvml, index: int = 0):
    with NvmlSession(fake) as s:
        return s, s.sample(s.devices[index], 0.0)


def test_memory_v2_used_when_available():
    fake = FakeNvml([FakeGpu(total_mib=8192, used_mib=1000, reserved_mib=300)])
    s, smp = _sample(fake)
    assert smp.memory_api == "v2"
    assert smp.used_mib == pytest.approx(1000)
    assert smp.reserved_mib == pytest.approx(300)
    assert smp.free_mib == pytest.approx(8192 - 1000 - 300)
    assert fake.calls == ["mem_v2"]


@pytest.mark.parametrize("v2", [False, "error"])
def test_memory_falls_back_to_v1(v2):
    fake = FakeNvml([FakeGpu(total_mib=8192, used_mib=1000, reserved_mib=300)], v2=v2)
    with NvmlSession(fake) as s:
        a = s.sample(s.devices[0], 0.0)
        b = s.sample(s.devices[0], 0.1)
        assert s.memory_api == {0: "v1"}
        assert 0 in s.v2_errors
    assert a.memory_api == b.memory_api == "v1"
    assert a.reserved_mib is None
    assert a.used_mib == pytest.approx(1300)          # v1 used includes reserved
    # v2 is tried once, not on every sample
    assert fake.calls.count("mem_v1") == 2
    assert fake.calls.count("mem_v2") == (1 if v2 == "error" else 0)


def test_used_gpu_memory_none_is_unknown_not_zero():
    fake = FakeNvml([FakeGpu(used_mib=500, compute=[(10, None), (11, 64)])])
    _, smp = _sample(fake)
    by = {p.pid: p for p in smp.processes}
    assert by[10].used_mib is None
    assert by[11].used_mib == pytest.approx(64)


def test_compute_and_graphics_union_dedup_by_pid():
    fake = FakeNvml([FakeGpu(used_mib=500, compute=[(10, 100), (12, 7)], graphics=[(10, 100), (13, 3)])])
    _, smp = _sample(fake)
    assert [p.pid for p in smp.processes] == [10, 12, 13]
    p10 = smp.processes[0]
    assert p10.kinds == ("compute", "graphics")
    assert p10.used_mib == pytest.approx(100)
    assert sum(p.used_mib for p in smp.processes) == pytest.approx(110)


def test_not_supported_utilization_and_processes():
    fake = FakeNvml([FakeGpu(used_mib=500, util=None, compute=None, graphics=None)])
    s, smp = _sample(fake)
    assert smp.util_gpu_pct is None and smp.util_mem_pct is None
    assert smp.processes == []
    assert "compute" in (smp.processes_error or "") and "graphics" in smp.processes_error
    assert set(s.unsupported) == {"gpu0.utilization", "gpu0.compute_processes", "gpu0.graphics_processes"}


def test_several_gpus_enumerated():
    fake = FakeNvml([FakeGpu(name="A", uuid="GPU-a", used_mib=1), FakeGpu(name="B", uuid="GPU-b", used_mib=2, mig=True)])
    with NvmlSession(fake) as s:
        assert [d.name for d in s.devices] == ["A", "B"]
        assert [d.mig_enabled for d in s.devices] == [None, True]
        assert s.sample(s.devices[1], 0).used_mib == pytest.approx(2)
        assert s.cuda_driver_version == "12.4"
    assert not fake.initialised                          # shut down on exit


def test_init_failure_is_unavailable_with_reason():
    with pytest.raises(NvmlUnavailable, match="Driver Not Loaded"):
        NvmlSession(FakeNvml([FakeGpu()], init_error=9)).__enter__()
    with pytest.raises(NvmlUnavailable, match="no GPU"):
        NvmlSession(FakeNvml([])).__enter__()


def test_deprecated_pynvml_distribution_warned(monkeypatch):
    real = importlib.metadata.version

    def fake_version(name):
        if name == "pynvml":
            return "12.0.0"
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", fake_version)
    msg = nvml_mod.deprecated_pynvml_installed()
    assert msg and "pynvml" in msg and "12.0.0" in msg and "nvidia-ml-py" in msg

    def none_version(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", none_version)
    assert nvml_mod.deprecated_pynvml_installed() is None


# ----------------------------------------------------------------------------- schedule

def test_schedule_is_drift_free():
    clock = FakeClock()
    start = clock()
    times = []

    def tick(k, now):
        times.append(now)
        clock.t += 0.037              # each sample costs 37 ms: must not push later deadlines

    st = run_schedule(1.0, 0.1, tick, clock=clock, sleep=clock.sleep)
    assert st.samples == 11 and st.missed == 0
    for k, t in enumerate(times):
        assert t - start == pytest.approx(0.1 * k, abs=1e-9)


def test_schedule_skips_missed_deadlines_instead_of_bunching():
    clock = FakeClock()
    start = clock()
    times = []

    def tick(k, now):
        times.append(round(now - start, 6))
        if k == 2:
            clock.t += 0.35            # overrun: deadlines 3, 4, 5 are gone

    st = run_schedule(1.0, 0.1, tick, clock=clock, sleep=clock.sleep)
    assert st.missed == 3
    assert st.samples == 11 - 3
    assert times[:4] == pytest.approx([0.0, 0.1, 0.2, 0.6])
    # after the overrun it is back on the original grid
    assert all(math.isclose((t / 0.1) % 1, 0, abs_tol=1e-6) or math.isclose((t / 0.1) % 1, 1, abs_tol=1e-6)
               for t in times)


def test_schedule_zero_duration_takes_one_sample():
    clock = FakeClock()
    n = []
    st = run_schedule(0, 0.5, lambda k, now: n.append(k), clock=clock, sleep=clock.sleep)
    assert n == [0] and st.samples == 1


def test_series_stats_mean_p95_peak_and_time():
    pts = [(i * 0.1, float(v)) for i, v in enumerate([5, 1, 9, 3, 9, 2, 4, 8, 7, 6,
                                                       0, 1, 2, 3, 4, 5, 6, 7, 8, 2])]
    st = series_stats(pts + [(99.0, None)])
    vals = [v for _, v in pts]
    assert st.n == 20
    assert st.mean == pytest.approx(sum(vals) / 20)
    assert st.peak == max(vals)
    assert st.t_peak == pytest.approx(0.2)             # first time the peak was reached
    assert st.p95 == sorted(vals)[math.ceil(0.95 * 20) - 1]
    assert series_stats([(0, None)]).mean is None
