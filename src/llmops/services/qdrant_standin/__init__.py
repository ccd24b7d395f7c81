"""qdrant-standin: a stand-in for Qdrant, used only where no real Qdrant image exists.

This is NOT Qdrant. It speaks the small subset of Qdrant's REST API that the llmops
stack uses, with Qdrant's response and error envelopes, and stores data with Qdrant's
own storage engine (``qdrant_edge``: segments plus a write-ahead log), so an upsert
acknowledged with ``wait=true`` survives SIGKILL exactly as it would in Qdrant.

Layout under ``QDRANT_STORAGE``::

    collections/<name>/config.json   the collection's vector params (written atomically)
    collections/<name>/shard/        one EdgeShard

Run: ``python -m llmops.services.qdrant_standin`` (env QDRANT_STORAGE, QDRANT_PORT,
QDRANT_HOST).

Layout: ``app`` (the routes and ``main``), ``store`` (collections on disk), ``wire`` (request
parsing and Qdrant's response shapes), ``errors`` (Qdrant's error envelope).
"""

from __future__ import annotations

from .app import TITLE, VERSION, create_app, main
from .store import Collection, Store

__all__ = ["TITLE", "VERSION", "Collection", "Store", "create_app", "main"]
