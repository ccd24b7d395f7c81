"""ports (real sockets, /proc lookup), evidence.RunDir files, and the exit-code fold."""

from __future__ import annotations

import itertools
import json
import os
import socket
from pathlib import Path

import pytest

from llmops.errors import (ConfigError, EnvironmentProblem, ExitCode, LlmopsError, RestoreFailed,
                           UsageError, aggregate_exit)
from llmops.evidence import (CHECK_FILES, CheckResult, Criterion, RunDir, dod_lines, load_checks,
                             read_events)
from llmops.ports import holder, is_free, process_holding

# ---- ports --------------------------------------------------------------------------------------


@pytest.fixture
def listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    yield s, s.getsockname()[1]
    s.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _me() -> str:
    return f"{Path('/proc/self/comm').read_text().strip()} (pid {os.getpid()})"


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_listening_socket_is_not_free_and_holder_is_this_process(listener) -> None:
    s, port = listener
    assert not is_free(port)
    assert process_holding(port) == _me()
    assert holder(port) == _me()
    assert holder(port, client=None) == _me()
    s.close()
    assert is_free(port)
    assert process_holding(port) is None
    assert holder(port) == "unknown"


def test_wildcard_listener_blocks_loopback() -> None:
    with socket.socket() as w:
        w.bind(("0.0.0.0", 0))
        w.listen(1)
        port = w.getsockname()[1]
        assert not is_free(port)
        assert not is_free(port, "0.0.0.0")


def test_free_port_is_free() -> None:
    port = _free_port()
    assert is_free(port)
    assert is_free(port, "0.0.0.0")
    assert process_holding(port) is None


def test_connected_client_socket_is_not_a_holder(listener) -> None:
    # Only LISTEN sockets count: a client connected *to* the port does not hold it.
    s, port = listener
    with socket.create_connection(("127.0.0.1", port)) as c:
        conn, _ = s.accept()
        assert process_holding(c.getsockname()[1]) is None
        conn.close()


class _Containers:
    def __init__(self, names):
        self.names, self.filters = names, None

    def list(self, filters=None):
        self.filters = filters
        return [type("C", (), {"name": n})() for n in self.names]


class _Client:
    def __init__(self, names):
        self.containers = _Containers(names)


def test_holder_prefers_a_publishing_container(listener) -> None:
    _, port = listener
    client = _Client(["llmops_api-gateway_1"])
    assert holder(port, client) == "container llmops_api-gateway_1"
    assert client.containers.filters == {"publish": str(port)}
    assert holder(port, _Client([])) == _me()


# ---- evidence ------------------------------------------------------------------------------------

def _failover() -> CheckResult:
    dod = [Criterion.judge("failed requests during failover", "0", 0, lambda n: n == 0, samples=412),
           Criterion.judge("failover time", "<= 3.0 s", 1.153, lambda v: v <= 3.0, samples=1, unit=" s"),
           Criterion.judge("primary restored", "healthy", "unhealthy", lambda v: v == "healthy", samples=1)]
    return CheckResult("failover", "2026-11-26T06:50:00.123+00:00", 31.4159,
                       {"failover_time_s": 1.153, "failover_penalty_s": 1.02, "failed_requests": 0,
                        "total_requests": 412, "served_by_secondary": 57, "failback_time_s": 5.3,
                        "restored": False},
                       dod, {"fault": "stop", "target": "inference-chat"})


def test_write_check_json_has_design_keys(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "evidence", "20261126-065000")
    r = _failover()
    path = run.write_check(r, "Failover test: stop inference-chat under load")
    assert path == run.path / "04_failover_test.json"
    data = json.loads(path.read_text())
    assert set(data) == {"check", "status", "started_at", "duration_s", "metrics", "dod", "details"}
    assert data["check"] == "failover" and data["status"] == "fail"
    assert data["duration_s"] == 31.416
    assert data["metrics"]["total_requests"] == 412
    assert data["dod"][1] == {"criterion": "failover time", "expected": "<= 3.0 s",
                              "measured": "1.153 s", "pass": True, "samples": 1, "need": 1}
    assert all(set(d) == {"criterion", "expected", "measured", "pass", "samples", "need"} for d in data["dod"])
    assert load_checks(run.path) == {"failover": data}


