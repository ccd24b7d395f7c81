"""Network faults between the gateway and a model server: partition, black hole, packet loss.

The kernel here has no `netem`, and there is no registry to pull a helper image from (Pumba,
Chaos Mesh), so the faults use what every Docker host has:
- `partition`: `docker network disconnect` of the primary from the network it shares with the
  gateway; undone by reconnecting it with the same aliases (recorded in the ledger first);
- `blackhole`: an iptables DROP of the gateway's packets, inserted in the primary's network
  namespace entered from the host (`nsenter -t <pid> -n`), so the server keeps running;
- `loss`: the same rule with `-m statistic --mode random --probability P`.

Every rule carries a comment tag naming the run, and is removed by that tag (never by position),
so `llmops chaos restore` can find it after a SIGKILL and a second restore finds nothing to do.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..errors import EnvironmentProblem, RestoreFailed, UsageError
from .modes import IPTABLES_MODES
TAG_PREFIX = "llmops:"
CHAIN = "INPUT"
DEFAULT_LOSS_PCT = 5.0
# iptables' statistic match keeps its probability as a 32-bit count of 1/2**31 steps and prints it
# with 11 decimals (`--probability 0.04999999981`); we write it with as many, so what is checked
# here is what the kernel gets.  Below one step the rule drops nothing at all.
PROBABILITY_STEPS = 2 ** 31
MIN_LOSS_PCT = 100 / PROBABILITY_STEPS


def probability_text(loss_pct: float) -> str:
    """`--probability` for iptables' statistic match: percent as a fraction, 11 decimals as it prints."""
    return f"{loss_pct / 100:.11f}"


# ---- pure parts (unit-tested) -------------------------------------------------------------------

def _as_given(v: float) -> str:
    """A float as the user typed it, near enough: 0 not 0.0, 100.0001 not 100 (as :g gave)."""
    r = repr(v)
    return r[:-2] if r.endswith(".0") else r


def check_loss_pct(mode: str, loss_pct: float | None) -> float | None:
    """`--loss-pct` belongs to `--mode loss` alone; the loss mode gets a default."""
    if loss_pct is not None and mode != "loss":
        raise UsageError(f"--loss-pct applies to --mode loss only, not --mode {mode}")
    if mode != "loss":
        return None
    if loss_pct is None:
        return DEFAULT_LOSS_PCT
    if not (0 < loss_pct <= 100):
        raise UsageError(f"--loss-pct {_as_given(loss_pct)} out of range; allowed more than 0, at most 100 (percent of packets)")
    if float(probability_text(loss_pct)) * PROBABILITY_STEPS < 1:
        raise UsageError(f"--loss-pct {_as_given(loss_pct)} is below what iptables can express: its statistic match "
                         f"drops in steps of 1 in 2^31 packets, so the smallest is {MIN_LOSS_PCT:.2g} %")
    return loss_pct


def make_tag(project: str, run_id: str, pid: int) -> str:
    """The comment every rule of one run carries: project, run folder and llmops pid."""
    raw = f"{TAG_PREFIX}{project}:{run_id}:{pid}"
    safe = "".join(ch if ch.isalnum() or ch in "._:-" else "-" for ch in raw)
    return safe[:250]          # iptables comments stop at 256 characters


def rule_spec(mode: str, source_ip: str, tag: str, loss_pct: float | None = None) -> list[str]:
    """The rule's match and target (after `-I INPUT`): drop packets from `source_ip`."""
    if mode not in IPTABLES_MODES:
        raise UsageError(f"mode {mode} uses no iptables rule")
    spec = ["-s", f"{source_ip}/32"]
    if mode == "loss":
        if loss_pct is None:
            raise UsageError("--mode loss needs --loss-pct")
        spec += ["-m", "statistic", "--mode", "random", "--probability", probability_text(loss_pct)]
    return spec + ["-m", "comment", "--comment", tag, "-j", "DROP"]


def nsenter_argv(pid: int, *argv: str) -> list[str]:
    """Run `argv` in the network namespace of process `pid` (nothing else of it is entered)."""
    return ["nsenter", "-t", str(pid), "-n", *argv]


