"""Who holds which role, and why: the claims `propose` collects step by step, from the user's
--role flags, from llmops labels already there, and from the one server of a kind."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..stack import ROLE_LABEL, Role
from .compose_view import ServiceView


@dataclass
class Claim:
    role: str
    source: str                    # "explicit" (--role), "label" (already labelled), "inferred",
                                   # "contract" (a running service answered as the role does)
    why: str


@dataclass
class Draft:
    """What `propose` has decided so far, handed from one step to the next: the services, the
    claims, and the lines for the user (a problem blocks, a note does not)."""

    svcs: dict[str, ServiceView]
    claims: dict[str, Claim] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cleared: dict[str, str] = field(default_factory=dict)   # service -> the --role that takes its labelled role away
    contested: set[str] = field(default_factory=set)        # roles that two services' labels claim: settled by --role only

    @property
    def names(self) -> str:
        return ", ".join(self.svcs)

    def holder(self, role: str) -> str | None:
        return next((s for s, c in self.claims.items() if c.role == role), None)

    def free(self, kind: str) -> list[str]:
        return [s.name for s in self.svcs.values() if s.kind == kind and s.name not in self.claims]


def claim_explicit(d: Draft, roles: dict[str, str]) -> None:
    """--role SERVICE=ROLE: an unknown service or role is named with the valid ones."""
    for svc, role in roles.items():
        if svc not in d.svcs:
            d.problems.append(f"--role {svc}={role}: no service {svc} in this project; services: {d.names}")
        elif role not in Role.ALL:
            d.problems.append(f"--role {svc}={role}: unknown role {role}; valid roles: {', '.join(Role.ALL)}")
        else:
            d.claims[svc] = Claim(role, "explicit", f"--role {svc}={role}")
    for role in Role.ALL:
        twice = [n for n, c in d.claims.items() if c.role == role]
        if len(twice) > 1:
            d.problems.append(f"--role gives {role} to {', '.join(twice)}: one service per role")
            for n in twice:
                del d.claims[n]


def claim_labelled(d: Draft) -> None:
    """Labels already there count, unless an explicit --role decided otherwise."""
    explicit_by_role = {c.role: s for s, c in d.claims.items()}
    for role in Role.ALL:
        have = [s.name for s in d.svcs.values() if s.name not in d.claims and s.labels.get(ROLE_LABEL) == role]
        if role in explicit_by_role:
            for n in have:
                d.cleared[n] = f"--role {explicit_by_role[role]}={role}"
        elif len(have) > 1:
            d.problems.append(f"services {', '.join(have)} all carry {ROLE_LABEL}={role}: "
                              f"say which with --role SERVICE={role}")
            d.contested.add(role)
        elif have:
            d.claims[have[0]] = Claim(role, "label", f"label {ROLE_LABEL}={role} already set")


def claim_one_of_kind(d: Draft, kind: str, role: str, server: str, what: str) -> bool:
    """Give a role nobody holds (and no labels contest) to the one free service that runs `kind`
    (`server` names the kind, `what` the role, in the problem line when several do).  True when
    the role was open and no free service runs `kind`: whether that is a problem is the caller's."""
    if d.holder(role) is not None or role in d.contested:
        return False
    cands = d.free(kind)
    if len(cands) == 1:
        d.claims[cands[0]] = Claim(role, "inferred", d.svcs[cands[0]].why)
    elif cands:
        d.problems.append(f"{len(cands)} {server} services ({', '.join(cands)}): say which is {what} "
                          f"with --role SERVICE={role}")
    return not cands
