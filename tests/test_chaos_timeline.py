"""The failover timeline analysis (pure) and the restore ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.chaos.ledger import Ledger
from llmops.chaos.loadgen import Request, assert_loopback
from llmops.chaos.timeline import Marks, analyse, per_second, percentile, render_rows
from llmops.errors import ConfigError


def R(t_send: float, latency_s: float, status: int | None, backend: str | None, seq: int = 0) -> Request:
    """The load generator's own record type, so the analysis is tested on what it really gets."""
    return Request(seq, t_send, latency_s, status, backend, backend, None, None,
                   None if status and status < 300 else "error")


P, S = "inference-chat", "inference-code"


def scenario() -> tuple[list[R], Marks]:
    reqs = [R(100 + i * 0.1, 0.05, 200, P, i) for i in range(30)]                    # steady, primary
    reqs.append(R(102.95, 0.12, 200, S, 30))                                          # in flight at the fault
    reqs += [R(103.1 + i * 0.1, 0.06 + (i % 3) * 0.01, 200, S, 31 + i) for i in range(45)]   # outage
    reqs.append(R(105.0, 0.5, 502, None, 90))                                         # one failure
    reqs += [R(108.2 + i * 0.1, 0.05, 200, P, 100 + i) for i in range(10)]            # failback
    return reqs, Marks(t_start=100.0, t_fault=103.0, t_restore=107.0, t_primary_ok=108.0, primary=P, secondary=S)


def test_failover_time_is_fault_to_first_secondary_response() -> None:
    reqs, m = scenario()
    a = analyse(reqs, m)
    assert a["failover_time_s"] == pytest.approx(102.95 + 0.12 - 103.0)
    assert a["first_failover_request"]["seq"] == 30
    assert a["served_by_secondary"] is True


def test_first_failover_request_says_whether_it_was_in_flight_at_the_fault() -> None:
    reqs, m = scenario()
    assert analyse(reqs, m)["first_failover_request"]["in_flight_at_fault"] is True     # sent at 102.95
    late = [r for r in reqs if r.seq != 30]                                               # first is now sent at 103.1
    first = analyse(late, m)["first_failover_request"]
    assert first["seq"] == 31 and first["in_flight_at_fault"] is False


def test_penalty_is_latency_minus_secondary_median() -> None:
    reqs, m = scenario()
    a = analyse(reqs, m)
    steady = sorted(0.06 + (i % 3) * 0.01 for i in range(45))
    median = steady[22]
    assert a["secondary_steady_median_s"] == pytest.approx(median, abs=1e-4)
    assert a["failover_penalty_s"] == pytest.approx(0.12 - median, abs=1e-4)


def test_failed_requests_and_failback() -> None:
    reqs, m = scenario()
    a = analyse(reqs, m)
    assert a["failed_requests"] == 1 and a["total_requests"] == len(reqs)
    assert a["failback_time_s"] == pytest.approx(108.2 + 0.05 - 108.0)
    assert a["latency"]["before"]["requests"] == 31 and a["latency"]["after"]["requests"] == 10
    assert a["latency"]["during"]["errors"] == 1


def test_no_secondary_means_no_failover() -> None:
    reqs = [R(100 + i * 0.1, 0.05, 200 if i < 30 else 502, P if i < 30 else None) for i in range(60)]
    a = analyse(reqs, Marks(100, 103, None, None, P, S))
    assert a["served_by_secondary"] is False and a["failover_time_s"] is None
    assert a["failed_requests"] == 30 and a["failback_time_s"] is None and a["failover_penalty_s"] is None


def test_per_second_rows_mark_events() -> None:
    reqs, m = scenario()
    rows = per_second(reqs, m)
    assert rows[0]["requests"] == 10 and rows[0]["served"] == {P: 10}
    assert "FAULT" in rows[3]["marks"] and "RESTORE" in rows[7]["marks"] and "PRIMARY OK" in rows[8]["marks"]
    assert rows[5]["errors"] == 1
    text = render_rows(rows, P, S)
    assert len(text.splitlines()) == len(rows) + 1 and "FAULT" in text


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile(list(range(1, 101)), 95) == 95


def test_loadgen_refuses_non_loopback() -> None:
    assert_loopback("http://127.0.0.1:8000")
    with pytest.raises(ValueError):
        assert_loopback("http://10.0.0.5:8000")


def test_ledger_add_remove_idempotent(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.json")
    e = led.add("llmops", "inference-chat", "abc", "stop")
    assert [x.service for x in led.entries()] == ["inference-chat"]
    led.add("llmops", "inference-chat", "abc", "kill")          # one entry per service, the newest fault
    assert [x.mode for x in led.entries()] == ["kill"]
    led.remove(e)
    led.remove(e)
    assert led.entries() == []


def test_ledger_unreadable_is_config_error(tmp_path: Path) -> None:
    p = tmp_path / "l.json"
    p.write_text("{not json")
    with pytest.raises(ConfigError):
        Ledger(p).entries()


@pytest.mark.parametrize("tokens", [0, 257])
def test_failover_options_bound_max_tokens(tokens: int) -> None:
    from llmops.chaos.failover import FailoverOptions
    from llmops.errors import UsageError

    with pytest.raises(UsageError, match="--max-tokens"):
        FailoverOptions(max_tokens=tokens).validate()
    FailoverOptions(max_tokens=1).validate()
