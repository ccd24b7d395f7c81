"""``python -m llmops.services.qdrant_standin``: serve on $QDRANT_HOST:$QDRANT_PORT (the image runs it so)."""

from .app import main

if __name__ == "__main__":
    main()
