"""The stand-in's storage: one qdrant-edge shard per collection, under ``QDRANT_STORAGE``.

Create and delete are crash-safe: a collection exists once its config.json is written
(atomically), and a deleted one is renamed to a tombstone before it is removed, so a
restart finishes or discards whatever a crash interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from .errors import ApiError, not_found

log = logging.getLogger("qdrant-standin")

DISTANCES: dict[str, Any] = {
    "Cosine": qe.Distance.Cosine,
    "Dot": qe.Distance.Dot,
    "Euclid": qe.Distance.Euclid,
    "Manhattan": qe.Distance.Manhattan,
}
_TOMBSTONE_PREFIX = ".deleted-"


class Collection:
    """One collection: its persisted params and its open shard.

    Edge shards are driven from worker threads; the lock serialises access to one
    shard because the bindings make no promise about concurrent use.
    """

    def __init__(self, name: str, size: int, distance: str, shard: Any) -> None:
        self.name = name
        self.size = size
        self.distance = distance
        self.shard = shard
        self.lock = threading.Lock()
        self.operation_id = 0


def _edge_config(size: int, distance: str) -> Any:
    return qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=size, distance=DISTANCES[distance]))


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    # A crash mid-write must never leave a half config that blocks the next start.
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Store:
    """All collections under one storage root; create/delete are serialised."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root / "collections"
        self.collections: dict[str, Collection] = {}
        self.lock = threading.Lock()
        self.ready = False

    def open(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        for entry in sorted(self.base.iterdir()):
            if entry.name.startswith(_TOMBSTONE_PREFIX):
                # A delete that crashed after its rename: finish it.
                shutil.rmtree(entry, ignore_errors=True)
                continue
            cfg_path = entry / "config.json"
            if not entry.is_dir() or not cfg_path.exists():
                # A create that crashed before its config was written: never acknowledged.
                log.warning("removing incomplete collection directory %s", entry)
                shutil.rmtree(entry, ignore_errors=True)
                continue
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            size, distance = int(cfg["size"]), str(cfg["distance"])
            shard = qe.EdgeShard.load(str(entry / "shard"), _edge_config(size, distance))
            self.collections[entry.name] = Collection(entry.name, size, distance, shard)
            log.info("loaded collection %s (size=%d, %s)", entry.name, size, distance)
        self.ready = True

    def close(self) -> None:
        with self.lock:
            for col in self.collections.values():
                with col.lock:
                    try:
                        col.shard.flush()
                        col.shard.close()
                    except Exception:  # closing must reach every shard
                        log.exception("closing collection %s failed", col.name)
            self.collections.clear()

    def get(self, name: str) -> Collection:
        col = self.collections.get(name)
        if col is None:
            raise not_found(name)
        return col

    def create(self, name: str, size: int, distance: str) -> None:
        with self.lock:
            if name in self.collections:
                raise ApiError(400, f"Wrong input: Collection `{name}` already exists!")
            path = self.base / name
            if path.exists():
                shutil.rmtree(path)
            path.mkdir(parents=True)
            shard = qe.EdgeShard.create(str(path / "shard"), _edge_config(size, distance))
            # The config is the commit point: without it the directory is discarded at start.
            _write_json_atomic(path / "config.json", {"size": size, "distance": distance})
            self.collections[name] = Collection(name, size, distance, shard)

    def delete(self, name: str) -> bool:
        with self.lock:
            col = self.collections.pop(name, None)
            if col is None:
                return False
            with col.lock:
                col.shard.close()
            tomb = self.base / f"{_TOMBSTONE_PREFIX}{name}-{uuid.uuid4().hex}"
            os.replace(self.base / name, tomb)
            shutil.rmtree(tomb, ignore_errors=True)
            return True
