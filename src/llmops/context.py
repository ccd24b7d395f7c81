"""What every command needs: where the project is, which profile, the engine, the run folder."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from . import __version__
from .compose import Compose, read_env_file, resolve_profile
from .errors import ConfigError, EnvironmentProblem
from .evidence import RunDir
from .stack import Service, declared_services, discover, docker_client


def find_project_dir(start: Path | None = None) -> Path:
    """The folder holding compose/docker-compose.yml: the given one, or the nearest parent."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "compose" / "docker-compose.yml").exists():
            return d
    raise ConfigError(f"no compose/docker-compose.yml in {here} or above; pass --project-dir")


@dataclass
class Context:
    project_dir: Path
    profile_opt: str = "auto"
    evidence_dir: Path = Path("evidence")
    project: str = "llmops"
    json_out: bool = False
    run: RunDir | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def profile(self) -> str:
        return resolve_profile(self.profile_opt)

    @cached_property
    def compose(self) -> Compose:
        return Compose(self.project_dir, self.profile, self.project)

    @cached_property
    def client(self) -> Any:
        return docker_client()

    @property
    def master_key(self) -> str | None:
        return read_env_file(self.compose.env_file).get("LITELLM_MASTER_KEY")

    def declared(self) -> list[str]:
        return declared_services(self.compose.files)

    def services(self) -> list[Service]:
        return discover(self.client, self.project)

    def running_services(self) -> list[Service]:
        """The stack's services, or exit 4 when it is not up at all."""
        svcs = self.services()
        if not svcs:
            raise EnvironmentProblem(f"stack `{self.project}` is not up: run `llmops up`")
        return svcs

    def by_role(self, role: str) -> Service:
        for s in self.services():
            if s.role == role:
                return s
        raise EnvironmentProblem(f"no service with role {role} in stack `{self.project}`: run `llmops up`")

    def open_run(self) -> RunDir:
        """One run folder per invocation; `certify` shares one across its phases via LLMOPS_RUN_DIR."""
        if self.run is None:
            shared = os.environ.get("LLMOPS_RUN_DIR")
            self.run = RunDir.open(Path(shared)) if shared else RunDir.create(self.evidence_dir)
        return self.run

    def git_sha(self) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(self.project_dir), "rev-parse", "HEAD"],
                                 capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() or None

    def manifest(self) -> dict[str, Any]:
        """manifest.json's content: a :class:`llmops.manifest.Manifest`, as JSON."""
        from .manifest import collect

        return collect(project_dir=self.project_dir, project=self.project, profile=self.profile,
                       compose=self.compose, docker=lambda: self.client, services=self.services,
                       git_sha=self.git_sha(), gpu_env=self.extra.get("gpu_env"),
                       run_path=self.run.path if self.run else None).to_json()