def insert_argv(pid: int, spec: list[str]) -> list[str]:
    return nsenter_argv(pid, "iptables", "-w", "5", "-I", CHAIN, *spec)


def list_argv(pid: int) -> list[str]:
    return nsenter_argv(pid, "iptables", "-w", "5", "-S", CHAIN)


def rules_tagged(listing: str, tag_or_prefix: str, prefix: bool = False) -> list[list[str]]:
    """The `iptables -S` lines whose comment is the tag (or starts with it), as argv after `-A`."""
    out = []
    for line in listing.splitlines():
        words = shlex.split(line)
        if len(words) < 2 or words[0] != "-A" or "--comment" not in words:
            continue
        comment = words[words.index("--comment") + 1]
        if comment == tag_or_prefix or (prefix and comment.startswith(tag_or_prefix)):
            out.append(words[1:])
    return out


def counters(listing: str, tag: str) -> int | None:
    """Packets dropped by the rules carrying `tag`, from `iptables -v -S` (`-c PACKETS BYTES`)."""
    total, seen = 0, False
    for words in rules_tagged(listing, tag):
        if "-c" in words:
            seen = True
            total += int(words[words.index("-c") + 1])
    return total if seen else None


def delete_argv(pid: int, rule: list[str]) -> list[str]:
    """`rule` as `rules_tagged` gives it (chain first): delete exactly that rule."""
    return nsenter_argv(pid, "iptables", "-w", "5", "-D", *rule)


def aliases_to_restore(aliases: list[str] | None, container_id: str) -> list[str]:
    """Docker adds the short container id as an alias by itself on connect; keep the others."""
    return [a for a in (aliases or []) if a != container_id[:12]]


