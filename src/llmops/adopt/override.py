"""The override file `llmops adopt --write` writes: llmops' own, beside the user's compose files
(never over one of them), holding the llmops labels and nothing else."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import ConfigError
from ..stack import ROLE_LABEL, check_labels
from .labels import LLMOPS_LABELS, check_value

if TYPE_CHECKING:
    from .proposal import Adoption

# llmops' own override file, written beside the user's compose files (never over one of them).
OVERRIDE_NAME = "llmops.adopt.yml"

# The first line of every file write_override writes: how it knows a file it may replace.
HEADER_FIRST = "# Written by `llmops adopt`: llmops' own compose override, nothing else."
HEADER = (
    HEADER_FIRST + "\n"
    "# It only adds the llmops.* labels through which llmops finds this project's services (it finds\n"
    "# services by label, never by name).  Your compose files are untouched: pass this file as the\n"
    "# last -f after yours (docker compose -f YOUR.yml ... -f llmops.adopt.yml ...).  Labels are part\n"
    "# of a container's configuration, so the next `up` recreates the labelled containers.\n"
    "# Regenerate it with `llmops adopt`; delete it to undo.\n"
)

NOTHING_TO_ADD = "# Nothing to add: every adopted service already carries its llmops labels.\n"

# Compose's own rule for service names: the override's keys must be what compose accepts anyway.
_SERVICE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,200}")


def override_yaml(adoption: Adoption) -> str:
    """The override file's text: `services: {svc: {labels: {...}}}` and nothing else, every value
    checked first and written by yaml.safe_dump, so no label value can become YAML of its own."""
    if adoption.problems:
        raise ConfigError(f"not writing {OVERRIDE_NAME}: {len(adoption.problems)} problem(s) to settle first: "
                          f"{adoption.problems[0]}")
    services: dict[str, dict[str, dict[str, str]]] = {}
    for p in adoption.proposals:
        if not p.labels:
            continue
        if not isinstance(p.service, str) or not _SERVICE_NAME.fullmatch(p.service):
            raise ConfigError(f"service name {p.service!r} is not one compose accepts")
        for label, value in p.labels.items():
            if label not in LLMOPS_LABELS:
                raise ConfigError(f"service {p.service}: {label} is not a label llmops writes")
            if label == ROLE_LABEL and value == "":
                continue                # clearing a stale role label: llmops reads "" as no role
            check_value(p.service, label, value)
        # the whole set as llmops will read it, through the same checks the stack applies
        check_labels(p.service, p.final)
        services[p.service] = {"labels": dict(p.labels)}
    # docker-compose 1.29 reads a file with no `version:` and nothing in services/networks/volumes as
    # a legacy v1 file and refuses to merge it ("Version mismatch"); with services it needs none, and
    # compose v2 warns about a `version:` it ignores.  So: a version only when there is nothing to add.
    doc: dict[str, Any] = {"services": services} if services else {"version": "3.9", "services": {}}
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=False, width=1000)
    if yaml.safe_load(body) != doc:         # belt and braces: what compose reads is what was checked
        raise ConfigError(f"{OVERRIDE_NAME} would not read back as written")
    return HEADER + ("" if services else NOTHING_TO_ADD) + body


def is_ours(path: Path) -> bool:
    """Whether `path` is a file llmops adopt wrote (so it may be replaced)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\n") == HEADER_FIRST
    except (OSError, UnicodeDecodeError):
        return False


def write_override(adoption: Adoption, path: Path) -> Path:
    """Write the override at `path` (a directory: OVERRIDE_NAME in it) and return where.  A file
    there that llmops did not write is never replaced: it may be one of the user's own."""
    target = Path(path) / OVERRIDE_NAME if Path(path).is_dir() else Path(path)
    text = override_yaml(adoption)
    if target.exists() and not is_ours(target):
        raise ConfigError(f"{target} exists and llmops did not write it: not replacing it "
                          f"(move it, or choose another path)")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)          # a reader sees the old file or the new one, never half
    finally:
        if tmp.exists():
            tmp.unlink()
    return target
