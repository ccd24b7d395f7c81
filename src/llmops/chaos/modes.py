"""Every fault mode the chaos experiments know, grouped by what it does to the target.

One place, so that the validators, the fault code, the restore and the Definitions of Done
cannot disagree on which modes exist or which kind each is."""

from __future__ import annotations

from ..errors import UsageError

# Container faults through the engine (chaos/faults.py): both experiments take these.
MODES = ("stop", "kill", "pause")
# Network faults between the gateway and a model server (chaos/netfaults.py): failover only.
NET_MODES = ("partition", "blackhole", "loss")
ALL_MODES = (*MODES, *NET_MODES)
# The network faults done with an iptables rule in the target's namespace (partition is a
# `docker network disconnect`).
IPTABLES_MODES = ("blackhole", "loss")
# The network faults that cut the gateway off the primary wholly (loss lets some packets through).
CUT_OFF_MODES = ("partition", "blackhole")
# Container faults by what the gateway meets.  Refused: the connection fails at once, so failover is
# judged against the reference 1.15 s and the penalty line.  Hung: the primary accepts nothing and
# answers nothing, so each attempt waits out the per-attempt timeout; failover is judged against
# hung_failover_limit_s().  Every container mode must be in one of the two (failover_dod refuses others).
REFUSED_MODES: frozenset[str] = frozenset({"stop", "kill"})
HUNG_MODES: frozenset[str] = frozenset({"pause"})
# The faults that end the process, so the engine records when it exited (State.FinishedAt): that,
# not the call's return, is the moment the target was gone.
ENGINE_RECORD_MODES = ("stop", "kill")


def check_mode(mode: str) -> None:
    """A container fault mode, or exit 2."""
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")


def check_mode_or_net(mode: str) -> None:
    """A container or a network fault mode, or exit 2."""
    if mode not in ALL_MODES:
        raise UsageError(f"unknown mode {mode!r}; valid: {', '.join(ALL_MODES)}")