def shared_network(primary_attrs: dict[str, Any], gateway_attrs: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
    """The network both containers are on: its name, the primary's endpoint there, the gateway's IP."""
    p = (primary_attrs.get("NetworkSettings") or {}).get("Networks") or {}
    g = (gateway_attrs.get("NetworkSettings") or {}).get("Networks") or {}
    for name in sorted(p):
        if name in g and g[name].get("IPAddress") and p[name].get("IPAddress"):
            return name, p[name], g[name]["IPAddress"]
    raise EnvironmentProblem("the gateway and the primary share no network with IPv4 addresses: "
                             "cannot aim a network fault between them")


class Reach(str, Enum):
    """What one probe from the gateway's namespace found."""

    REACHED = "reached"
    CUT = "cut"                        # the connect failed: refused, unreachable or timed out
    PROBE_FAILED = "probe failed"      # the probe itself did not run: it says nothing about the network


# The probe's child exits with this only when its connect raised OSError, so a cut is told apart
# from a probe that never ran: nsenter's own failures exit 1 (126/127 when it cannot exec), an
# uncaught Python exception 1, the interpreter's usage error 2.  75 is sysexits' EX_TEMPFAIL.
CONNECT_FAILED_EXIT = 75
# The programs run as root in another namespace, so their text is constant: every value (address,
# port, timeout, path) comes in as argv, never pasted into the code.
CONNECT_PROGRAM = ("import socket,sys\n"
                   "ip,port,timeout=sys.argv[1],int(sys.argv[2]),float(sys.argv[3])\n"
                   "try:\n socket.create_connection((ip,port),timeout).close()\n"
                   "except OSError:\n sys.exit(75)\n")
HEALTH_PROGRAM = ("import json,sys,urllib.request\n"
                  "url='http://127.0.0.1:%d%s'%(int(sys.argv[1]),sys.argv[2])\n"
                  "try:\n b=json.load(urllib.request.urlopen(url,timeout=float(sys.argv[3])))\n"
                  "except Exception:\n sys.exit(1)\n"
                  "sys.exit(0 if b.get('status')=='ok' else 1)\n")


def python_argv(pid: int, program: str, *args: str) -> list[str]:
    """Run a constant `program` with the host's interpreter in pid's network namespace; `args`
    reach it as sys.argv[1:] (isolated mode: no site, no environment, no cwd on the path)."""
    return nsenter_argv(pid, sys.executable, "-I", "-S", "-c", program, *args)


def connect_argv(gateway_pid: int, ip: str, port: int, timeout: float) -> list[str]:
    return python_argv(gateway_pid, CONNECT_PROGRAM, ip, str(int(port)), repr(float(timeout)))


def health_argv(primary_pid: int, port: int, path: str, timeout: float) -> list[str]:
    return python_argv(primary_pid, HEALTH_PROGRAM, str(int(port)), path, repr(float(timeout)))


def reach_from_exit(code: int) -> Reach:
    """The probe's exit status read: 0 connected, CONNECT_FAILED_EXIT cut, anything else failed."""
    if code == 0:
        return Reach.REACHED
    return Reach.CUT if code == CONNECT_FAILED_EXIT else Reach.PROBE_FAILED


def divergence_s(samples: list[tuple[float, bool, Reach | None]], t_from: float, t_to: float) -> float:
    """Seconds in [t_from, t_to] during which the primary's own /health said OK from the host while
    the gateway could not reach it.  `samples` are (monotonic t, health ok, what the gateway probe
    found); each sample stands for the time until the next one.  None (not probed) counts as cut
    off, so without the gateway probe the figure is the fault window's healthy time; a failed
    probe does not (a dead probe must not read as a divergence)."""
    total = 0.0
    s = sorted(samples, key=lambda x: x[0])
    for i, (t, ok, reach) in enumerate(s):
        nxt = s[i + 1][0] if i + 1 < len(s) else t_to
        lo, hi = max(t, t_from), min(nxt, t_to)
        if hi > lo and ok and (reach is None or reach == Reach.CUT):
            total += hi - lo
    return round(total, 3)


# ---- the environment ------------------------------------------------------------------------------

def _run(argv: list[str], timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def require_tools(mode: str, client: Any, pid: int | None = None) -> None:
    """Everything a mode needs, checked before the ledger or the stack is touched (exit 4)."""
    if mode == "partition":
        return       # the Docker SDK alone
    if os.geteuid() != 0:
        raise EnvironmentProblem(f"--mode {mode} edits iptables inside a container's network namespace and "
                                 "needs root: rerun llmops as root (sudo), or use --mode partition")
    for tool, pkg in (("nsenter", "util-linux"), ("iptables", "iptables")):
        if not shutil.which(tool):
            raise EnvironmentProblem(f"--mode {mode} needs `{tool}` on the host: apt-get install -y {pkg} "
                                     "(`llmops engine --install` installs it)")
    try:
        sec = " ".join(client.info().get("SecurityOptions") or [])
    except Exception:  # noqa: BLE001 - the probe below gives the definitive answer
        sec = ""
    if "rootless" in sec:
        raise EnvironmentProblem(f"--mode {mode}: the Docker engine runs rootless, so its containers' network "
                                 "namespaces cannot be entered from this host; use --mode partition")
    if pid is not None:
        if pid <= 0:
            raise EnvironmentProblem(f"--mode {mode}: the target has no process (pid {pid}); is it running?")
        try:
            p = _run(list_argv(pid))
        except (OSError, subprocess.TimeoutExpired) as e:
            raise EnvironmentProblem(f"--mode {mode}: cannot run iptables in the target's namespace ({e})") from None
        if p.returncode != 0:
            why = " ".join((p.stderr or p.stdout).split())[:200]
            raise EnvironmentProblem(f"--mode {mode}: cannot enter the target's network namespace from this host "
                                     f"({why}); the engine may run in a VM or rootless: use --mode partition")


def container_pid(client: Any, container_id: str) -> int:
    c = client.containers.get(container_id)
    c.reload()
    st = c.attrs["State"]
    return int(st.get("Pid") or 0) if st.get("Running") else 0


def list_rules(pid: int) -> str:
    p = _run(list_argv(pid))
    if p.returncode != 0:
        raise RestoreFailed(f"iptables -S in pid {pid}'s namespace failed: {' '.join(p.stderr.split())[:200]}")
    return p.stdout


def rule_counters(pid: int, tag: str) -> int | None:
    p = _run(nsenter_argv(pid, "iptables", "-w", "5", "-v", "-S", CHAIN))
    return counters(p.stdout, tag) if p.returncode == 0 else None


def remove_tagged(pid: int, tag: str, prefix: bool = False) -> int:
    """Delete every rule carrying the tag (or a tag starting with it) in pid's namespace; how many."""
    n = 0
    for rule in rules_tagged(list_rules(pid), tag, prefix):
        p = _run(delete_argv(pid, rule))
        if p.returncode != 0 and rule in rules_tagged(list_rules(pid), tag, prefix):
            raise RestoreFailed(f"could not delete iptables rule {' '.join(rule)}: {' '.join(p.stderr.split())[:200]}")
        n += 1
    return n


def insert_rule(pid: int, spec: list[str]) -> None:
    p = _run(insert_argv(pid, spec))
    if p.returncode != 0:
        raise EnvironmentProblem(f"iptables refused the rule ({' '.join((p.stderr or p.stdout).split())[:200]}); "
                                 "nothing was applied")


def gateway_probe(gateway_pid: int, ip: str, port: int, timeout: float = 0.5) -> tuple[Reach, str]:
    """A TCP connect from inside the gateway's network namespace to the primary: what the gateway
    sees, and why the probe failed ('' when it ran).  Only the child's own connect failure is a
    cut; nsenter failing, the interpreter failing or the probe overrunning proves nothing."""
    try:
        p = _run(connect_argv(gateway_pid, ip, port, timeout), timeout=timeout + 5)
    except subprocess.TimeoutExpired:
        return Reach.PROBE_FAILED, f"the probe overran {timeout + 5:g} s"
    except OSError as e:
        return Reach.PROBE_FAILED, f"cannot run nsenter: {e}"
    reach = reach_from_exit(p.returncode)
    why = (f"exit {p.returncode}: {' '.join((p.stderr or p.stdout or '').split())[:160]}"
           if reach is Reach.PROBE_FAILED else "")
    return reach, why


def gateway_reaches(gateway_pid: int, ip: str, port: int, timeout: float = 0.5) -> Reach:
    return gateway_probe(gateway_pid, ip, port, timeout)[0]


def disconnect(client: Any, network: str, container_id: str) -> None:
    client.networks.get(network).disconnect(container_id)


def reconnect(client: Any, network: str, container_id: str, aliases: list[str]) -> str:
    """Attach the container to `network` again with its aliases; a no-op when it is attached."""
    c = client.containers.get(container_id)
    c.reload()
    if network in ((c.attrs.get("NetworkSettings") or {}).get("Networks") or {}):
        return "already connected"
    client.networks.get(network).connect(container_id, aliases=aliases_to_restore(aliases, container_id))
    return f"reconnected to {network}"


def undo_net(client: Any, mode: str, container_id: str, net: dict[str, Any], tag: str) -> str:
    """Undo one network fault from its ledger record; safe to call again after it succeeded."""
    if mode == "partition":
        return reconnect(client, net["network"], container_id, net.get("aliases") or [])
    pid = container_pid(client, container_id)
    if not pid:
        return "container not running: its namespace and rules are gone"
    n = remove_tagged(pid, tag)
    return f"removed {n} iptables rule{'s' if n != 1 else ''} tagged {tag}" if n else "no rule left to remove"


def sweep(client: Any, services: list[Any], project: str, say: Callable[[str], None]) -> list[str]:
    """Rules of this project that no ledger knows about (a ledger deleted by hand): remove them too.
    Quietly does nothing where iptables cannot be used."""
    if os.geteuid() != 0 or not shutil.which("nsenter") or not shutil.which("iptables"):
        return []
    healed = []
    for s in services:
        if s.state != "running":
            continue
        try:
            pid = container_pid(client, s.container_id)
            n = remove_tagged(pid, f"{TAG_PREFIX}{project}:", prefix=True) if pid else 0
        except (RestoreFailed, OSError, subprocess.TimeoutExpired):
            continue
        if n:
            say(f"{s.name}: removed {n} leftover iptables rule(s) of project {project}")
            healed.append(s.name)
    return healed


# ---- health divergence ------------------------------------------------------------------------------

@dataclass
class DivergenceSampler:
    """Samples, side by side, the primary's /health from the host and a TCP connect from the gateway's
    namespace to the primary, so the evidence shows when a healthy probe hid an unreachable server."""

    health_url: str
    gateway_pid: int
    ip: str
    port: int
    primary_pid: int = 0
    health_path: str = "/health"
    interval_s: float = 0.25
    samples: list[tuple[float, bool, Reach | None]] = field(default_factory=list)
    ok_via_netns: int = 0       # samples answered only inside the primary's namespace (published port gone)
    probe_error: str = ""       # why the first failed gateway probe failed: the evidence names it
    ends: list[float] = field(default_factory=list)   # when each sample's probes finished
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _health_ok(self) -> bool:
        """The primary's /health through its published port; when that is gone (a disconnected
        container loses its port mapping with its network), from inside its own namespace."""
        import httpx

        try:
            r = httpx.get(self.health_url, timeout=0.5)
            if r.status_code == 200 and r.json().get("status") == "ok":
                return True
        except (httpx.HTTPError, ValueError):
            pass
        if not (self.probes_gateway and self.primary_pid > 0):
            return False
        try:
            ok = _run(health_argv(self.primary_pid, self.port, self.health_path, 0.5), timeout=5).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False
        self.ok_via_netns += ok
        return ok

    def _loop(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            ok = self._health_ok()
            reach: Reach | None = None
            if self.probes_gateway:
                reach, why = gateway_probe(self.gateway_pid, self.ip, self.port)
                self.probe_error = self.probe_error or why
            self.samples.append((t, ok, reach))
            self.ends.append(time.monotonic())
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - t)))

    @property
    def probes_gateway(self) -> bool:
        # Entering the gateway's namespace needs root and nsenter; partition needs neither otherwise.
        return os.geteuid() == 0 and bool(shutil.which("nsenter")) and self.gateway_pid > 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="divergence-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def summary(self, t_fault: float | None, t_restore: float | None) -> dict[str, Any]:
        if t_fault is None:
            return {"health_divergence_s": None, "samples": len(self.samples)}
        end = t_restore if t_restore is not None else (self.samples[-1][0] if self.samples else t_fault)
        # during: probes wholly inside the fault (one in progress at the restore may have met it);
        # before: probes that finished before the fault (one in progress may have met it)
        during = [s for s, e in zip(self.samples, self.ends) if t_fault <= s[0] and e <= end]
        before = [s for s, e in zip(self.samples, self.ends) if e < t_fault]
        probed = self.probes_gateway

        def count(rows: list[tuple[float, bool, Reach | None]], reach: Reach) -> int | None:
            # None when the gateway was not probed: no count, rather than a 0 that reads as a cut
            return sum(1 for s in rows if s[2] == reach) if probed else None

        return {"health_divergence_s": divergence_s(self.samples, t_fault, end),
                "gateway_probe": ("TCP connect from the gateway's network namespace (nsenter)" if probed
                                  else "not sampled (needs root and nsenter): the fault window is assumed cut off"),
                "outage_s": round(end - t_fault, 3), "samples_during": len(during),
                "health_ok_during": sum(1 for s in during if s[1]),
                "health_ok_via_netns": self.ok_via_netns,
                "gateway_reached_during": count(during, Reach.REACHED),
                "gateway_cut_during": count(during, Reach.CUT),
                "probe_failed_during": count(during, Reach.PROBE_FAILED),
                "samples_before": len(before),
                "gateway_reached_before": count(before, Reach.REACHED),
                "gateway_cut_before": count(before, Reach.CUT),
                "probe_failed_before": count(before, Reach.PROBE_FAILED),
                "probe_error": self.probe_error or None}
