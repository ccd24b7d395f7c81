"""What every command needs: where the project is, which profile, the engine, the stack snapshot.

The run folder is not here: the check runner (runner.py) owns it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .compose import Compose, has_compose_files, read_env_file, resolve_profile
from .errors import ConfigError
from .stack import Service, Stack, discover, docker_client


def find_project_dir(start: Path | None = None, explicit_files: bool = False) -> Path:
    """The project folder: the one given (`--project-dir`), else the nearest folder from the cwd
    up holding compose files (compose's default names, or llmops' compose/docker-compose.yml).
    With `--compose-file` and no `--project-dir`, the cwd, as compose itself takes it."""
    if start is not None:
        d = start.resolve()
        if not d.is_dir():
            raise ConfigError(f"--project-dir {start}: not a folder")
        return d
    here = Path.cwd().resolve()
    if explicit_files:
        return here
    for d in (here, *here.parents):
        if has_compose_files(d):
            return d
    raise ConfigError(f"no compose file in {here} or above (compose.yaml, docker-compose.yml, or "
                      f"compose/docker-compose.yml); pass --project-dir or --compose-file")


@dataclass
class Context:
    project_dir: Path
    profile_opt: str = "auto"
    evidence_dir: Path = Path("evidence")
    project: str = "llmops"
    json_out: bool = False
    compose_files: tuple[Path, ...] = ()
    _stack: Stack | None = field(default=None, init=False, repr=False)

    @cached_property
    def profile(self) -> str:
        return resolve_profile(self.profile_opt)

    @cached_property
    def compose(self) -> Compose:
        return Compose(self.project_dir, self.profile, self.project, self.compose_files)

    @cached_property
    def client(self) -> Any:
        return docker_client()

    @property
    def master_key(self) -> str | None:
        """The key the running gateway checks, read from its container (through the variable its
        config names); without a running gateway, the one `up` wrote to llmops' own .env."""
        from .errors import LlmopsError
        from .gateway_config import gateway_master_key, read_config

        try:
            gw = self.stack().gateway
        except LlmopsError:       # no engine: the key is only needed by commands that need one
            gw = None
        if gw is not None and gw.state == "running":
            p = self.stack().router_path
            try:
                cfg = read_config(p) if p is not None and p.is_file() else None
            except ConfigError:
                cfg = None
            key = gateway_master_key(gw.attrs, cfg)
            if key:
                return key
        return read_env_file(self.compose.env_file).get("LITELLM_MASTER_KEY")

    def declared(self) -> list[str]:
        return self.compose.declared()

    def services(self) -> list[Service]:
        """The containers now: for loops that wait on state.  Lookups use `stack()`."""
        return discover(self.client, self.project)

    def stack(self, refresh: bool = False) -> Stack:
        """The stack snapshot this command works on, taken on first use; `refresh` takes a new one
        (after `up` recreated the containers, or at the start of a certify phase)."""
        if refresh or self._stack is None:
            self._stack = Stack.snapshot(self.client, self.project, self.declared())
        return self._stack

    def forget_stack(self) -> None:
        """The next `stack()` takes a new snapshot (the runner calls this at each phase)."""
        self._stack = None

    def git_sha(self) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(self.project_dir), "rev-parse", "HEAD"],
                                 capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() or None

    def manifest(self, run_path: Path | None, gpu_env: Any = None) -> dict[str, Any]:
        """manifest.json's content for the run at `run_path`: a :class:`llmops.manifest.Manifest`,
        as JSON; `gpu_env` is what the gpu check added (else read back from its evidence)."""
        from .manifest import Sources, collect

        src = Sources(self.project_dir, self.project, self.profile, self.compose, docker=lambda: self.client,
                      services=self.services, git_sha=self.git_sha())
        return collect(src, gpu_env=gpu_env, run_path=run_path).to_json()
