"""PID -> cgroup -> container -> compose service, on a fake /proc."""

from __future__ import annotations

import secrets
import sys
import types
from pathlib import Path

import pytest

from llmops.gpu.attribution import (
    Attributor, container_id_from_cgroup, detect_in_container, docker_label_resolver,
)

CID = secrets.token_hex(32)
CID2 = secrets.token_hex(32)

FORMS = [
    # cgroup v1, docker cgroupfs driver
    f"12:memory:/docker/{CID}\n11:cpu,cpuacct:/docker/{CID}\n1:name=systemd:/docker/{CID}\n",
    # cgroup v1, kubernetes
    f"4:memory:/kubepods/burstable/pod1234-abcd/{CID}\n",
    # cgroup v2, docker systemd driver
    f"0::/system.slice/docker-{CID}.scope\n",
    # cgroup v2, docker rootless
    f"0::/user.slice/user-1000.slice/user@1000.service/docker-{CID}.scope\n",
    # containerd CRI, systemd and cgroupfs styles
    f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-{CID}.scope\n",
    f"0::/kubepods-besteffort-pod1.slice:cri-containerd:{CID}\n",
    # nerdctl / plain containerd namespace
    f"0::/default/{CID}\n",
    # podman
    f"0::/machine.slice/libpod-{CID}.scope/container\n",
    # hybrid v1 + v2
    f"12:pids:/docker/{CID}\n0::/docker/{CID}\n",
]


@pytest.mark.parametrize("text", FORMS)
def test_container_id_forms(text):
    assert container_id_from_cgroup(text) == CID


@pytest.mark.parametrize("text", [
    "0::/user.slice/user-1000.slice/session-2.scope\n",
    "0::/init.scope\n",
    "12:memory:/user.slice\n1:name=systemd:/system.slice/sshd.service\n",
    f"0::/system.slice/docker-{CID[:63]}.scope\n",        # 63 hex digits is not an ID
    "",
])
def test_host_processes_have_no_container(text):
    assert container_id_from_cgroup(text) is None


def make_proc(tmp: Path, pids: dict[int, tuple[str, str]], init: str = "0::/init.scope\n") -> Path:
    proc = tmp / "proc"
    for pid, (cgroup, comm) in {1: (init, "systemd"), **pids}.items():
        d = proc / str(pid)
        d.mkdir(parents=True)
        (d / "cgroup").write_text(cgroup)
        (d / "comm").write_text(comm + "\n")
    (tmp / "root").mkdir(exist_ok=True)
    return proc


def test_pids_map_to_services_via_known_and_resolver(tmp_path):
    proc = make_proc(tmp_path, {
        100: (f"0::/system.slice/docker-{CID}.scope\n", "llama-server"),
        200: (f"12:memory:/docker/{CID2}\n", "llama-server"),
        300: ("0::/user.slice/session-1.scope\n", "Xorg"),
        400: (f"0::/docker/{'e' * 64}\n", "python"),
    })
    asked = []

    def resolver(cid):
        asked.append(cid)
        return {CID2: "inference-code"}.get(cid)

    att = Attributor(proc_root=proc, root=tmp_path / "root", known={CID[:12]: "inference-chat"},
                     resolver=resolver).attribute([100, 200, 300, 400, 200])
    assert att.mode == "host" and att.reason is None
    p = att.pids
    assert (p[100].service, p[100].via) == ("inference-chat", "services")
    assert (p[200].service, p[200].via) == ("inference-code", "resolver")
    assert p[300].service is None and p[300].container_id is None and p[300].comm == "Xorg"
    assert p[400].service is None and p[400].container_id == "e" * 64
    assert CID not in asked                        # known containers do not hit the resolver
    assert asked.count(CID2) == 1


def test_pids_missing_from_proc_reported_not_guessed(tmp_path):
    proc = make_proc(tmp_path, {100: (f"0::/docker/{CID}\n", "llama-server")})
    att = Attributor(proc_root=proc, root=tmp_path / "root", known={CID: "x"}).attribute([100, 99999])
    assert att.mode == "host"
    assert att.pids[99999].visible is False and att.pids[99999].service is None
    assert any("99999" in n for n in att.notes)

    att = Attributor(proc_root=proc, root=tmp_path / "root").attribute([77777, 88888])
    assert att.mode == "unavailable"
    assert "/proc" in att.reason
    assert all(i.service is None for i in att.pids.values())


def test_inside_a_container_still_attributes_visible_pids(tmp_path):
    """docker-in-docker: llmops runs in a container, yet the engine's containers are in our
    /proc with Docker cgroups.  Attribute them; "unavailable" only when none is visible."""
    proc = make_proc(tmp_path, {100: (f"0::/docker/{CID}\n", "llama-server"),
                                101: (f"0::/docker/{CID2}\n", "llama-server")},
                     init=f"0::/system.slice/docker-{CID2}.scope\n")
    (tmp_path / "root").mkdir(exist_ok=True)
    (tmp_path / "root" / ".dockerenv").write_text("")
    assert "dockerenv" in detect_in_container(proc, tmp_path / "root")
    att = Attributor(proc_root=proc, root=tmp_path / "root",
                     known={CID: "inference-chat", CID2: "inference-code"}).attribute([100, 101])
    assert att.mode == "host" and att.reason is None
    assert (att.pids[100].service, att.pids[101].service) == ("inference-chat", "inference-code")
    # inside a container and none of the PIDs visible: unavailable, and it says both
    att = Attributor(proc_root=proc, root=tmp_path / "root").attribute([555])
    assert att.mode == "unavailable" and "inside a container" in att.reason and "/proc" in att.reason

    # /.dockerenv alone is enough
    proc2 = make_proc(tmp_path / "b", {})
    root = tmp_path / "b" / "root"
    assert detect_in_container(proc2, root) is None
    (root / ".dockerenv").write_text("")
    assert ".dockerenv" in detect_in_container(proc2, root)


def test_docker_label_resolver_lazy_and_tolerant(monkeypatch):
    class Containers:
        def get(self, cid):
            if cid == CID:
                return types.SimpleNamespace(labels={"com.docker.compose.service": "inference-chat"})
            raise LookupError(cid)

    fake_docker = types.SimpleNamespace(from_env=lambda timeout=5: types.SimpleNamespace(containers=Containers()))
    monkeypatch.setitem(sys.modules, "docker", fake_docker)
    r = docker_label_resolver()
    assert r(CID) == "inference-chat"
    assert r(CID2) is None

    def broken(timeout=5):
        raise RuntimeError("Cannot connect to the Docker daemon")

    monkeypatch.setitem(sys.modules, "docker", types.SimpleNamespace(from_env=broken))
    r = docker_label_resolver()
    assert r(CID) is None
    assert "Cannot connect" in r.state["error"]


def test_nested_container_innermost_id_wins():
    # docker-in-docker / a container started by a containerised engine: the process belongs to
    # the inner container, which is the one that engine (and its compose labels) knows
    assert container_id_from_cgroup(f"0::/docker/{CID2}/docker/{CID}\n") == CID
    assert container_id_from_cgroup(f"12:memory:/docker/{CID2}/docker/{CID}\n") == CID
