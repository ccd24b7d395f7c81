"""llmops: bring up a self-hosted dual-LLM stack and prove it survives faults."""

__version__ = "0.1.0"
