"""The suite never touches an operator's `llmops` stack (issue 14, item 5).

An operator's stack on the same engine - its containers and its Qdrant volume - must come through
the suite's stack lifecycle unchanged: the `stack` fixture's `up` (which removes orphans of *its*
project), `healthy_stack`'s `chaos restore`, the fixture's teardown at the end of a session, and
`scripts/test`'s `down --volumes` on the suite's project.

Where no `llmops` project exists, a decoy stands in for one: a sleeping container and a named
volume holding a marker file, both labelled as project `llmops`; the test removes only what it made.
Where a real `llmops` project exists, it is only read (ids, state, volume names), never changed.

Ordering: the lifecycle runs in a pytest session of its own (a subprocess using the suite's
conftest), so its session-scoped teardown has finished before the snapshot is compared, whatever
this outer session has already set up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
OPERATOR_PROJECT = "llmops"
DECOY_IMAGE = "llmops/base-bookworm:latest"
MARKER = "/data/operator-data.txt"

INNER_TEST = '''
def test_lifecycle(healthy_stack):
    """The suite's fixtures, for real: `stack` (up), `healthy_stack` (chaos restore)."""
    label = {"label": "com.docker.compose.project=" + healthy_stack["project"]}
    assert healthy_stack["client"].containers.list(filters=label)
'''


def project_filter(project: str) -> dict[str, str]:
    return {"label": f"com.docker.compose.project={project}"}


def snapshot(client: Any, project: str, volume_reader: Any | None) -> dict[str, Any]:
    """What an operator would miss: containers (id, state, start time), volumes, and the marker's text."""
    containers = {}
    for c in client.containers.list(all=True, filters=project_filter(project)):
        c.reload()
        containers[c.name] = (c.id, c.status, c.attrs["State"].get("StartedAt"))
    volumes = {v.name: v.attrs.get("CreatedAt") for v in client.volumes.list(filters=project_filter(project))}
    return {"containers": containers, "volumes": volumes, "marker": volume_reader() if volume_reader else None}


@pytest.fixture
def operator_stack(docker_engine: Any) -> Iterator[dict[str, Any]]:
    """The operator's `llmops` project as found, or a decoy made for this test (and removed after)."""
    import docker

    client = docker_engine
    existing = (client.containers.list(all=True, filters=project_filter(OPERATOR_PROJECT))
                or client.volumes.list(filters=project_filter(OPERATOR_PROJECT)))
    if existing:  # a real operator stack: read it, never write to it
        yield {"client": client, "decoy": False, "reader": None}
        return
    try:
        client.images.get(DECOY_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"{DECOY_IMAGE} not built (llmops build makes it)")
    tag = uuid.uuid4().hex[:8]
    labels = {"com.docker.compose.project": OPERATOR_PROJECT, "llmops.e2e.decoy": tag}
    volume = client.volumes.create(f"{OPERATOR_PROJECT}_isolation-decoy-{tag}",
                                   labels={**labels, "com.docker.compose.volume": f"isolation-decoy-{tag}"})
    container = None
    try:
        container = client.containers.run(
            DECOY_IMAGE, ["sh", "-c", f"echo operator-data-{tag} > {MARKER} && exec sleep infinity"],
            name=f"{OPERATOR_PROJECT}_isolation-decoy-{tag}_1", detach=True, init=True,
            # the labels compose itself writes, so compose would see it as one of the project's containers
            labels={**labels, "com.docker.compose.service": f"isolation-decoy-{tag}",
                    "com.docker.compose.oneoff": "False", "com.docker.compose.container-number": "1"},
            volumes={volume.name: {"bind": "/data", "mode": "rw"}}, network_mode="none")

        def read_marker() -> str:
            # read through a throw-away container: the decoy itself may be gone if the test failed
            out = client.containers.run(DECOY_IMAGE, ["sh", "-c", f"cat {MARKER} 2>/dev/null || true"],
                                        remove=True, network_mode="none",
                                        volumes={volume.name: {"bind": "/data", "mode": "ro"}})
            return out.decode().strip()

        for _ in range(30):  # the marker is written as the decoy starts
            if read_marker() == f"operator-data-{tag}":
                break
            time.sleep(0.5)
        yield {"client": client, "decoy": True, "reader": read_marker, "tag": tag, "name": container.name}
    finally:
        # only what this fixture made, by id and name
        if container is not None:
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
        try:
            volume.remove(force=True)
        except docker.errors.NotFound:
            pass


def run_lifecycle(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The suite's stack fixtures in a pytest session of their own, so their session teardown runs too."""
    (tmp_path / "test_lifecycle.py").write_text(textwrap.dedent(INNER_TEST))
    env = {k: v for k, v in os.environ.items() if k not in ("LLMOPS_DEBUG", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_lifecycle.py")],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=3600)


@pytest.mark.timeout(3600)  # the inner session may bring a cold stack up and down
def test_operator_stack_untouched_by_suite_lifecycle(operator_stack: dict[str, Any], llmops: Any,
                                                     leftovers: Any, tmp_path: Path) -> None:
    client = operator_stack["client"]
    before = snapshot(client, OPERATOR_PROJECT, operator_stack["reader"])
    if operator_stack["decoy"]:
        assert before["marker"] == f"operator-data-{operator_stack['tag']}"
        assert before["containers"][operator_stack["name"]][1] == "running"
    inner = run_lifecycle(tmp_path)
    assert inner.returncode == 0, inner.stdout[-3000:] + inner.stderr[-3000:]
    assert "1 passed" in inner.stdout, inner.stdout[-2000:]
    assert snapshot(client, OPERATOR_PROJECT, operator_stack["reader"]) == before
    # scripts/test's teardown: `down --volumes` on the suite's project, once nothing of it runs
    # (a kept stack, LLMOPS_E2E_KEEP=1 or another test's, is left alone)
    from conftest import STACK_PROJECT  # the suite's own project name, as the stack fixture used it

    if not client.containers.list(filters=project_filter(STACK_PROJECT)):
        down = llmops("down", "--volumes", timeout=300)
        assert down.returncode == 0, down.stderr
        assert leftovers(STACK_PROJECT) == {"containers": [], "networks": [], "volumes": []}
    assert snapshot(client, OPERATOR_PROJECT, operator_stack["reader"]) == before


def test_the_suites_runs_leave_the_checkouts_evidence_alone(stack: dict[str, Any]) -> None:
    """`./scripts/test` runs after `./scripts/certify`: the checkout's evidence/latest is the
    operator's certified run, and a verify of the suite's own stack once moved it."""
    from conftest import ROOT, SUITE_EVIDENCE, llmops

    latest = ROOT / "evidence" / "latest"
    before = latest.resolve() if latest.is_symlink() else None
    p = llmops("status")
    assert p.returncode == 0, p.stderr[-1000:]
    assert (latest.resolve() if latest.is_symlink() else None) == before
    assert (SUITE_EVIDENCE / "latest" / "01_services_status.json").exists()
