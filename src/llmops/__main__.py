"""`python -m llmops`: the same CLI as the `llmops` script, for machines where llmops is not
installed (scripts/gpu-check runs it so from a bare checkout)."""

from .cli import main

main()