def test_write_check_txt_has_text_and_dod_lines(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r1")
    run.write_check(_failover(), "Failover test: stop inference-chat under load\n\n")
    txt = (run.path / "04_failover_test.txt").read_text()
    lines = txt.splitlines()
    assert lines[0] == "Failover test: stop inference-chat under load"
    assert "  [PASS] failed requests during failover: expected 0, measured 0" in lines
    assert "  [PASS] failover time: expected <= 3.0 s, measured 1.153 s" in lines
    assert "  [FAIL] primary restored: expected healthy, measured unhealthy" in lines
    assert lines[-1] == "Result: FAIL"
    assert txt.endswith(dod_lines(_failover()) + "\n")


@pytest.mark.parametrize("check", list(CHECK_FILES))
def test_every_check_gets_its_reference_file_name(tmp_path: Path, check: str) -> None:
    run = RunDir.create(tmp_path, "r")
    r = CheckResult(check, "t", 0.0, {}, [], {}, skipped="no GPU")
    p = run.write_check(r, "skipped")
    assert p.name == CHECK_FILES[check] + ".json"
    assert (run.path / f"{CHECK_FILES[check]}.txt").read_text().rstrip().endswith("Result: SKIPPED")


def test_latest_points_at_newest_run(tmp_path: Path) -> None:
    ev = tmp_path / "evidence"
    a = RunDir.create(ev, "20261126-065000")
    assert (ev / "latest").is_symlink()
    assert (ev / "latest").resolve() == a.path.resolve()
    b = RunDir.create(ev, "20261126-065000")  # same second: a new folder, not a reuse
    assert b.path.name == "20261126-065000-2"
    assert os.readlink(ev / "latest") == "20261126-065000-2"   # relative: the folder can be moved
    c = RunDir.create(ev, "20261126-070000")
    assert (ev / "latest").resolve() == c.path.resolve()
    assert sorted(p.name for p in ev.iterdir() if not p.name.startswith(".")) == \
        ["20261126-065000", "20261126-065000-2", "20261126-070000", "latest"]
    # open() joins an existing run (certify's shared folder) without moving `latest`
    RunDir.open(a.path)
    assert (ev / "latest").resolve() == c.path.resolve()


def test_events_share_one_monotonic_clock(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r")
    run.event("probe", service="rag", status=200)
    run.event("fault", t=12.3456789, action="stop", target="qdrant")
    run.close()
    ev = read_events(run.path)
    assert [e["kind"] for e in ev] == ["probe", "fault"]
    assert 0 <= ev[0]["t"] < 5
    assert ev[1]["t"] == 12.3457 and ev[1]["target"] == "qdrant"


def _line(ok: bool = True) -> Criterion:
    return Criterion.judge("a", "1", 1 if ok else 2, lambda v: v == 1, samples=1)


def test_check_status_is_derived_from_lines_and_reasons() -> None:
    def result(**kw) -> CheckResult:
        return CheckResult("status", "t", 0.0, **kw)

    codes = {r.status: r.exit_code() for r in (result(dod=[_line()]), result(dod=[_line(False)]),
                                               result(skipped="no GPU"), result(error="boom"))}
    assert codes == {"pass": 0, "fail": 1, "skipped": 3, "error": 1}
    assert result().status == "fail"                       # no line: nothing measured, never a pass
    assert result(dod=[_line(), _line(False)]).status == "fail"
    # an error whose own code says 0 still exits non-zero (it was exit 0 before)
    assert result(error="boom", details={"exit_code": 0}).exit_code() == 1
    assert result(error="cut", details={"exit_code": 130}).exit_code() == 130


@pytest.mark.parametrize("value, samples, need, text", [
    (None, 5, 1, "not measured (no value from 5 samples)"),
    (float("nan"), 5, 1, "not measured (no value from 5 samples)"),
    (0, 0, 1, "not measured (0 of 1 samples)"),
    (0, 2, 3, "not measured (2 of 3 samples)"),
])
def test_a_line_without_evidence_fails_as_not_measured(value, samples, need, text) -> None:
    """Why 4 of the verdict issue, by construction: too few samples, or a missing/None/NaN value,
    is a failing line that says so; the test is never evaluated on it."""
    def boom(_v):
        raise AssertionError("the test must not run on a missing value")

    c = Criterion.judge("failed_requests", "0", value, boom if value is None else (lambda v: v == 0),
                        samples=samples, need=need)
    assert c.passed is False and c.measured == text
    with pytest.raises(ValueError):       # a hand-made pass on too little evidence is refused
        Criterion("x", "0", "0", True, samples=samples if samples < need else 0, need=max(need, 1))
    with pytest.raises(ValueError):
        Criterion("x", "0", "0", True, samples=1, need=0)


def test_exit_code_enum_has_a_meaning_and_rank_for_every_code() -> None:
    for code in ExitCode:
        assert code.meaning and code.rank >= 1
    assert ExitCode.meaning_of(2).startswith("usage") and ExitCode.meaning_of(4).startswith("environment")
    assert ExitCode.meaning_of(130).startswith("interrupted")
    assert "unknown exit code 7" in ExitCode.meaning_of(7)
    # an unknown code ranks as an error, never below a pass (aggregate_exit([7, 0]) was 0)
    assert aggregate_exit([7, 0]) == 7 and aggregate_exit([0, 7]) == 7
    assert aggregate_exit([7, 2]) == 2


# ---- errors ----------------------------------------------------------------------------------------

ORDER = [5, 4, 2, 1, 3, 0]  # DESIGN: restore-failed beats environment beats usage beats fail beats skip


@pytest.mark.parametrize("codes", [list(p) for n in (1, 2) for p in itertools.permutations(ORDER, n)])
def test_aggregate_exit_precedence(codes: list[int]) -> None:
    expected = min(codes, key=ORDER.index)
    assert aggregate_exit(codes) == expected


def test_aggregate_exit_examples() -> None:
    assert aggregate_exit([]) == 0
    assert aggregate_exit([0, 0, 0]) == 0
    assert aggregate_exit([0, 3, 0]) == 3
    assert aggregate_exit([3, 1, 3]) == 1
    assert aggregate_exit([1, 2]) == 2
    assert aggregate_exit([0, 1, 3, 2, 4, 5, 0]) == 5
    assert aggregate_exit(list(ORDER)) == 5
    assert aggregate_exit([130, 5]) == 130
    assert aggregate_exit([int(ExitCode.SKIPPED), int(ExitCode.OK)]) == ExitCode.SKIPPED


def test_exception_exit_codes() -> None:
    assert UsageError("x").exit_code == 2
    assert ConfigError("x").exit_code == 2 and isinstance(ConfigError("x"), UsageError)
    assert EnvironmentProblem("x").exit_code == 4
    assert RestoreFailed("x").exit_code == 5
    assert LlmopsError("x").exit_code == 1
