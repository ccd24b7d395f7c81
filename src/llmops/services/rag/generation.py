"""The optional answer: one chat completion through the gateway, over the hits found."""

from __future__ import annotations

from typing import Any

import httpx

from .errors import describe
from .settings import Settings


async def generate_answer(
    http: httpx.AsyncClient, s: Settings, question: str, hits: list[dict[str, Any]]
) -> tuple[str | None, str | None]:
    """The gateway's answer, or None and why not; a failed answer never fails the query."""
    if not s.gateway_model:   # no alias assumed: a user's gateway has its own names
        return None, "no GATEWAY_MODEL set: rag does not know which gateway model to ask"
    context = "\n".join(f"[{i + 1}] {h['text']}" for i, h in enumerate(hits)) or "(no context found)"
    payload = {
        "model": s.gateway_model,
        "messages": [
            {"role": "system", "content": "Answer briefly, using only the numbered context."},
            {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}"},
        ],
        "max_tokens": 128,
        "temperature": 0.2,
    }
    headers = {"Authorization": f"Bearer {s.gateway_key}"} if s.gateway_key else {}
    try:
        resp = await http.post(
            f"{s.gateway_url}/v1/chat/completions",
            json=payload,
            headers=headers,
            timeout=s.gateway_timeout_s,
        )
    except httpx.HTTPError as exc:
        return None, f"gateway unreachable: {describe(exc)}"
    if resp.status_code != 200:
        return None, f"gateway answered HTTP {resp.status_code}: {resp.text[:200]}"
    try:
        return str(resp.json()["choices"][0]["message"]["content"]), None
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return None, f"gateway returned an unexpected body: {describe(exc)}"
