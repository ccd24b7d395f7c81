"""rag: retrieval over Qdrant with bounded retries, a circuit breaker and a fast /health.

Guarantees the llmops checks rely on:

* ``GET /health`` answers at once whatever Qdrant does (stopped, paused, hung): it
  reads the state a background watcher keeps per dependency, and never waits on a
  dependency itself. It always returns HTTP 200 (the body says ``degraded``; the
  container itself is alive). A dependency reads as down when its latest probe failed,
  or when the probe in flight has gone unanswered for ``health_probe_timeout_s``; so
  the reading lags the truth by at most ``health_interval_s + health_probe_timeout_s``
  (the body's ``health_policy.max_lag_s``), and a slow but alive dependency whose
  answer arrives later reads as up again.
* ``POST /query`` retries the vector search with tenacity (exponential backoff with
  jitter), bounded by both an attempt count and a total deadline; each attempt's
  timeout is clipped to what is left of the deadline, so a hung Qdrant cannot hold a
  request past it. Failure is a 503 with ``Retry-After``, never a 500.
* A missing or empty collection is an empty result, not an error.

Run: ``python -m llmops.services.rag``; configuration is read from the environment
(see ``Settings.from_env``).

Layout: ``api`` (the routes and ``main``), ``service`` (startup, ingest and the query flow),
``store`` (Qdrant), ``embedding`` (the embedding server), ``generation`` (the gateway's answer),
``health`` (the dependency watcher), ``breaker``, ``retry``, ``settings``, ``errors``, ``corpus``.
"""

from __future__ import annotations

from .api import create_app, main, validate_documents, validate_query
from .breaker import CircuitBreaker
from .corpus import DEMO_CORPUS
from .errors import ApiError, CollectionMissing, DependencyDown, DependencyRejected
from .health import DependencyWatch, HealthWatcher
from .retry import RetryPolicy, call_with_deadline
from .service import RagService
from .settings import Settings
from .store import ID_NAMESPACE, VectorStore

__all__ = [
    "DEMO_CORPUS",
    "ID_NAMESPACE",
    "ApiError",
    "CircuitBreaker",
    "CollectionMissing",
    "DependencyDown",
    "DependencyRejected",
    "DependencyWatch",
    "HealthWatcher",
    "RagService",
    "RetryPolicy",
    "Settings",
    "VectorStore",
    "call_with_deadline",
    "create_app",
    "main",
    "validate_documents",
    "validate_query",
]
