"""The client of the embedding server's OpenAI-shaped ``/v1/embeddings`` (llama-server's)."""

from __future__ import annotations

from typing import Any

import httpx

from .errors import DependencyDown, DependencyRejected, describe
from .retry import call_with_deadline
from .settings import Settings


class EmbeddingClient:
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.s = settings
        self.http = http

    async def embed_once(self, texts: list[str], timeout: float) -> list[list[float]]:
        """One `/v1/embeddings` call: vectors in input order."""
        body: dict[str, Any] = {"input": texts}
        if self.s.embedding_model:
            body["model"] = self.s.embedding_model
        try:
            resp = await self.http.post(f"{self.s.embedding_url}/v1/embeddings", json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise DependencyDown(f"embedding unreachable: {describe(exc)}") from exc
        if resp.status_code >= 500:
            raise DependencyDown(f"embedding answered HTTP {resp.status_code}: {resp.text[:200]}")
        if resp.status_code != 200:
            raise DependencyRejected(f"embedding rejected the request (HTTP {resp.status_code}): {resp.text[:300]}")
        try:
            data = sorted(resp.json()["data"], key=lambda d: d["index"])
            vectors = [d["embedding"] for d in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise DependencyRejected(f"embedding returned an unexpected body: {describe(exc)}") from exc
        if len(vectors) != len(texts) or not all(isinstance(v, list) and v for v in vectors):
            raise DependencyRejected("embedding returned the wrong number of vectors")
        return vectors

    async def embed(self, texts: list[str], deadline_at: float, attempts_out: list[int]) -> list[list[float]]:
        """The texts' vectors, retried until ``deadline_at``; ``attempts_out[0]`` counts the attempts."""
        return await call_with_deadline(
            lambda timeout: self.embed_once(texts, timeout),
            self.s.retry(self.s.embedding_timeout_s),
            deadline_at=deadline_at,
            classify=lambda exc: DependencyDown(f"embedding unreachable: {describe(exc)}"),
            attempts_out=attempts_out,
        )
