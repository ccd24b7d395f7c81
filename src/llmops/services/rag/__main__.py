"""``python -m llmops.services.rag``: serve rag on $RAG_HOST:$RAG_PORT (the compose files run it so)."""

from .api import main

if __name__ == "__main__":
    main()
