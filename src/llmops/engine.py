"""Make sure a Docker engine answers.  Installs and starts one only where that is safe and asked
for (root, Debian/Ubuntu, `--install`); never touches a running engine's configuration."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from .errors import EnvironmentProblem
from .retry import run_with_retries

APT_PACKAGES = ["docker.io", "docker-compose", "debootstrap", "iptables", "util-linux"]


def engine_answers(timeout: float = 5.0) -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=timeout + 25).returncode == 0


def _is_debian_like() -> bool:
    try:
        text = Path("/etc/os-release").read_text().lower()
    except OSError:
        return False
    return "debian" in text or "ubuntu" in text


def fix_hint() -> str:
    if os.geteuid() != 0:
        return "start Docker (`sudo systemctl start docker`), or rerun as root with `llmops engine --install`"
    if not _is_debian_like():
        return "install Docker Engine and Compose for this OS, start it, and rerun"
    return "run `llmops engine --install` (installs docker.io + docker-compose and starts dockerd)"


def _install_missing(packages: list[tuple[str, str]], say: Callable[[str], None]) -> list[str]:
    """apt-get install the (package, binary) pairs whose binary is not on PATH; the ones installed."""
    missing = [p for p, b in packages if not shutil.which(b)]
    if missing:
        say(f"engine: apt-get install {' '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run_with_retries(["apt-get", "update", "-qq"], what="apt-get update", env=env)
        run_with_retries(["apt-get", "install", "-y", "-qq", *missing], what="apt-get install", env=env)
    return missing


def ensure_engine(install: bool, say: Callable[[str], None] = print, wait_s: float = 60.0) -> str:
    """Return how the engine was found ('running', 'started', 'installed+started')."""
    if engine_answers():
        if install and os.geteuid() == 0 and _is_debian_like():
            _install_missing([("iptables", "iptables"), ("util-linux", "nsenter")], say)
        return "running"
    if not install:
        raise EnvironmentProblem(f"no Docker engine answers: {fix_hint()}")
    if os.geteuid() != 0 or not _is_debian_like():
        raise EnvironmentProblem(f"cannot install Docker here: {fix_hint()}")
    how = "started"
    # iptables and nsenter (util-linux): the network fault modes of `chaos failover`
    if _install_missing([("docker.io", "dockerd"), ("docker-compose", "docker-compose"),
                         ("debootstrap", "debootstrap"), ("iptables", "iptables"), ("util-linux", "nsenter")], say):
        how = "installed+started"
    if not engine_answers():
        say("engine: starting dockerd (log: /var/log/dockerd.log)")
        with open("/var/log/dockerd.log", "ab") as log:
            subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + wait_s
        while not engine_answers():
            if time.monotonic() > deadline:
                raise EnvironmentProblem("dockerd did not answer within "
                                         f"{wait_s:.0f} s; see /var/log/dockerd.log")
            time.sleep(0.5)
    return how
