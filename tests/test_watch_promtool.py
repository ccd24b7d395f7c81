"""Debian's promtool and prometheus on llmops watch: `promtool check metrics` on the real CLI's
`--once` output, `promtool test rules` on series written in tests/data/watch (and a broken copy
that must fail), the shipped config, and a real Prometheus scraping a real `llmops watch`
subprocess while a stand-in primary goes away and comes back (the e2e test does the same on
the Docker stack).  Skipped, saying why, only where neither binary is found."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from llmops.testing.nvml import FakeGpu, FakeNvml
from llmops.watch.gpumem import GpuSampler
from llmops.watch.metrics import exposition
from llmops.watch.readings import Snapshot
from watch_prom import Prometheus, assert_down_and_back, fast_rules, find_tool, missing_reason
from watch_standins import Stack

ROOT = Path(__file__).resolve().parents[1]
PROMTOOL = find_tool("promtool")
PROMETHEUS = find_tool("prometheus")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason=missing_reason("promtool"))
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason=missing_reason("prometheus"))
TEST_FILE = ROOT / "tests" / "data" / "watch" / "llmops.rules.test.yml"


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("LLMOPS_DEBUG", "LITELLM_MASTER_KEY")}
    e["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + e.get("PYTHONPATH", "")
    e.update(extra)
    return e


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL or "promtool", *args], input=stdin, capture_output=True, text=True, timeout=60)


@pytest.fixture
def standins():
    s = Stack()
    yield s
    s.close()


@needs_promtool
def test_promtool_accepts_the_once_exposition(standins: Stack) -> None:
    p = subprocess.run([sys.executable, "-m", "llmops.cli", "watch", "--once", *standins.target_args()],
                       capture_output=True, text=True, env=env(LITELLM_MASTER_KEY=Stack.KEY), timeout=60)
    assert p.returncode == 0, p.stderr
    assert "llmops_llama_requests_processing" in p.stdout
    check = promtool("check", "metrics", stdin=p.stdout)
    assert check.returncode == 0, check.stdout + check.stderr


@needs_promtool
def test_promtool_accepts_the_gpu_series_too(tmp_path: Path) -> None:
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "cgroup").write_text(f"0::/system.slice/docker-{'c' * 64}.scope\n")
    g = GpuSampler(FakeNvml([FakeGpu(total_mib=81559, used_mib=3000, compute=[(7, 2900.0)])]), proc_root=tmp_path)
    snap = Snapshot(1, 5.0, gpu=g.sample({"c" * 64: "inference-chat"}), roles=(("inference-chat", "inference-primary"),),
                    expected_gpu_bytes=(("inference-chat", 2.9e9),))
    g.close()
    text = exposition(snap).decode()
    assert "llmops_service_gpu_memory_used_bytes" in text
    check = promtool("check", "metrics", stdin=text)
    assert check.returncode == 0, check.stdout + check.stderr


@needs_promtool
def test_promtool_refuses_llama_servers_own_names() -> None:
    """Why the series are re-exported under llmops names: llama-server's carry ':'."""
    raw = "# HELP llamacpp:requests_processing x\n# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 0\n"
    check = promtool("check", "metrics", stdin=raw)
    assert check.returncode != 0 and "should not contain ':'" in check.stdout + check.stderr


@needs_promtool
def test_the_rules_and_the_config_check() -> None:
    for args in (("check", "rules", str(ROOT / "compose/prometheus/llmops.rules.yml")),
                 ("check", "config", str(ROOT / "compose/prometheus/prometheus.yml"))):
        p = promtool(*args)
        assert p.returncode == 0, p.stdout + p.stderr
    assert "6 rules found" in promtool("check", "rules", str(ROOT / "compose/prometheus/llmops.rules.yml")).stdout


@needs_promtool
def test_promtool_test_rules_on_series_written_in_the_test() -> None:
    p = promtool("test", "rules", str(TEST_FILE))
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr


@needs_promtool
def test_the_rules_test_is_not_vacuous(tmp_path: Path) -> None:
    """A copy expecting no alert where the rules fire one, and one whose rule waits longer, fail."""
    doc = yaml.safe_load(TEST_FILE.read_text())
    doc["rule_files"] = [str(ROOT / "compose/prometheus/llmops.rules.yml")]
    firing = doc["tests"][0]["alert_rule_test"][1]
    assert firing["alertname"] == "LlmopsModelServerDown" and firing["exp_alerts"]
    text = yaml.safe_dump(doc)
    firing["exp_alerts"] = []
    (tmp_path / "quiet.test.yml").write_text(yaml.safe_dump(doc))
    p = promtool("test", "rules", str(tmp_path / "quiet.test.yml"))
    assert p.returncode != 0 and "LlmopsModelServerDown" in p.stdout + p.stderr, p.stdout + p.stderr
    slow_rules = tmp_path / "slow.rules.yml"
    slow_rules.write_text((ROOT / "compose/prometheus/llmops.rules.yml").read_text().replace("for: 30s", "for: 45s"))
    (tmp_path / "slow.test.yml").write_text(text.replace(str(ROOT / "compose/prometheus/llmops.rules.yml"), str(slow_rules)))
    p = promtool("test", "rules", str(tmp_path / "slow.test.yml"))
    assert p.returncode != 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_prometheus
def test_a_real_prometheus_sees_the_failover_and_the_failback(standins: Stack, tmp_path: Path) -> None:
    """The e2e test's questions (tests/e2e/test_watch_e2e.py), asked of Prometheus's own API,
    with stand-ins for the Docker stack: the primary's stand-in stops for 6 s, then restarts."""
    watch_port, prom_port = _free_port(), _free_port()
    w = subprocess.Popen([sys.executable, "-m", "llmops.cli", "watch", "--interval", "0.5",
                          "--listen", f"127.0.0.1:{watch_port}", *standins.target_args()],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=env(LITELLM_MASTER_KEY=Stack.KEY))
    prom = None
    try:
        prom = Prometheus(PROMETHEUS or "prometheus", tmp_path, prom_port, [f"127.0.0.1:{watch_port}"],
                          fast_rules(tmp_path / "rules.yml"))
        up = 'llmops_service_up{service="inference-chat"}'
        prom.wait_for(f"count_over_time({up}[10s]) >= 3", 20, "three scrapes before the fault")
        t0 = time.time()
        standins.chat.stop()
        prom.wait_for('ALERTS{alertname="LlmopsGatewayOnSecondary",alertstate="firing"}', 15, "the alert firing")
        prom.wait_for("llmops_gateway_on_secondary == 1", 5)
        standins.chat.start()
        prom.wait_for("llmops_failbacks_total == 1", 15, "the failback")
        time.sleep(2)
        t1 = time.time()
        start = t0 - 5
        assert_down_and_back(prom, up, start, t1)
        firing = prom.range_any('ALERTS{alertname="LlmopsModelServerDown",alertstate="firing"}', start, t1)
        assert firing and firing[0]["metric"]["service"] == "inference-chat"
        assert prom.range_values("llmops_failovers_total", start, t1)[-1] == 1
        assert Stack.KEY not in (tmp_path / "prometheus.log").read_text()
    finally:
        if prom is not None:
            prom.stop()
        w.send_signal(signal.SIGTERM)
        _out, err = w.communicate(timeout=10)
    assert w.returncode == 0 and "Traceback" not in err, err
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
