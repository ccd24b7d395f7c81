"""The running-answer evidence: a rag or an embedding server is never guessed from its image, only
named with --role or proven by what the running container answers (`llmops adopt` asks it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..stack import Role, Service
from .claims import Claim, Draft


def contract_role(health_body: Any, embeddings_body: Any) -> str | None:
    """The role a running service's answers prove it plays under llmops' contract: rag when its
    /health reports `qdrant` and `embedding` as booleans (as llmops.services.rag does), embedding
    when its POST /v1/embeddings answers OpenAI's shape with a non-empty vector; else None."""
    if isinstance(health_body, Mapping) and all(isinstance(health_body.get(k), bool) for k in ("qdrant", "embedding")):
        return Role.RAG
    data = embeddings_body.get("data") if isinstance(embeddings_body, Mapping) else None
    if isinstance(data, list) and data and isinstance(data[0], Mapping):
        vec = data[0].get("embedding")
        if isinstance(vec, list) and vec and all(isinstance(x, (int, float)) for x in vec[:8]):
            return Role.EMBEDDING
    return None


def claim_contracts(d: Draft, contracts: Mapping[str, tuple[str, str]]) -> None:
    """`contracts` (service -> (role, evidence), from `contract_role`): taken for a service nothing
    else claims, when nothing holds that role and no labels contest it."""
    for svc, (role, why) in sorted(contracts.items()):
        if svc in d.svcs and svc not in d.claims and role in (Role.RAG, Role.EMBEDDING) \
                and d.holder(role) is None and role not in d.contested:
            d.claims[svc] = Claim(role, "contract", why)


def running_contracts(services: list[Service], named: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """The project's running, unlabelled containers (not named with --role) that answer as a rag
    or an embedding server does (the roles adopt never guesses from an image), with the answer as
    evidence: service -> (role, evidence)."""
    from ..probes import contract_answers

    out: dict[str, tuple[str, str]] = {}
    for svc in services:
        if svc.state != "running" or svc.role or svc.name in named:
            continue
        for url, health, emb in contract_answers(svc):
            role = contract_role(health, emb)
            if role:
                what = "GET /health reports qdrant and embedding" if role == Role.RAG else \
                    "POST /v1/embeddings answered with vectors"
                out[svc.name] = (role, f"running: {url} {what}")
                break
    return out
