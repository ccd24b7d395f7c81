"""The fault frame for network faults: every check before the ledger, the ledger before the fault,
all or nothing applied, and the health-divergence sampler running alongside.  Also the choice
between it and the plain container frame for `chaos failover`, and the words for either fault.
Its evidence, Definition of Done and text are chaos/net_dod.py's."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Protocol

from ..context import Context
from ..errors import EnvironmentProblem
from ..evidence import JsonObject
from ..runner import Run
from ..stack import Service
from .common import FaultFrame
from .modes import IPTABLES_MODES, NET_MODES
from .netfaults import (DivergenceSampler, container_pid, disconnect, insert_rule, make_tag, rule_counters,
                        rule_spec, shared_network, undo_net, require_tools)


class FaultOptions(Protocol):
    """What the frame and the fault's words read of `FailoverOptions` (chaos/failover.py)."""

    mode: str
    restore: bool
    loss_pct: float | None


def make_frame(ctx: Context, run: Run, target: Service, gateway: Service, o: FaultOptions) -> FaultFrame:
    """A plain container fault, or a network fault checked (exit 4) before anything is touched."""
    if o.mode not in NET_MODES:
        return FaultFrame(ctx, run, target, o.mode, restore=o.restore, phase="failover")
    frame = NetFaultFrame(ctx, run, target, o.mode, restore=o.restore, phase="failover", gateway=gateway,
                          loss_pct=o.loss_pct)
    frame.prepare()
    return frame


def fault_words(o: FaultOptions, target: str, gateway: str) -> str:
    if o.mode not in NET_MODES:
        return f"docker {o.mode} {target}"
    return describe(o.mode, target, gateway, o.loss_pct)


def describe(mode: str, target: str, gateway: str, loss_pct: float | None = None) -> str:
    if mode == "partition":
        return f"docker network disconnect {target} (from the network it shares with {gateway})"
    if mode == "blackhole":
        return f"iptables DROP of {gateway}'s packets in {target}'s network namespace"
    return f"iptables DROP of {loss_pct:g} % of {gateway}'s packets (random) in {target}'s network namespace"


@dataclass(frozen=True)
class NetTarget:
    """Where the network fault lands, found before it: what undoing it needs that the container
    will not tell afterwards (the network and aliases it is cut from), and the rule for the
    iptables modes."""

    network: str
    aliases: list[str]
    ip: str                         # the primary's address on that network
    gateway_ip: str
    port: int
    rule: list[str] | None = None   # after `iptables -I INPUT`; None for a partition

    def ledger_record(self) -> dict[str, object]:
        """The ledger's `net` (what `chaos restore` and `undo_net` read back)."""
        rec: dict[str, object] = {"network": self.network, "aliases": list(self.aliases), "ip": self.ip,
                                  "gateway_ip": self.gateway_ip, "port": self.port}
        if self.rule is not None:
            rec["rule"] = self.rule
        return rec


@dataclass
class NetFaultFrame(FaultFrame):
    gateway: Service | None = None
    loss_pct: float | None = None
    tag: str = ""
    net: NetTarget | None = None        # found by prepare()
    sampler: DivergenceSampler | None = None
    dropped_packets: int | None = None

    def prepare(self) -> None:
        """Everything the fault needs, found and checked while nothing is broken yet (exit 4 if not)."""
        assert self.gateway is not None
        client = self.ctx.client
        p = client.containers.get(self.service.container_id)
        g = client.containers.get(self.gateway.container_id)
        network, endpoint, gw_ip = shared_network(p.attrs, g.attrs)
        pid = container_pid(client, self.service.container_id)
        require_tools(self.mode, client, pid if self.mode in IPTABLES_MODES else None)
        self.tag = make_tag(self.ctx.project, self.evidence.path.name, os.getpid())
        self.net = NetTarget(network, list(endpoint.get("Aliases") or []), endpoint["IPAddress"], gw_ip,
                             self.service.port, rule_spec(self.mode, gw_ip, self.tag, self.loss_pct)
                             if self.mode in IPTABLES_MODES else None)
        gw_pid = container_pid(client, self.gateway.container_id)
        self.sampler = DivergenceSampler(f"{self.service.url}{self.service.health_path}", gw_pid,
                                         endpoint["IPAddress"], self.service.port, primary_pid=pid,
                                         health_path=self.service.health_path)
        self.sampler.start()

    def inject(self) -> float:
        c = self.ctx.client
        net = self.net
        assert net is not None, "prepare() finds the fault's target first"
        self.entry = self.ledger.add(self.ctx.project, self.service.name, self.service.container_id, self.mode,
                                     tag=self.tag, net=net.ledger_record())
        self.t_fault, wall0 = time.monotonic(), time.time()
        try:
            if self.mode == "partition":
                disconnect(c, net.network, self.service.container_id)
            else:
                insert_rule(container_pid(c, self.service.container_id), net.rule or [])
        except BaseException as e:
            # Nothing half-applied: take back whatever landed; the entry goes only once that worked
            # (if it did not, the frame's restore and `chaos restore` still have it).
            undo_net(c, self.mode, self.service.container_id, net.ledger_record(), self.tag)
            self.ledger.remove(self.entry)
            self.entry = None
            self.t_fault = None
            if isinstance(e, Exception) and not isinstance(e, EnvironmentProblem):
                raise EnvironmentProblem(f"could not apply --mode {self.mode}: {e}; nothing was applied") from None
            raise
        self.mark_done(wall0)   # the rule or the disconnect is in place: the primary is cut off now
        return self.t_fault

    def fault_fields(self) -> JsonObject:
        return {"tag": self.tag, "loss_pct": self.loss_pct}

    def undo(self) -> float:
        if self.mode in IPTABLES_MODES:
            try:   # how many packets the rule dropped: proof the fault was real
                self.dropped_packets = rule_counters(container_pid(self.ctx.client, self.service.container_id),
                                                     self.tag)
            except Exception:  # noqa: BLE001 - evidence only; the restore must go on
                self.dropped_packets = None
        t = super().undo()
        self.finish()
        return t

    def finish(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()

    def summary(self) -> JsonObject:
        """The `details.network_fault` record: the fault, its target and the sampler's figures."""
        s = self.sampler.summary(self.t_fault, self.t_restore) if self.sampler else {}
        n = self.net
        return {"mode": self.mode, "tag": self.tag, "loss_pct": self.loss_pct, "dropped_packets": self.dropped_packets,
                "network": n.network if n else None, "aliases": n.aliases if n else None,
                "primary_ip": n.ip if n else None, "gateway_ip": n.gateway_ip if n else None,
                "rule": n.rule if n else None, **s}
