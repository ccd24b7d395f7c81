"""Primary and secondary among the alias' deployments: who is which model server."""

from __future__ import annotations

from ..stack import Role
from .claims import Claim, Draft
from .compose_view import EMBEDDER, LLAMA
from .gateway import GatewayFacts, Route, dep_name, num_text


def assign_model_roles(d: Draft, g: GatewayFacts) -> None:
    """Primary and secondary among the alias' deployments: the lower `order` first (LiteLLM's rule
    with enable_pre_call_checks).  A --role or a label already there holds its service; the other
    role goes to the best-ordered deployment left, or, with no order, to the one deployment left."""
    claims, routes, route_of, alias, where = d.claims, g.routes, g.route_of, g.alias, g.where
    problems, notes = d.problems, d.notes
    if len(routes) < 2:
        return
    for r in routes:
        c = claims.get(r.service)
        if c is not None and c.role not in Role.MODEL_SERVERS:
            problems.append(f"deployment {dep_name(r.dep)} in {where} sends to {r.service}, which is {c.role} "
                            f"({c.why}): settle it with --role {r.service}={Role.PRIMARY} or {Role.SECONDARY}")
    fixed = {c.role: s for s, c in claims.items() if c.role in Role.MODEL_SERVERS}
    for role, svc in fixed.items():
        if svc not in route_of:
            problems.append(f"{svc} is {role} ({claims[svc].why}) but no deployment of alias {alias} in {where} "
                            f"sends to it (they send to {', '.join(r.service for r in routes)})")
    open_roles = [r for r in Role.MODEL_SERVERS if r not in fixed and r not in d.contested]
    srt = sorted(routes, key=lambda r: float(r.order or 0)) if all(r.order is not None for r in routes) else []
    if srt and srt[0].order != srt[1].order:
        for role, i in ((Role.PRIMARY, 0), (Role.SECONDARY, 1)):
            held = fixed.get(role)
            if held is not None and held in route_of and srt[i].service != held:
                if claims[held].source == "label":
                    problems.append(f"{held} is labelled {role} but the order in {where} makes {srt[i].service} "
                                    f"{role}: settle it with --role SERVICE={role}")
                else:
                    notes.append(f"{claims[held].why} goes against the order in {where}, which makes "
                                 f"{srt[i].service} {role}")
        pool = [r for r in srt if r.service not in claims]
        for role in open_roles:
            if pool:
                _claim_model(d, pool.pop(0), role, "")
        for r in pool:
            notes.append(f"deployment {dep_name(r.dep)} (order {num_text(r.order)}, -> {r.service}) is one more deployment "
                         f"of {alias}: llmops certifies the first two, it is left unlabelled")
        return
    if not open_roles:
        return
    pool = [r for r in routes if r.service not in claims]
    if len(open_roles) == 1 and len(pool) == 1:
        _claim_model(d, pool[0], open_roles[0], f"the other deployment of alias {alias}")
        return
    if srt:
        undecided = f"have the same order {num_text(srt[0].order)}"
    elif all(r.order is None for r in routes):
        undecided = "have no litellm_params.order"
    else:
        undecided = "do not all have a litellm_params.order (" + \
            ", ".join(f"{dep_name(r.dep)}: {num_text(r.order)}" for r in routes) + ")"
    shown = " and ".join(r.label for r in routes)
    problems.append(f"alias {alias}: deployments {shown} {undecided} in {where}, so which is primary is not "
                    f"defined: say which with --role {routes[0].service}={Role.PRIMARY} "
                    "(or set order: 1 and 2 in the LiteLLM config)")


def _claim_model(d: Draft, route: Route, role: str, why: str) -> None:
    """Give an inferred model role to a deployment's service, if it is a llama-server."""
    s = d.svcs[route.service]
    if s.kind != LLAMA:
        what = "runs llama-server --embeddings: an embedding server, not an inference one" if s.kind == EMBEDDER \
            else f"is not a llama.cpp server (image {s.image or 'none'}, command {' '.join(s.argv) or 'none'})"
        d.problems.append(f"deployment {dep_name(route.dep)} sends to {s.name}, which {what}: llmops certifies "
                          f"llama-server backends; if it is one, say so with --role {s.name}={role}")
        return
    d.claims[s.name] = Claim(role, "inferred", "; ".join(p for p in (s.why, why) if p))
