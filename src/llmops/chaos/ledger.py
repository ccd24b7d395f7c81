"""The restore ledger: written *before* a fault, cleared only after a verified restore.

If llmops dies mid-fault (even by SIGKILL), the ledger still says what to undo, and
`llmops chaos restore` replays it.  Replaying twice is harmless: undoing an undone fault is a no-op.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ConfigError


@dataclass
class Entry:
    project: str
    service: str
    container_id: str
    mode: str             # stop | kill | pause | partition | blackhole | loss
    at: float             # wall-clock time of the fault (for people; measurement uses monotonic)
    pid: int              # the llmops process that injected it
    # Network faults: the comment every iptables rule carries (removal goes by it), and what undoing
    # needs that the container will not tell us afterwards (the network and aliases it was cut from).
    tag: str = ""
    net: dict = field(default_factory=dict)

    def key(self) -> str:
        return f"{self.project}/{self.service}"


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[Entry]:
        if not self.path.exists():
            return []
        try:
            raw = json.loads(self.path.read_text() or "[]")
            return [Entry(**e) for e in raw]
        except (ValueError, TypeError) as e:
            raise ConfigError(f"restore ledger {self.path} is unreadable ({e}); inspect it, then delete it") from None

    def _write(self, entries: list[Entry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump([asdict(e) for e in entries], f, indent=2)
            f.flush()
            os.fsync(f.fileno())   # the whole point is to survive a crash right after this
        os.replace(tmp, self.path)

    def add(self, project: str, service: str, container_id: str, mode: str, tag: str = "",
            net: dict | None = None) -> Entry:
        e = Entry(project, service, container_id, mode, time.time(), os.getpid(), tag, dict(net or {}))
        self._write([x for x in self.entries() if x.key() != e.key()] + [e])
        return e

    def remove(self, entry: Entry) -> None:
        self._write([x for x in self.entries() if x.key() != entry.key()])
