"""Network faults between the gateway and the primary, against the real stack: `docker network
disconnect`, iptables DROP and random loss in the primary's namespace, SIGKILL mid-fault and
`chaos restore`, and the errors that must leave nothing applied."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import STACK_PROJECT, cli_env

ROOT = Path(__file__).resolve().parents[2]
LEDGER = ROOT / ".llmops" / "restore-ledger.json"
TAG_PREFIX = f"llmops:{STACK_PROJECT}:"
PRIMARY, GATEWAY = "inference-chat", "api-gateway"

needs_iptables = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("iptables") or not shutil.which("nsenter"),
                                    reason="blackhole and loss need root, iptables and nsenter on the host")


def _container(client: Any, service: str) -> Any:
    c = client.containers.list(all=True, filters={"label": [f"com.docker.compose.project={STACK_PROJECT}",
                                                            f"com.docker.compose.service={service}"]})[0]
    c.reload()
    return c


def _rules(client: Any) -> list[str]:
    """`iptables -S` in the primary's network namespace: the lines carrying this project's tags."""
    pid = _container(client, PRIMARY).attrs["State"]["Pid"]
    out = subprocess.run(["nsenter", "-t", str(pid), "-n", "iptables", "-S"], capture_output=True, text=True,
                         check=True).stdout
    return [x for x in out.splitlines() if TAG_PREFIX in x]


def _networks(client: Any) -> dict[str, Any]:
    return _container(client, PRIMARY).attrs["NetworkSettings"]["Networks"]


def _ledger() -> list[dict[str, Any]]:
    return json.loads(LEDGER.read_text() or "[]") if LEDGER.exists() else []


def _gateway_gets_primary_health(client: Any, ip: str | None = None) -> bool:
    """HTTP GET of the primary's /health from inside the gateway's network namespace (at `ip`, or
    at the primary's current address)."""
    gw, p = _container(client, GATEWAY), _container(client, PRIMARY)
    ip = ip or next(iter(p.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
    code = f"import urllib.request; urllib.request.urlopen('http://{ip}:8080/health', timeout=3).read()"
    return subprocess.run(["nsenter", "-t", str(gw.attrs["State"]["Pid"]), "-n", sys.executable, "-c", code],
                          capture_output=True, timeout=20).returncode == 0


def _check(run_dir: Path) -> dict[str, Any]:
    return json.loads(((run_dir / "latest").resolve() / "04_failover_test.json").read_text())


@pytest.mark.parametrize("mode,extra", [
    ("partition", []),
    pytest.param("blackhole", [], marks=needs_iptables),
    pytest.param("loss", ["--loss-pct", "10"], marks=needs_iptables),
])
def test_network_failover(llmops: Any, healthy_stack: dict[str, Any], tmp_path: Path, mode: str,
                          extra: list[str]) -> None:
    client = healthy_stack["client"]
    nets_before = _networks(client)
    p = llmops("--evidence-dir", str(tmp_path), "chaos", "failover", "--mode", mode, *extra, "--rps", "10",
               "--fault-at", "3", "--outage", "5", timeout=300)
    assert ((tmp_path / "latest") / "04_failover_test.json").exists(), f"exit {p.returncode}: {p.stderr[-2000:]}"
    r = _check(tmp_path)
    m, d = r["metrics"], r["details"]
    nf = d["network_fault"]
    assert m["failed_requests"] == 0, d["timeline"]
    assert m["restored"] is True
    assert nf["tag"].startswith(TAG_PREFIX) and d["mode"] == mode
    if mode in ("partition", "blackhole"):
        assert m["served_by_secondary"] is True
        assert m["failover_time_s"] <= d["per_attempt_timeout_s"] + 0.5
        # the gateway really was cut off, and it could reach the primary before the fault
        assert nf["samples_during"] > 0 and nf["gateway_reached_during"] == 0
        assert nf["gateway_reached_before"] == nf["samples_before"] > 0
    if mode == "blackhole":
        # the server kept running and answered the host's probe all along: the divergence is the outage
        assert nf["health_ok_during"] == nf["samples_during"]
        assert m["health_divergence_s"] >= 0.8 * nf["outage_s"] and nf["dropped_packets"] > 0
    if mode == "loss":
        assert m["loss_pct"] == 10 and m["dropped_packets"] > 0
        assert d["analysis"]["latency"]["during"]["errors"] == 0
    assert p.returncode == (0 if all(c["pass"] for c in r["dod"]) else 1), p.stderr
    txt = ((tmp_path / "latest").resolve() / "04_failover_test.txt").read_text()
    assert "health divergence" in txt and nf["tag"] in txt
    # nothing left behind: no tagged rule, same networks and aliases, empty ledger
    if shutil.which("nsenter") and os.geteuid() == 0:
        assert _rules(client) == []
    after = _networks(client)
    assert set(after) == set(nets_before)
    for n, ep in nets_before.items():
        assert set(ep["Aliases"] or []) - {_container(client, PRIMARY).id[:12]} <= set(after[n]["Aliases"] or [])
    assert not _ledger()


def _fault_visible(client: Any, mode: str) -> bool:
    if mode == "partition":
        return not _networks(client)
    return bool(_rules(client))


@pytest.mark.parametrize("mode,extra", [
    pytest.param("blackhole", [], marks=needs_iptables),
    ("partition", []),
    pytest.param("loss", ["--loss-pct", "20"], marks=needs_iptables),
])
def test_sigkill_mid_network_fault_then_restore(llmops: Any, healthy_stack: dict[str, Any], tmp_path: Path,
                                                mode: str, extra: list[str]) -> None:
    client = healthy_stack["client"]
    proc = subprocess.Popen([sys.executable, "-m", "llmops.cli", "--project-dir", str(ROOT), "--profile", "cpu",
                             "--project-name", STACK_PROJECT, "--evidence-dir", str(tmp_path), "chaos", "failover",
                             "--mode", mode, *extra, "--outage", "30"], env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "stderr.txt").open("w"))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(e["service"] == PRIMARY and e["mode"] == mode for e in _ledger()) and _fault_visible(client, mode):
                break
            assert proc.poll() is None, (f"llmops exited {proc.returncode} before the fault: "
                                         f"{(tmp_path / 'stderr.txt').read_text()[-1500:]}")
            time.sleep(0.1)
        else:
            pytest.fail("the fault was never injected")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    (entry,) = [e for e in _ledger() if e["service"] == PRIMARY]
    assert entry["tag"].startswith(TAG_PREFIX) and entry["mode"] == mode
    if mode == "partition":
        assert entry["net"]["aliases"] and PRIMARY in entry["net"]["aliases"]
    time.sleep(1.0)
    assert _fault_visible(client, mode), "SIGKILL leaves the fault in place: that is what restore is for"
    if mode != "loss":
        assert not _gateway_gets_primary_health(client, entry["net"]["ip"])

    p = llmops("chaos", "restore", timeout=300)
    assert p.returncode == 0, p.stderr
    assert not _fault_visible(client, mode)
    if os.geteuid() == 0 and shutil.which("nsenter"):
        assert _rules(client) == []
        assert _gateway_gets_primary_health(client)
    if mode == "partition":
        assert PRIMARY in next(iter(_networks(client).values()))["Aliases"]
    assert not _ledger()
    again = llmops("chaos", "restore", timeout=300)
    assert again.returncode == 0 and "nothing needed restoring" in again.stderr


@needs_iptables
def test_restore_removes_a_tagged_rule_no_ledger_knows(llmops: Any, healthy_stack: dict[str, Any]) -> None:
    """A ledger deleted by hand: `chaos restore` still finds this project's rules by their tag prefix."""
    client = healthy_stack["client"]
    pid = _container(client, PRIMARY).attrs["State"]["Pid"]
    subprocess.run(["nsenter", "-t", str(pid), "-n", "iptables", "-I", "INPUT", "-s", "192.0.2.1/32", "-m", "comment",
                    "--comment", f"{TAG_PREFIX}orphan:1", "-j", "DROP"], check=True)
    assert len(_rules(client)) == 1
    p = llmops("chaos", "restore", timeout=300)
    assert p.returncode == 0 and "leftover iptables rule" in p.stderr, p.stderr
    assert _rules(client) == []


@needs_iptables
@pytest.mark.parametrize("mode", ["blackhole", "loss"])
def test_missing_tool_is_one_line_exit_4_and_applies_nothing(healthy_stack: dict[str, Any], tmp_path: Path,
                                                             mode: str) -> None:
    client = healthy_stack["client"]
    empty = tmp_path / "bin"
    empty.mkdir()
    p = subprocess.run([sys.executable, "-m", "llmops.cli", "--project-dir", str(ROOT), "--profile", "cpu",
                        "--project-name", STACK_PROJECT, "--evidence-dir", str(tmp_path / "ev"), "chaos", "failover",
                        "--mode", mode], env=cli_env(PATH=str(empty)), capture_output=True, text=True, timeout=180)
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert p.returncode == 4, p.stderr
    assert lines[-1].startswith("llmops: error: --mode") and "apt-get install -y" in lines[-1], p.stderr
    assert "Traceback" not in p.stderr
    assert _rules(client) == [] and not _ledger()


@pytest.mark.parametrize("args,words", [
    (["--mode", "loss", "--loss-pct", "0"], "--loss-pct 0 out of range"),
    (["--mode", "loss", "--loss-pct", "101"], "--loss-pct 101 out of range"),
    (["--mode", "blackhole", "--loss-pct", "5"], "--mode loss only"),
    (["--mode", "partition", "--loss-pct", "5"], "--mode loss only"),
])
def test_network_mode_bad_input(run_llmops: Any, one_line_error: Any, args: list[str], words: str) -> None:
    """Refused before the engine is even asked: one line, exit 2."""
    line = one_line_error(run_llmops("--project-dir", str(ROOT), "--project-name", STACK_PROJECT, "chaos", "failover",
                                     *args), 2)
    assert words in line
