"""`llmops adopt`, the pure part: which service of a compose project llmops did not write plays
which role, and the override file that gives those services llmops' labels.

llmops finds services by their labels (stack.py holds the one label map).  A user's own stack has
none, and editing their compose files is not ours to do; so adopt reads what `docker compose
config` resolved for the project, infers each role from what the services *run* (image, argv,
the LiteLLM config the gateway mounts), and writes llmops' own override file with the labels
only.  Whatever it cannot decide alone (two LiteLLM services, no `order` between the two
deployments, an api_base naming no service...) is a problem line naming the choices and the flag
that settles it: the caller turns problems into exit 2, so a guess never becomes a certificate.

Nothing here runs a program or touches Docker: `propose` takes the parsed `compose config` output
and reads one file (the LiteLLM config, through gateway_config.read_config); `write_override`
writes one.

The modules, in the order `propose` uses them: compose_view (one service of `compose config`, the
kind of server it runs), claims (who holds which role and why), gateway (its LiteLLM config, the
alias, deployments -> services), model_roles (primary and secondary), contracts (the running
answers), labels (the values and their checks), proposal (`propose`, `Adoption`) and override
(the file).  Every name callers used before the split is re-exported here.
"""

from __future__ import annotations

from .compose_view import EMBEDDER, LITELLM, LITELLM_DEFAULT_PORT, LLAMA, LLAMA_DEFAULT_PORT, QDRANT, QDRANT_DEFAULT_PORT
from .contracts import contract_role, running_contracts
from .labels import EXPECT, EXPECT_VALUES, HEALTH, LLMOPS_LABELS, check_value
from .override import HEADER, HEADER_FIRST, NOTHING_TO_ADD, OVERRIDE_NAME, is_ours, override_yaml, write_override
from .proposal import Adoption, Proposal, propose

__all__ = [
    "EMBEDDER", "EXPECT", "EXPECT_VALUES", "HEADER", "HEADER_FIRST", "HEALTH", "LITELLM", "LITELLM_DEFAULT_PORT",
    "LLAMA", "LLAMA_DEFAULT_PORT", "LLMOPS_LABELS", "NOTHING_TO_ADD", "OVERRIDE_NAME", "QDRANT",
    "QDRANT_DEFAULT_PORT", "Adoption", "Proposal", "check_value", "contract_role", "running_contracts", "is_ours", "override_yaml",
    "propose", "write_override",
]
