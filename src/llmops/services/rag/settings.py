"""rag's configuration, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .retry import RetryPolicy


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, str(default)))


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


@dataclass(frozen=True)
class Settings:
    qdrant_url: str = "http://qdrant:6333"
    embedding_url: str = "http://embedding:8003"
    embedding_model: str = ""          # sent as `model` when set; llama-server serves one model
    gateway_url: str = "http://api-gateway:4000"
    gateway_key: str = ""
    gateway_model: str = ""             # the alias to generate with (GATEWAY_MODEL); none: no generation
    gateway_timeout_s: float = 10.0
    collection: str = "docs"
    query_deadline_s: float = 3.0
    max_attempts: int = 6
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 1.0
    qdrant_timeout_s: float = 1.0
    embedding_timeout_s: float = 2.0
    health_probe_timeout_s: float = 1.0
    health_interval_s: float = 0.2
    breaker_threshold: int = 2
    breaker_reset_s: float = 5.0
    ingest_deadline_s: float = 30.0
    demo_corpus: bool = True

    @classmethod
    def from_env(cls) -> Settings:
        e = os.environ
        return cls(
            qdrant_url=e.get("QDRANT_URL", cls.qdrant_url).rstrip("/"),
            embedding_url=e.get("EMBEDDING_URL", cls.embedding_url).rstrip("/"),
            embedding_model=e.get("EMBEDDING_MODEL", cls.embedding_model),
            gateway_url=e.get("GATEWAY_URL", cls.gateway_url).rstrip("/"),
            gateway_key=e.get("LITELLM_MASTER_KEY", ""),
            gateway_model=e.get("GATEWAY_MODEL", cls.gateway_model),
            gateway_timeout_s=_env_float("RAG_GATEWAY_TIMEOUT_S", cls.gateway_timeout_s),
            collection=e.get("RAG_COLLECTION", cls.collection),
            query_deadline_s=_env_float("RAG_QUERY_DEADLINE_S", cls.query_deadline_s),
            max_attempts=_env_int("RAG_MAX_ATTEMPTS", cls.max_attempts),
            backoff_initial_s=_env_float("RAG_BACKOFF_INITIAL_S", cls.backoff_initial_s),
            backoff_max_s=_env_float("RAG_BACKOFF_MAX_S", cls.backoff_max_s),
            qdrant_timeout_s=_env_float("RAG_QDRANT_TIMEOUT_S", cls.qdrant_timeout_s),
            embedding_timeout_s=_env_float("RAG_EMBEDDING_TIMEOUT_S", cls.embedding_timeout_s),
            health_probe_timeout_s=_env_float("RAG_HEALTH_PROBE_TIMEOUT_S", cls.health_probe_timeout_s),
            health_interval_s=_env_float("RAG_HEALTH_INTERVAL_S", cls.health_interval_s),
            breaker_threshold=_env_int("RAG_BREAKER_THRESHOLD", cls.breaker_threshold),
            breaker_reset_s=_env_float("RAG_BREAKER_RESET_S", cls.breaker_reset_s),
            ingest_deadline_s=_env_float("RAG_INGEST_DEADLINE_S", cls.ingest_deadline_s),
            demo_corpus=e.get("RAG_DEMO_CORPUS", "1").lower() not in {"0", "false", "no"},
        )

    def retry(self, per_attempt_timeout_s: float, max_attempts: int | None = None) -> RetryPolicy:
        """The configured backoff, with the attempt timeout (and attempt count) of one kind of call."""
        return RetryPolicy(
            max_attempts=self.max_attempts if max_attempts is None else max_attempts,
            per_attempt_timeout_s=per_attempt_timeout_s,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
        )
