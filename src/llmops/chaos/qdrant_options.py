"""`chaos qdrant`'s options, apart from the experiment, so that both of its paths (with rag, and
the vector DB alone) can take them without importing each other."""

from __future__ import annotations

from dataclasses import dataclass

from .common import check_range
from .modes import check_mode
from .qdrant_safety import MIN_SAFETY_POINTS


@dataclass
class QdrantOptions:
    mode: str = "stop"
    outage_s: float = 6.0
    restore: bool = True
    health_interval_s: float = 0.2
    query_interval_s: float = 1.0
    data_safety: bool = True
    safety_points: int = 200

    def validate(self) -> None:
        check_mode(self.mode)
        check_range("--outage", self.outage_s, 1, 300)
        check_range("--points", self.safety_points, MIN_SAFETY_POINTS, 10000)
