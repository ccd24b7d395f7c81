"""GPU attribution on the real stack: the host PIDs of both llama-server containers map to their
compose services through /proc/<pid>/cgroup and the engine's labels, with nothing injected.

No GPU is needed: attribution is the same path NVML's PIDs take in `gpu-report`.  This machine
runs llmops inside a container (/.dockerenv exists) with its own dockerd, so the test also shows
that being in a container is no reason to give up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmops.gpu.attribution import Attributor, detect_in_container, docker_label_resolver


def _llama_pids(client: Any, project: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for c in client.containers.list(filters={"label": f"com.docker.compose.project={project}"}):
        role = c.labels.get("llmops.role", "")
        if not role.startswith("inference"):
            continue
        top = c.top(ps_args="-eo pid,comm")
        idx = top["Titles"].index("PID")
        out[c.labels["com.docker.compose.service"]] = [int(p[idx]) for p in top["Processes"]
                                                       if "llama" in " ".join(p)]
    return out


def test_llama_server_pids_map_to_their_services(stack: dict[str, Any]) -> None:
    by_service = _llama_pids(stack["client"], stack["project"])
    assert len(by_service) == 2 and all(by_service.values()), by_service
    pids = [p for ps in by_service.values() for p in ps]
    assert all(Path(f"/proc/{p}").exists() for p in pids), "engine PIDs not in our /proc"
    # nothing known up front: cgroup -> container ID -> compose label, as gpu-report does
    att = Attributor(resolver=docker_label_resolver()).attribute(pids + [1])
    assert att.mode == "host", att.reason
    for service, ps in by_service.items():
        for p in ps:
            info = att.pids[p]
            assert info.service == service and info.via == "resolver", info
            assert info.container_id and len(info.container_id) == 64
    assert att.pids[1].service is None        # not a container process: unattributed
    inside = detect_in_container()
    if inside:                                # this machine: dockerd inside our container
        assert att.reason is None
