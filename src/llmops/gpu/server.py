"""One llama-server as gpu/ plans and attributes it, whatever found it: `ModelServer`.

The running stack (`servers_from_stack`, for gpu-report; `plan.specs_from_services`, for
gpu-plan), the compose files (`plan.specs_from_compose`), a command line (`plan.spec_from_args`)
and host processes named by PID (`hostproc.host_services`) all give the same type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..stack import Stack


@dataclass
class ModelServer:
    """A llama-server: what its budget needs (command line, environment, model file) and what
    attributes its GPU memory (its container or its host PID)."""

    name: str                                            # the compose service, or the name given
    argv: list[str] = field(default_factory=list)        # with or without the program name
    env: dict[str, str] = field(default_factory=dict)    # LLAMA_ARG_* change the budget
    model_path: Path | None = None                       # the GGUF file on this machine
    container_id: str | None = None
    pid: int | None = None                               # a host process (no container)
    log_text: str | None = None                          # its log: the engine's own figures

    @property
    def is_llama_server(self) -> bool:
        """Something to budget: a model file or a command line (else: rag, qdrant, ...)."""
        return self.model_path is not None or bool(self.argv)


def servers_from_stack(stack: "Stack", client: Any) -> list[ModelServer]:
    """The stack's model servers as gpu-report budgets them: each one's command line, its model
    file on the host (through its mounts; in the cpu profile the image bakes it in, so the build
    cache's copy stands for it) and its whole log."""
    from ..build import cache_dir
    from ..stack import MODEL_LABEL

    out = []
    for s in stack.model_servers:
        model_in = s.labels.get(MODEL_LABEL)
        host_model = None
        if model_in:
            host_model = s.host_path(model_in)
            cached = cache_dir() / "models" / Path(model_in).name
            if host_model is None and cached.exists():
                host_model = cached
        try:
            # the whole log: the buffer-size lines come at load, before any request lines
            logs = client.containers.get(s.container_id).logs(tail="all").decode(errors="replace")
        except Exception:  # noqa: BLE001 - logs only refine the budget
            logs = None
        out.append(ModelServer(name=s.name, argv=s.argv, env=s.env, model_path=host_model,
                               container_id=s.container_id, log_text=logs))
    return out


__all__ = ["ModelServer", "servers_from_stack"]
