"""What `llmops adopt` proposes: each service's role and the labels that say so (`propose`), and
the result (`Adoption`) as a table, as problems to settle, and as the labels to write."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..gateway_config import public_api_base
from ..stack import ALIAS_LABEL, DIM_LABEL, EXPECT_LABEL, PORT_LABEL, ROLE_LABEL, Role
from .claims import Claim, Draft, claim_explicit, claim_labelled, claim_one_of_kind
from .compose_view import EMBEDDER, LITELLM, LLAMA, QDRANT, ServiceView, port_targets, view_service
from .contracts import claim_contracts
from .gateway import GatewayFacts, dep_name, num_text, read_gateway
from .labels import check_existing, check_value, derive_labels
from .model_roles import assign_model_roles


@dataclass
class Proposal:
    """One service's part: its role, the labels the override adds (`labels`), the llmops labels
    it already has and keeps (`kept`), and one line saying why."""

    service: str
    role: str                      # "" for a service whose stale llmops.role the override clears
    labels: dict[str, str]
    evidence: str
    kept: dict[str, str] = field(default_factory=dict)

    @property
    def final(self) -> dict[str, str]:
        """The llmops labels the service carries once the override is applied."""
        return {**self.kept, **self.labels}


@dataclass
class Adoption:
    proposals: list[Proposal]
    unassigned: list[str]          # services left without a role (sidecars, a database...)
    gateway_config: Path | None    # the LiteLLM config read, on this host
    alias: str | None
    problems: list[str]            # each one line naming the choices and the flag that settles it
    notes: list[str] = field(default_factory=list)   # worth saying, settles nothing, blocks nothing

    @property
    def ok(self) -> bool:
        return not self.problems

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(service, role, labels, evidence) for a table: added labels as k=v, kept ones marked."""
        out = []
        for p in self.proposals:
            shown = [f"{k}={v}" for k, v in p.labels.items()] + [f"{k}={v} (kept)" for k, v in p.kept.items()]
            out.append((p.service, p.role or "(none)", ", ".join(shown), p.evidence))
        return out

    def labels_by_service(self) -> dict[str, dict[str, str]]:
        """service -> its llmops labels once the override is applied (kept and added)."""
        return {p.service: p.final for p in self.proposals}

    def check(self) -> None:
        """ConfigError (exit 2) naming the first problem, when there are any: one line, as every
        llmops error is (the caller lists them all first)."""
        if self.problems:
            more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise ConfigError(f"{self.problems[0]}{more}")


def propose(config: dict[str, Any], *, project_dir: Path, roles: dict[str, str] | None = None,
            alias: str | None = None, gateway_config: Path | None = None,
            contracts: Mapping[str, tuple[str, str]] | None = None) -> Adoption:
    """What each service of the resolved compose `config` is for, and the labels that say so.

    `roles` (--role SERVICE=ROLE) decide over everything inferred and over labels already there;
    `contracts` (service -> (role, evidence)) are the running services whose answers proved them a
    rag or an embedding server (`contract_role`): taken when nothing else holds that role;
    `alias` (--alias) picks the LiteLLM model_name; `gateway_config` (--gateway-config) is the
    LiteLLM config file when the gateway's own mount does not tell it."""
    raw = config.get("services") if isinstance(config, Mapping) else None
    if not isinstance(raw, Mapping) or not raw:
        return Adoption([], [], None, None, ["the compose config has no services"])
    d = Draft({str(n): view_service(str(n), spec) for n, spec in sorted(raw.items())})
    for s in d.svcs.values():
        check_existing(s, d.problems)
    claim_explicit(d, roles or {})
    claim_labelled(d)
    if claim_one_of_kind(d, LITELLM, Role.GATEWAY, "LiteLLM", "the gateway"):
        d.problems.append(f"no LiteLLM gateway: no service's image or command is litellm ({d.names}): "
                          f"name it with --role SERVICE={Role.GATEWAY}")
    g = read_gateway(d, project_dir, gateway_config, alias)
    assign_model_roles(d, g)
    claim_one_of_kind(d, QDRANT, Role.VECTORDB, "Qdrant", "the vector database")
    # rag and embedding are never guessed from images: only named, or proven by what they answer
    claim_contracts(d, contracts or {})
    _note_unclaimed(d, g)
    proposals = _proposals(d, g, alias is not None)
    done = {p.service for p in proposals}
    unassigned = [n for n in d.svcs if n not in done]
    _check_one_per_role(d, proposals, unassigned)
    # one line once: two paths to the same doubt say it once
    return Adoption(proposals, unassigned, g.path, g.alias, list(dict.fromkeys(d.problems)),
                    list(dict.fromkeys(d.notes)))


def _note_unclaimed(d: Draft, g: GatewayFacts) -> None:
    """llama-servers left without a role: worth a note, never a guess."""
    for s in d.svcs.values():
        if s.name in d.claims:
            continue
        if s.kind == EMBEDDER and d.holder(Role.EMBEDDING) is None:
            d.notes.append(f"{s.name} runs llama-server --embeddings: to certify it as the embedding server, "
                           f"add --role {s.name}={Role.EMBEDDING}")
        elif s.kind == LLAMA and g.alias and s.name not in g.route_of:
            d.notes.append(f"{s.name} runs llama-server but no deployment of alias {g.alias} sends to it: "
                           "left unlabelled")


