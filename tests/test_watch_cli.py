"""`llmops watch` as a user runs it (the real CLI in a subprocess): bad input gets one line and
exit 2 or 4, options are checked before the port is bound and the port before Docker is asked,
`--once` prints the exposition and exits 0, and SIGINT/SIGTERM stop it cleanly.  The services
are real local HTTP servers given with --target (no Docker here)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from watch_standins import Stack

ROOT = Path(__file__).resolve().parents[1]
NO_ENGINE = "unix:///nonexistent-llmops-watch.sock"


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("LLMOPS_DEBUG", "LITELLM_MASTER_KEY")}
    e["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + e.get("PYTHONPATH", "")
    e.update(extra)
    return e


def llmops(*args: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmops.cli", "--project-dir", str(ROOT), *args],
                          capture_output=True, text=True, env=env(**extra), timeout=timeout)


def one_line(p: subprocess.CompletedProcess[str], code: int) -> str:
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    assert p.returncode == code, f"exit {p.returncode}, expected {code}: {p.stderr}"
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("llmops: error: "), p.stderr
    return lines[0]


@pytest.fixture
def standins():
    s = Stack()
    yield s
    s.close()


@pytest.fixture
def held_port():
    """A port another process listens on (a real holder, found through /proc)."""
    code = ("import socket, sys, time\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "print(s.getsockname()[1], flush=True); time.sleep(120)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline())  # type: ignore[union-attr]
    yield port, p.pid
    p.kill()
    p.wait()


@pytest.mark.parametrize("listen", ["0.0.0.0:9464", "[::]:9464"])
def test_a_public_address_needs_the_flag(listen: str) -> None:
    line = one_line(llmops("watch", "--listen", listen), 2)
    assert "not a loopback address" in line and "--allow-public-listen" in line


@pytest.mark.parametrize("listen, says", [
    (":9464", "expected HOST:PORT"), ("127.0.0.1:70000", "0-65535"),
    ("example.org:9464", "not an IP address"), ("::1:9464", "brackets"),
])
def test_a_malformed_address_is_usage(listen: str, says: str) -> None:
    assert says in one_line(llmops("watch", "--listen", listen), 2)


@pytest.mark.parametrize("interval", ["0.1", "nan", "86400", "five"])
def test_a_bad_interval_is_usage(interval: str) -> None:
    line = one_line(llmops("watch", "--interval", interval), 2)
    assert "--interval" in line or "interval" in line.lower()


def test_a_taken_port_names_its_holder_before_docker_is_asked(held_port: tuple[int, int]) -> None:
    port, pid = held_port
    # no engine: had watch asked Docker first, this would be the engine's line
    line = one_line(llmops("watch", "--listen", f"127.0.0.1:{port}", DOCKER_HOST=NO_ENGINE), 4)
    assert f"port {port} is already taken by " in line and f"(pid {pid})" in line


def test_options_are_checked_before_the_port(held_port: tuple[int, int]) -> None:
    port, _pid = held_port
    line = one_line(llmops("watch", "--listen", f"127.0.0.1:{port}", "--target", "x:nope=http://127.0.0.1:1"), 2)
    assert "unknown role" in line


def test_without_an_engine_watch_says_so_in_one_line() -> None:
    line = one_line(llmops("watch", "--once", DOCKER_HOST=NO_ENGINE), 4)
    assert "Docker engine unreachable" in line


@pytest.mark.parametrize("target, says", [
    ("inference-chat=http://127.0.0.1:8001", "NAME:ROLE=URL"),
    ("a:primary=http://127.0.0.1:8001", "unknown role 'primary'"),
    ("a:rag=http://10.1.2.3:8002", "not a loopback address"),
    ("a:rag=http://127.0.0.1", "http://HOST:PORT"),
])
def test_a_bad_target_is_usage(target: str, says: str) -> None:
    assert says in one_line(llmops("watch", "--once", "--target", target), 2)


def test_two_targets_of_one_name_and_a_gateway_without_alias() -> None:
    t = "a:rag=http://127.0.0.1:1"
    assert "two targets named a" in one_line(llmops("watch", "--once", "--target", t, "--target", t), 2)
    assert "--alias" in one_line(llmops("watch", "--once", "--target", "gw:gateway=http://127.0.0.1:1"), 2)


def test_once_prints_the_exposition_and_exits_0(standins: Stack) -> None:
    p = llmops("watch", "--once", *standins.target_args(), LITELLM_MASTER_KEY=Stack.KEY)
    assert p.returncode == 0, p.stderr
    assert "llmops_gateway_on_secondary 0.0" in p.stdout and "llmops_gpu_available" in p.stdout
    assert 'llmops_vectordb_points{role="vectordb",service="qdrant"} 13.0' in p.stdout
    assert Stack.KEY not in p.stdout + p.stderr
    # the key went to the gateway, and only there
    assert [r[2].get("Authorization") for r in standins.gateway.requests if r[0] == "POST"] == [f"Bearer {Stack.KEY}"]
    assert not any("Authorization" in r[2] for s in standins.all if s is not standins.gateway for r in s.requests)


def _start(standins: Stack, *extra: str) -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen([sys.executable, "-m", "llmops.cli", "watch", "--interval", "0.5", "--listen", "127.0.0.1:0",
                          *standins.target_args(), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env(LITELLM_MASTER_KEY=Stack.KEY))
    line = p.stderr.readline()  # type: ignore[union-attr]
    m = re.search(r"serving (http://127\.0\.0\.1:\d+/metrics)", line)
    assert m, line
    return p, m.group(1)


def _scrape(url: str, until: str, timeout: float = 10) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        body = urllib.request.urlopen(url, timeout=2).read().decode()
        if until in body:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{until!r} never in {url}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_it_cleanly(standins: Stack, sig: signal.Signals) -> None:
    standins.rag.hang = True          # a probe in flight at the signal must not hold the exit
    p, url = _start(standins)
    try:
        body = _scrape(url, "llmops_watch_cycles_total 3.0")
        assert "llmops_service_up" in body and Stack.KEY not in body
        t = time.monotonic()
        p.send_signal(sig)
        out, err = p.communicate(timeout=10)
        took = time.monotonic() - t
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0 and took < 3.0, (p.returncode, took, err)
    assert "Traceback" not in err and f"stopped by {sig.name}" in err
    assert Stack.KEY not in out + err
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as s:        # no listener left: the next watch (SO_REUSEADDR, as http.server) binds it
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_events_are_logged_one_line_each_without_a_terminal(standins: Stack) -> None:
    p, url = _start(standins)
    try:
        _scrape(url, "llmops_watch_cycles_total 2.0")
        standins.chat.stop()
        _scrape(url, "llmops_failovers_total 1.0")
        standins.chat.start()
        _scrape(url, "llmops_failbacks_total 1.0")
        p.send_signal(signal.SIGTERM)
        _out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    lines = err.splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ llmops watch: "
    assert any(re.match(stamp + "inference-chat down: ", x) for x in lines), err
    assert any(re.match(stamp + "gateway failover: served by inference-code$", x) for x in lines), err
    assert any(re.match(stamp + "gateway failback: served by inference-chat$", x) for x in lines), err


def test_watch_help_imports_nothing_heavy() -> None:
    code = ("import sys, json\nfrom llmops import cli\nsys.argv = ['llmops', 'watch', '--help']\n"
            "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
            "heavy = ('docker', 'httpx', 'pynvml', 'yaml', 'prometheus_client', 'rich.live')\n"
            "print(json.dumps(sorted(m for m in sys.modules if m in heavy or m.split('.')[0] in heavy[:5])))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(), timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]"


def test_nothing_under_llmops_watch_imports_rich() -> None:
    import ast

    for f in sorted((ROOT / "src" / "llmops" / "watch").glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "rich" or n.startswith("rich.") for n in names), f.name
