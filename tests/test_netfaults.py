"""Unit tests of the network fault modes' pure parts: validation, rule argv, tag matching, ledger
entries, health divergence and the DoD.  One test applies and removes a real rule in a scratch
network namespace (`unshare -n`) when run as root."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from llmops.chaos import netfaults as nf
from llmops.chaos.failover import FailoverOptions
from llmops.chaos.ledger import Entry, Ledger
from llmops.chaos.modes import NET_MODES
from llmops.chaos.net_dod import NetworkEvidence, loss_failure_bound, network_dod
from llmops.chaos.timeline import FailoverAnalysis, InFlight, LatencyStats, Phases, Samples, TeardownWindow
from llmops.errors import EnvironmentProblem, ExitCode, UsageError

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


@pytest.mark.parametrize("pct", [1e-300, 4e-8, 1e-9])
def test_loss_pct_below_iptables_resolution_is_refused_naming_the_value(pct: float) -> None:
    with pytest.raises(UsageError) as ei:
        nf.check_loss_pct("loss", pct)
    msg = str(ei.value)
    assert "below what iptables can express" in msg and f"--loss-pct {pct!r} " in msg
    assert ei.value.exit_code == ExitCode.USAGE and "\n" not in msg


# 0.001 and 0.004 once went out as `--probability 0.0000`: they are 21475 and 85899 steps of 2^-31
@pytest.mark.parametrize("pct", [0.001, 0.004, 1e-7, nf.MIN_LOSS_PCT])
def test_smallest_accepted_loss_pct_reaches_iptables_as_a_nonzero_probability(pct: float) -> None:
    # what the check accepts is what the rule writes: never "--probability 0.0000"
    assert nf.check_loss_pct("loss", pct) == pct
    spec = nf.rule_spec("loss", "10.0.0.2", TAG, pct)
    text = spec[spec.index("--probability") + 1]
    assert round(float(text) * 2 ** 31) >= 1


def test_loss_pct_above_100_is_shown_as_given() -> None:
    with pytest.raises(UsageError, match=r"--loss-pct 100\.0001 out of range"):
        nf.check_loss_pct("loss", 100.0001)
    with pytest.raises(UsageError, match=r"--loss-pct 0 out of range"):   # typer hands 0.0
        nf.check_loss_pct("loss", 0.0)


@pytest.mark.parametrize("mode,pct", [("loss", 0), ("loss", 101), ("pause", 5)])
def test_failover_options_validate_loss_pct(mode: str, pct: float) -> None:
    with pytest.raises(UsageError):
        FailoverOptions(mode=mode, loss_pct=pct).validate()


def test_failover_options_accept_network_modes_and_default_loss() -> None:
    for mode in NET_MODES:
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
    assert spec[spec.index("--probability") + 1] == "0.07500000000"
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
    R, C = nf.Reach.REACHED, nf.Reach.CUT
    samples = [(0.0, True, R), (1.0, True, C), (2.0, True, C), (3.0, False, C), (4.0, True, R)]
    assert nf.divergence_s(samples, 1.0, 4.0) == 2.0        # 1-3 healthy and cut off; 3-4 unhealthy
    assert nf.divergence_s(samples, 1.5, 2.5) == 1.0        # clipped to the window
    assert nf.divergence_s(samples, 0.0, 1.0) == 0.0        # reachable before the fault
    assert nf.divergence_s([(0.0, True, None)], 0.0, 2.0) == 2.0   # not probed: the window counts
    assert nf.divergence_s([], 0.0, 5.0) == 0.0
    # a probe that failed to run saw nothing: it is no divergence
    assert nf.divergence_s([(0.0, True, nf.Reach.PROBE_FAILED)], 0.0, 2.0) == 0.0


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


def _analysis(failed: int, ft: float | None, served: bool = True, shared: int = 0, total: int = 60) -> FailoverAnalysis:
    """The figures the network DoD reads; the others empty."""
    none = LatencyStats(0, 0, None, None, None)
    return FailoverAnalysis(
        failover_time_s=ft, failover_penalty_s=None,
        samples=Samples(secondary_after_fault=20 if served else 0, steady=10, done_before_fault=30 + shared),
        failed_requests=failed, total_requests=total, served_by_secondary=served,
        served_before_fault={"inference-chat": 30, "inference-code": shared}, failback_time_s=1.0,
        secondary_steady_median_s=None, secondary_steady_p95_s=None, secondary_steady_spread_s=None,
        first_failover_request=None, penalty_request=None, teardown_window=TeardownWindow(0.0, 0, 0, None, None),
        in_flight_at_fault=InFlight(0, 0, {}, 0, [], None, None), latency=Phases(none, none, none), served={})


def _probe(before: int = 10, reached_before: int | None = 10, failed_before: int = 0,
           during: int = 20, reached: int | None = 0, failed: int | None = 0) -> NetworkEvidence:
    """A sampler summary: `before`/`during` probes, of which so many connected and so many failed to run."""
    cut = None if reached is None or failed is None else during - reached - failed
    return NetworkEvidence({"samples_before": before, "gateway_reached_before": reached_before, "probe_failed_before": failed_before,
            "samples_during": during, "gateway_reached_during": reached, "gateway_cut_during": cut,
            "probe_failed_during": failed})


def _failing(dod: list) -> list[str]:
    return [c.criterion.split(" (")[0] for c in dod if not c.passed]


def test_network_dod_partition_and_blackhole() -> None:
    ok = network_dod(_analysis(0, 2.3), "blackhole", True, 2.0, None, _probe(), 1)
    assert all(c.passed for c in ok) and any("the primary's timeout 2 s + 0.5 s for the retry" in c.expected for c in ok)
    shared = network_dod(_analysis(0, 2.3, shared=4), "blackhole", True, 2.0, None, _probe(), 1)
    assert [c.criterion for c in shared if not c.passed] == ["primary served all traffic before the fault"]
    unobserved = network_dod(_analysis(0, 2.3), "partition", True, 2.0, None, NetworkEvidence({}), 1)
    assert _failing(unobserved) == ["gateway reached the primary before the fault",
                                    "gateway could not reach the primary during the fault"]
    capped = network_dod(_analysis(0, 12.0), "blackhole", True, 6000.0, None, _probe(), 1)
    assert [c.criterion for c in capped if not c.passed] == ["failover_time_s (blackhole)"]   # 10 s ceiling
    slow = network_dod(_analysis(0, 2.6), "partition", True, 2.0, None, _probe(), 1)
    assert [c.criterion for c in slow if not c.passed] == ["failover_time_s (partition)"]
    leaky = network_dod(_analysis(1, 0.1), "blackhole", True, 2.0, None, _probe(reached=3), 1)
    assert set(_failing(leaky)) == {"failed_requests during the whole run",
                                    "gateway could not reach the primary during the fault"}
    no_timeout = network_dod(_analysis(0, 0.5), "blackhole", True, None, None, _probe(), 1)
    assert not all(c.passed for c in no_timeout)


def _line(dod: list, start: str):
    (line,) = [c for c in dod if c.criterion.startswith(start)]
    return line


def test_dead_probe_fails_the_cut_line_and_is_never_counted_as_not_reached() -> None:
    """Old behaviour: a probe that could not run (nsenter error, timeout) returned "not reached",
    so a dead probe passed "could not reach" with "0 of 8 reached"."""
    dead = network_dod(_analysis(0, 2.3), "blackhole", True, 2.0, None,
                       _probe(before=5, reached_before=0, failed_before=5, during=8, reached=0, failed=8), 1)
    cut = _line(dead, "gateway could not reach the primary during the fault")
    assert not cut.passed and "probe failed (8)" in cut.measured
    assert _line(dead, "gateway reached the primary before the fault").passed is False
    # one failed probe among good cuts is enough: that probe saw nothing
    one = network_dod(_analysis(0, 2.3), "partition", True, 2.0, None, _probe(during=8, reached=0, failed=1), 1)
    cut = _line(one, "gateway could not reach the primary during the fault")
    assert not cut.passed and cut.measured == "0 of 8 reached, probe failed (1)"
    assert _failing(one) == ["gateway could not reach the primary during the fault"]
    # no failure count at all (not probed, or an older summary): not measured
    blind = network_dod(_analysis(0, 2.3), "partition", True, 2.0, None, _probe(failed=None), 1)
    assert _line(blind, "gateway could not reach").measured.startswith("not measured")


def test_probe_that_never_reached_the_primary_before_the_fault_is_not_measured() -> None:
    """Old behaviour: nothing checked the probe before the fault; "0 of 5 before, 0 of 8 during" passed."""
    never = network_dod(_analysis(0, 2.3), "blackhole", True, 2.0, None,
                        _probe(before=5, reached_before=0, during=8, reached=0), 1)
    line = _line(never, "gateway reached the primary before the fault")
    assert not line.passed and line.measured == "not measured (0 of 3 samples)" and line.need == 3
    assert _failing(never) == ["gateway reached the primary before the fault"]
    two = network_dod(_analysis(0, 2.3), "blackhole", True, 2.0, None, _probe(before=5, reached_before=2), 1)
    assert not _line(two, "gateway reached the primary before the fault").passed
    three = network_dod(_analysis(0, 2.3), "blackhole", True, 2.0, None, _probe(before=5, reached_before=3), 1)
    assert _line(three, "gateway reached the primary before the fault").measured == "3 of 5 reached"
    assert all(c.passed for c in three)


def test_probe_exit_codes_are_three_states() -> None:
    assert nf.reach_from_exit(0) is nf.Reach.REACHED
    assert nf.reach_from_exit(nf.CONNECT_FAILED_EXIT) is nf.Reach.CUT
    for code in (1, 2, 126, 127, -9, 255):     # nsenter, a Python error, usage, exec failure, a signal
        assert nf.reach_from_exit(code) is nf.Reach.PROBE_FAILED
    assert f"sys.exit({nf.CONNECT_FAILED_EXIT})" in nf.CONNECT_PROGRAM


def test_probe_programs_are_constant_and_take_every_value_as_argv() -> None:
    argv = nf.connect_argv(123, "172.18.0.5", 8080, 0.5)
    assert argv[:5] == ["nsenter", "-t", "123", "-n", sys.executable]
    assert argv[argv.index("-c") + 1] is nf.CONNECT_PROGRAM and argv[-3:] == ["172.18.0.5", "8080", "0.5"]
    odd_path = "/health');import os;os.system('x')#"
    h = nf.health_argv(9, 8080, odd_path, 0.5)
    assert h[h.index("-c") + 1] is nf.HEALTH_PROGRAM and h[-3:] == ["8080", odd_path, "0.5"]
    for prog in (nf.CONNECT_PROGRAM, nf.HEALTH_PROGRAM):
        assert "172.18" not in prog and "8080" not in prog and "/health" not in prog


def _child(program: str, *args: str) -> int:
    return subprocess.run([sys.executable, "-I", "-S", "-c", program, *args], capture_output=True, timeout=20).returncode


def test_connect_program_exits_by_outcome() -> None:
    """The child program itself (without nsenter): 0 connected, 75 connect failed, else a failure."""
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))          # bound, never listening: the connect is refused
        assert _child(nf.CONNECT_PROGRAM, "127.0.0.1", str(listening.getsockname()[1]), "0.5") == 0
        assert _child(nf.CONNECT_PROGRAM, "127.0.0.1", str(closed.getsockname()[1]), "0.5") == nf.CONNECT_FAILED_EXIT
        assert nf.reach_from_exit(_child(nf.CONNECT_PROGRAM, "127.0.0.1", "not-a-port", "0.5")) is nf.Reach.PROBE_FAILED
        assert nf.reach_from_exit(_child(nf.CONNECT_PROGRAM)) is nf.Reach.PROBE_FAILED   # no argv


def test_gateway_probe_failures_are_not_cuts(monkeypatch: pytest.MonkeyPatch) -> None:
    def raising(exc: BaseException):
        def run(argv: list[str], timeout: float = 10.0):
            raise exc
        return run

    monkeypatch.setattr(nf, "_run", raising(OSError(2, "No such file or directory")))
    reach, why = nf.gateway_probe(1, "10.0.0.2", 80)
    assert reach is nf.Reach.PROBE_FAILED and "nsenter" in why
    monkeypatch.setattr(nf, "_run", raising(subprocess.TimeoutExpired(["nsenter"], 5.5)))
    assert nf.gateway_reaches(1, "10.0.0.2", 80) is nf.Reach.PROBE_FAILED
    for code, want in ((0, nf.Reach.REACHED), (nf.CONNECT_FAILED_EXIT, nf.Reach.CUT), (1, nf.Reach.PROBE_FAILED)):
        monkeypatch.setattr(nf, "_run", lambda argv, timeout=10.0, c=code: subprocess.CompletedProcess(
            argv, c, "", "nsenter: reassociate to namespace 'ns/net' failed: Operation not permitted" if c == 1 else ""))
        assert nf.gateway_probe(1, "10.0.0.2", 80)[0] is want


def test_sampler_summary_counts_each_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nf.os, "geteuid", lambda: 0)
    monkeypatch.setattr(nf.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    R, C, F = nf.Reach.REACHED, nf.Reach.CUT, nf.Reach.PROBE_FAILED
    s = nf.DivergenceSampler("http://x/health", gateway_pid=7, ip="10.0.0.2", port=8080)
    s.samples = [(0.0, True, R), (0.5, True, F), (1.0, True, R), (2.0, True, C), (2.5, True, F), (3.0, True, C)]
    s.ends = [t + 0.1 for t, _, _ in s.samples]
    s.probe_error = "exit 1: nsenter: failed"
    out = s.summary(t_fault=1.9, t_restore=4.0)
    assert (out["samples_before"], out["gateway_reached_before"], out["probe_failed_before"]) == (3, 2, 1)
    assert (out["samples_during"], out["gateway_reached_during"], out["gateway_cut_during"],
            out["probe_failed_during"]) == (3, 0, 2, 1)
    assert out["probe_error"] == "exit 1: nsenter: failed"
    monkeypatch.setattr(nf.os, "geteuid", lambda: 1000)     # not probed: no counts, not zeros
    blind = s.summary(t_fault=1.9, t_restore=4.0)
    assert blind["gateway_reached_before"] is None and blind["probe_failed_during"] is None


def test_network_dod_loss() -> None:
    good = network_dod(_analysis(0, None, served=False), "loss", True, 2.0, 10, NetworkEvidence({"dropped_packets": 12}), 1)
    assert all(c.passed for c in good)
    bad = network_dod(_analysis(2, None), "loss", True, 2.0, 5, NetworkEvidence({"dropped_packets": 12}), 1)
    assert [c.criterion for c in bad if not c.passed] == ["failed_requests at 5 % packet loss"]
    none_dropped = network_dod(_analysis(0, None), "loss", True, 2.0, 5, NetworkEvidence({"dropped_packets": 0}), 1)
    assert not all(c.passed for c in none_dropped)


def test_loss_above_10_pct_is_judged() -> None:
    """Old behaviour: above 10 % no line judged requests; 33 of 80 failed at 50 % and the check passed."""
    dod = network_dod(_analysis(33, None, total=80), "loss", True, 2.0, 50, NetworkEvidence({"dropped_packets": 400}), 1)
    line = _line(dod, "failed_requests at 50 % packet loss")
    assert not line.passed and line.measured == "33 of 80" and line.expected.startswith("<= 0 of 80")
    assert _failing(dod) == ["failed_requests at 50 % packet loss"]
    high_clean = network_dod(_analysis(0, None, total=600), "loss", True, 2.0, 50, NetworkEvidence({"dropped_packets": 900}), 1)
    assert all(c.passed for c in high_clean)


def test_low_loss_within_the_bound_passes() -> None:
    """With no retry every hit primary attempt fails its request, so some failures are expected:
    at 5 % loss, q = 1-0.95^3 = 14.3 %, 600 requests: 85.6 expected + 3 sigma = 111 allowed."""
    within = network_dod(_analysis(90, None, total=600), "loss", True, 2.0, 5, NetworkEvidence({"dropped_packets": 30}), 0)
    line = _line(within, "failed_requests at 5 % packet loss")
    assert line.passed and line.measured == "90 of 600" and "<= 111 of 600" in line.expected
    assert all(c.passed for c in within)
    beyond = network_dod(_analysis(112, None, total=600), "loss", True, 2.0, 5, NetworkEvidence({"dropped_packets": 30}), 0)
    assert _failing(beyond) == ["failed_requests at 5 % packet loss"]
    retried = network_dod(_analysis(0, None, total=600), "loss", True, 2.0, 5, NetworkEvidence({"dropped_packets": 30}), "1")
    assert all(c.passed for c in retried)        # the config's number, however it was written


@pytest.mark.parametrize("retries", [None, "many", -1, 1.5, True])
def test_loss_without_a_retry_count_is_not_measured(retries: object) -> None:
    dod = network_dod(_analysis(0, None, total=600), "loss", True, 2.0, 5, NetworkEvidence({"dropped_packets": 30}), retries)
    line = _line(dod, "failed_requests at 5 % packet loss")
    assert not line.passed and line.measured.startswith("not measured") and "cannot be judged" in line.expected


def test_loss_failure_bound() -> None:
    b = loss_failure_bound
    # one retry, to the lossless secondary: loss explains no failed request at any rate
    assert [b(p, 1, 3, 600, 3.0) for p in (0.05, 0.10, 0.50, 1.0)] == [0, 0, 0, 0]
    # no retry: n*q + 3 sigma, q = 1-(1-p)^k
    assert [b(p, 0, 3, 600, 3.0) for p in (0.05, 0.10, 0.50)] == [111, 195, 549]
    assert b(0.05, 0, 1, 600, 0.0) == 30                     # exactly n*p with one packet and no margin
    assert b(0.0, 0, 3, 600, 3.0) == 0 and b(0.5, 0, 3, 0, 3.0) == 0
    for bad in ((1.5, 1, 3, 10, 3.0), (0.1, -1, 3, 10, 3.0), (0.1, 1, 0, 10, 3.0)):
        with pytest.raises(ValueError):
            b(*bad)


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
