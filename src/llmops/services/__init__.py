"""The stack's own services (rag, embedding, Qdrant stand-in).

They run inside containers as ``python -m llmops.services.<name>`` and are never
imported by the CLI, so each module depends only on what its image installs.
"""
