"""Unit tests of the network fault modes' pure parts: validation, rule argv, tag matching, ledger
entries, health divergence and the DoD.  One test applies and removes a real rule in a scratch
network namespace (`unshare -n`) when run as root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from llmops.chaos import netfaults as nf
from llmops.chaos.failover import FailoverOptions, network_dod
from llmops.chaos.ledger import Entry, Ledger
from llmops.errors import EnvironmentProblem, UsageError

TAG = "llmops:llmops-e2e-net:20261126-174612:4242"


@pytest.mark.parametrize("mode,pct,want", [("loss", None, nf.DEFAULT_LOSS_PCT), ("loss", 10, 10), ("loss", 0.5, 0.5),
                                           ("loss", 100, 100), ("blackhole", None, None), ("partition", None, None)])
def test_loss_pct_accepted(mode: str, pct: float | None, want: float | None) -> None:
    assert nf.check_loss_pct(mode, pct) == want


@pytest.mark.parametrize("mode,pct,words", [("loss", 0, "out of range"), ("loss", 101, "out of range"),
                                            ("loss", -3, "out of range"), ("blackhole", 5, "--mode loss only"),
                                            ("partition", 5, "--mode loss only"), ("stop", 1, "--mode loss only")])
def test_loss_pct_refused(mode: str, pct: float, words: str) -> None:
    with pytest.raises(UsageError, match=words) as e:
        nf.check_loss_pct(mode, pct)
    assert e.value.exit_code == 2 and "\n" not in str(e.value)


@pytest.mark.parametrize("mode,pct", [("loss", 0), ("loss", 101), ("pause", 5)])
def test_failover_options_validate_loss_pct(mode: str, pct: float) -> None:
    with pytest.raises(UsageError):
        FailoverOptions(mode=mode, loss_pct=pct).validate()


def test_failover_options_accept_network_modes_and_default_loss() -> None:
    for mode in nf.NET_MODES:
        o = FailoverOptions(mode=mode)
        o.validate()
        assert o.loss_pct == (nf.DEFAULT_LOSS_PCT if mode == "loss" else None)
    with pytest.raises(UsageError, match="partition, blackhole, loss"):
        FailoverOptions(mode="melt").validate()


def test_tag_names_project_run_and_pid_and_is_safe() -> None:
    t = nf.make_tag("llmops-e2e-net", "20261126-174612", 4242)
    assert t == TAG
    odd = nf.make_tag("p q", "run/1\"x", 1)
    assert all(ch.isalnum() or ch in "._:-" for ch in odd) and odd.startswith(nf.TAG_PREFIX)
    assert len(nf.make_tag("p" * 300, "r", 1)) <= 250


def test_rule_spec_blackhole_and_loss() -> None:
    assert nf.rule_spec("blackhole", "172.18.0.5", TAG) == [
        "-s", "172.18.0.5/32", "-m", "comment", "--comment", TAG, "-j", "DROP"]
    spec = nf.rule_spec("loss", "172.18.0.5", TAG, 7.5)
    assert spec[spec.index("--probability") + 1] == "0.0750"
    assert spec[2:6] == ["-m", "statistic", "--mode", "random"] and spec[-2:] == ["-j", "DROP"]
    with pytest.raises(UsageError):
        nf.rule_spec("partition", "1.2.3.4", TAG)


def test_argv_enters_only_the_network_namespace() -> None:
    spec = nf.rule_spec("blackhole", "10.0.0.2", TAG)
    assert nf.insert_argv(123, spec) == ["nsenter", "-t", "123", "-n", "iptables", "-w", "5", "-I", "INPUT", *spec]
    assert nf.list_argv(9) == ["nsenter", "-t", "9", "-n", "iptables", "-w", "5", "-S", "INPUT"]
    assert nf.delete_argv(9, ["INPUT", "-s", "x"]) == ["nsenter", "-t", "9", "-n", "iptables", "-w", "5", "-D",
                                                       "INPUT", "-s", "x"]


# What iptables 1.8.9 (nf_tables) prints for such rules, copied from `iptables -S` / `-v -S` here.
LISTING = f"""-P INPUT ACCEPT
-A INPUT -s 172.18.0.5/32 -m statistic --mode random --probability 0.04999999981 -m comment --comment "{TAG}" -j DROP
-A INPUT -s 172.18.0.5/32 -m comment --comment llmops:llmops-e2e-net:other:1 -j DROP
-A INPUT -s 172.18.0.5/32 -m comment --comment llmops:llmops:x:1 -j DROP
-A INPUT -s 10.0.0.1/32 -j ACCEPT
"""
LISTING_V = f"""-P INPUT ACCEPT -c 10 600
-A INPUT -s 172.18.0.5/32 -m comment --comment "{TAG}" -c 17 1020 -j DROP
-A INPUT -s 10.0.0.1/32 -c 3 180 -j ACCEPT
"""


def test_rules_tagged_matches_the_exact_tag_only() -> None:
    rules = nf.rules_tagged(LISTING, TAG)
    assert len(rules) == 1 and rules[0][0] == "INPUT" and TAG in rules[0] and "-A" not in rules[0]
    assert nf.rules_tagged(LISTING, "llmops:llmops-e2e-net:20261126") == []


def test_rules_tagged_prefix_is_per_project() -> None:
    mine = nf.rules_tagged(LISTING, "llmops:llmops-e2e-net:", prefix=True)
    assert len(mine) == 2
    assert len(nf.rules_tagged(LISTING, "llmops:llmops:", prefix=True)) == 1    # not the e2e project's


def test_counters_reads_dropped_packets() -> None:
    assert nf.counters(LISTING_V, TAG) == 17
    assert nf.counters(LISTING_V, "llmops:none") is None


def test_aliases_drop_the_short_container_id() -> None:
    cid = "0123456789abcdef" * 4
    assert nf.aliases_to_restore(["inference-chat", cid[:12]], cid) == ["inference-chat"]
    assert nf.aliases_to_restore(None, cid) == []


def _net_attrs(nets: dict[str, str]) -> dict:
    return {"NetworkSettings": {"Networks": {n: {"IPAddress": ip, "Aliases": ["svc"]} for n, ip in nets.items()}}}


def test_shared_network() -> None:
    name, ep, gw = nf.shared_network(_net_attrs({"a": "", "p_default": "172.18.0.5"}),
                                     _net_attrs({"p_default": "172.18.0.2", "x": "10.0.0.2"}))
    assert (name, ep["IPAddress"], gw) == ("p_default", "172.18.0.5", "172.18.0.2")
    with pytest.raises(EnvironmentProblem):
        nf.shared_network(_net_attrs({"a": "1.1.1.1"}), _net_attrs({"b": "1.1.1.2"}))


def test_divergence_counts_healthy_and_unreachable_time_inside_the_window() -> None:
    samples = [(0.0, True, True), (1.0, True, False), (2.0, True, False), (3.0, False, False), (4.0, True, True)]
    assert nf.divergence_s(samples, 1.0, 4.0) == 2.0        # 1-3 healthy and cut off; 3-4 unhealthy
    assert nf.divergence_s(samples, 1.5, 2.5) == 1.0        # clipped to the window
    assert nf.divergence_s(samples, 0.0, 1.0) == 0.0        # reachable before the fault
    assert nf.divergence_s([(0.0, True, None)], 0.0, 2.0) == 2.0   # not probed: the window counts
    assert nf.divergence_s([], 0.0, 5.0) == 0.0


def test_ledger_records_network_entries_and_reads_old_ones(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "ledger.json")
    net = {"network": "p_default", "aliases": ["inference-chat", "abc"], "ip": "172.18.0.5",
           "rule": nf.rule_spec("blackhole", "172.18.0.2", TAG)}
    e = led.add("p", "inference-chat", "cid", "blackhole", tag=TAG, net=net)
    (back,) = led.entries()
    assert back == e and back.tag == TAG and back.net["rule"][-1] == "DROP" and back.net["aliases"][0] == "inference-chat"
    # an entry written before network faults existed still loads
    (tmp_path / "old.json").write_text(json.dumps([{"project": "p", "service": "s", "container_id": "c",
                                                    "mode": "stop", "at": 1.0, "pid": 2}]))
    (old,) = Ledger(tmp_path / "old.json").entries()
    assert old == Entry("p", "s", "c", "stop", 1.0, 2) and old.tag == "" and old.net == {}
    led.remove(e)
    assert led.entries() == []


def _analysis(failed: int, ft: float | None, served: bool = True, shared: int = 0) -> dict:
    return {"failover_time_s": ft, "failed_requests": failed, "served_by_secondary": served, "failback_time_s": 1.0,
            "served_before_fault": {"inference-chat": 30, "inference-code": shared}}


def test_network_dod_partition_and_blackhole() -> None:
    ok = network_dod(_analysis(0, 2.3), "blackhole", True, 2.0, None,
                     {"samples_during": 20, "gateway_reached_during": 0})
    assert all(c.passed for c in ok) and any("per-attempt timeout 2 s + 0.5 s, at most 10 s" in c.expected for c in ok)
    shared = network_dod(_analysis(0, 2.3, shared=4), "blackhole", True, 2.0, None,
                         {"samples_during": 20, "gateway_reached_during": 0})
    assert [c.criterion for c in shared if not c.passed] == ["primary served all traffic before the fault"]
    unobserved = network_dod(_analysis(0, 2.3), "partition", True, 2.0, None, {})
    assert [c.criterion.split(" (")[0] for c in unobserved if not c.passed] == [
        "gateway could not reach the primary during the fault"]
    capped = network_dod(_analysis(0, 12.0), "blackhole", True, 6000.0, None,
                         {"samples_during": 20, "gateway_reached_during": 0})
    assert [c.criterion for c in capped if not c.passed] == ["failover_time_s (blackhole)"]   # 10 s ceiling
    slow = network_dod(_analysis(0, 2.6), "partition", True, 2.0, None, {"samples_during": 20, "gateway_reached_during": 0})
    assert [c.criterion for c in slow if not c.passed] == ["failover_time_s (partition)"]
    leaky = network_dod(_analysis(1, 0.1), "blackhole", True, 2.0, None, {"samples_during": 20, "gateway_reached_during": 3})
    assert {c.criterion.split(" (")[0] for c in leaky if not c.passed} == {"failed_requests during the whole run",
                                                                         "gateway could not reach the primary during the fault"}
    no_timeout = network_dod(_analysis(0, 0.5), "blackhole", True, None, None, {})
    assert not all(c.passed for c in no_timeout)


def test_network_dod_loss() -> None:
    good = network_dod(_analysis(0, None, served=False), "loss", True, 2.0, 10, {"dropped_packets": 12})
    assert all(c.passed for c in good)
    bad = network_dod(_analysis(2, None), "loss", True, 2.0, 5, {"dropped_packets": 12})
    assert [c.criterion for c in bad if not c.passed] == ["failed_requests at 5 % packet loss"]
    high = network_dod(_analysis(9, None), "loss", True, 2.0, 30, {"dropped_packets": 40})
    assert all(c.passed for c in high)                       # above 10 % the errors are reported, not judged
    assert not any("failed_requests" in c.criterion for c in high)   # ... and no line pretends to judge them
    none_dropped = network_dod(_analysis(0, None), "loss", True, 2.0, 5, {"dropped_packets": 0})
    assert not all(c.passed for c in none_dropped)


def test_missing_tool_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(nf.os, "geteuid", lambda: 0)
    monkeypatch.setenv("PATH", str(tmp_path))              # neither nsenter nor iptables on it
    with pytest.raises(EnvironmentProblem, match=r"needs `nsenter`.*apt-get install -y util-linux") as e:
        nf.require_tools("blackhole", client=None)
    assert e.value.exit_code == 4
    nf.require_tools("partition", client=None)             # the Docker SDK is all partition needs


def test_not_root_is_an_environment_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nf.os, "geteuid", lambda: 1000)
    with pytest.raises(EnvironmentProblem, match="needs root") as e:
        nf.require_tools("loss", client=None)
    assert e.value.exit_code == 4


class _Rootless:
    def info(self) -> dict:
        return {"SecurityOptions": ["name=seccomp,profile=default", "name=rootless"]}


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("iptables") or not shutil.which("nsenter"),
                    reason="needs root, iptables and nsenter")
def test_rootless_engine_is_refused() -> None:
    with pytest.raises(EnvironmentProblem, match="rootless"):
        nf.require_tools("blackhole", client=_Rootless())


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("iptables") or not shutil.which("unshare")
                    or not shutil.which("nsenter"), reason="needs root, iptables, nsenter and unshare")
def test_rules_round_trip_in_a_scratch_namespace() -> None:
    """The argv this module builds, run for real: insert both rules, find them by tag, count, delete."""
    holder = subprocess.Popen(["unshare", "-n", "sleep", "60"])
    try:
        pid = holder.pid
        for _ in range(50):   # unshare execs sleep once the namespace exists
            if os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                break
            subprocess.run(["sleep", "0.05"])
        nf.insert_rule(pid, nf.rule_spec("blackhole", "10.9.9.9", TAG))
        nf.insert_rule(pid, nf.rule_spec("loss", "10.9.9.9", TAG, 5))
        assert len(nf.rules_tagged(nf.list_rules(pid), TAG)) == 2
        assert nf.rule_counters(pid, TAG) == 0
        assert "10.9.9.9" not in subprocess.run(["iptables", "-S", "INPUT"], capture_output=True, text=True).stdout
        assert nf.remove_tagged(pid, TAG) == 2
        assert nf.rules_tagged(nf.list_rules(pid), TAG) == []
        assert nf.remove_tagged(pid, TAG) == 0                 # idempotent
        with pytest.raises(EnvironmentProblem, match="nothing was applied"):
            nf.insert_rule(pid, ["-m", "nosuchmatch", "-j", "DROP"])
    finally:
        holder.kill()
        holder.wait()