def _proposals(d: Draft, g: GatewayFacts, alias_explicit: bool) -> list[Proposal]:
    """One proposal per claim, in role order, then one per service whose stale role label an
    explicit --role for another service clears."""
    proposals = []
    order = {r: i for i, r in enumerate(Role.ALL)}
    for svc, claim in sorted(d.claims.items(), key=lambda kv: (order[kv[1].role], kv[0])):
        s = d.svcs[svc]
        proposals.append(_proposal(d, s, claim, g.alias, alias_explicit, _evidence(s, claim, g)))
    for svc, flag in sorted(d.cleared.items()):
        if svc not in d.claims:
            old = d.svcs[svc].labels[ROLE_LABEL]
            proposals.append(Proposal(svc, "", {ROLE_LABEL: ""},
                                      f"its label {ROLE_LABEL}={old} is cleared: {flag} names another service",
                                      {k: v for k, v in d.svcs[svc].labels.items() if k != ROLE_LABEL}))
    return proposals


def _check_one_per_role(d: Draft, proposals: list[Proposal], unassigned: list[str]) -> None:
    """The invariant the Stack relies on (it takes the *first* service with a role): one per role,
    counted on the labels as they will be, the untouched services' included."""
    final = {p.service: p.final.get(ROLE_LABEL, "") for p in proposals}
    final.update({n: d.svcs[n].labels.get(ROLE_LABEL, "") for n in unassigned})
    for role in Role.ALL:
        holders = sorted(n for n, r in final.items() if r == role)
        if len(holders) > 1 and role not in d.contested:
            d.problems.append(f"{', '.join(holders)} would all carry {ROLE_LABEL}={role}: "
                              f"say which with --role SERVICE={role}")


def _evidence(s: ServiceView, claim: Claim, g: GatewayFacts) -> str:
    """One line: what made the role (the flag, the label, or what the service runs), then the facts
    behind it (the deployment that sends to it, the config and alias the gateway serves)."""
    route, where, alias = g.route_of.get(s.name), g.where, g.alias
    parts = [claim.why]
    if claim.source != "inferred" and s.why:
        parts.append(s.why)
    if route is not None and claim.role in Role.MODEL_SERVERS:
        via = "" if route.how in ("service name", "model_info.id") else f" ({route.how})"
        api = public_api_base(route.dep.litellm_params.api_base)
        dep = f"deployment order {num_text(route.order)}" if route.order is not None else \
            f"deployment {dep_name(route.dep)} (no order)"
        parts.append(f"model_info.id {route.dep.model_info.id} of {dep} in {where}" if route.how == "model_info.id"
                     else f"api_base {api}{via} of {dep} in {where}")
    if claim.role == Role.GATEWAY:
        parts.append(g.how)
        if alias:
            parts.append(f"alias {alias}{f' ({g.alias_how})' if g.alias_how else ''} has {len(g.deps)} deployments")
    return "; ".join(p for p in parts if p)


def _proposal(d: Draft, s: ServiceView, claim: Claim, alias: str | None, alias_explicit: bool,
              evidence: str) -> Proposal:
    """The labels one claimed service gets: what derive_labels says, less what it has already;
    a label of theirs that differs stands, unless an explicit flag said otherwise."""
    problems, notes, cleared = d.problems, d.notes, d.cleared.get(s.name)
    derived, missing = derive_labels(s, claim.role, alias)
    kept = dict(s.labels)
    added: dict[str, str] = {}
    replaced = []
    for label, value, origin in derived:
        try:
            check_value(s.name, label, value)
        except ConfigError as e:
            if label not in kept:       # a bad value is never proposed; one already there stands
                problems.append(f"{e} (from {origin}): not written")
            continue
        old = kept.get(label)
        if old is None:
            added[label] = value
        elif old != value:
            # what an explicit flag said wins over a label already there; anything else is theirs
            # (a role label that an explicit --role for another service cleared is replaced too)
            explicit = claim.source == "explicit" and label in (ROLE_LABEL, EXPECT_LABEL) or \
                alias_explicit and label == ALIAS_LABEL and claim.role == Role.GATEWAY or \
                cleared is not None and label == ROLE_LABEL
            if explicit:
                added[label] = value
                del kept[label]
                why = f" ({cleared} names another service)" if cleared and label == ROLE_LABEL else ""
                replaced.append(f"replaces {label}={old}{why}")
            else:
                notes.append(f"{s.name}: keeps its {label}={old} (adopt would write {value}, from {origin})")
    for m in missing:
        if PORT_LABEL not in kept:
            problems.append(m)
    if replaced:
        evidence = f"{evidence}; {', '.join(replaced)}"
    port_from = next((o for k, _, o in derived if k == PORT_LABEL), "")
    if PORT_LABEL in added and port_from.startswith("its one ports:"):
        evidence = f"{evidence}; container port {added[PORT_LABEL]} from {port_from}"
    port = added.get(PORT_LABEL) or kept.get(PORT_LABEL)
    if port and port not in port_targets(s.spec):
        # probes reach a service through its published port on 127.0.0.1, never the container's IP
        notes.append(f"{s.name}: container port {port} is not published (ports:): llmops cannot probe it "
                     "until it is")
    if claim.role == Role.EMBEDDING and DIM_LABEL not in kept:
        notes.append(f"{s.name}: no {DIM_LABEL} label (adopt cannot know the model's dimension): "
                     "its vectors are checked against the n_embd its model reports")
    return Proposal(s.name, claim.role, added, evidence, kept)
