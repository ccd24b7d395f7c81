"""The report's document model, and the one number format every rendering uses.

One :class:`Doc` (a list of blocks) is built once (:mod:`.content`) and rendered twice, to
Markdown (:mod:`.markdown`) and to HTML (:mod:`.html`), so that the two read the same.  Every
figure goes through :func:`fmt` (bare numbers) or :func:`fmt_metric` (number and unit), so the
summary's figures are the same numbers as in the JSON files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

from ..evidence import STATUSES


def fmt(value: Any) -> str:
    """Format one figure for people, the same way everywhere.

    ints as they are; floats rounded to 3 decimals (milliseconds for seconds), with an
    integral float written without ``.0``; bools as ``true``/``false`` (as in the JSON);
    ``None`` as ``n/a``.  Very small non-zero floats keep 3 significant digits.
    """
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        r = round(value, 3)
        if r == 0:
            return "0" if value == 0 else f"{value:.3g}"
        if r.is_integer() and abs(r) < 1e15:
            return str(int(r))
        return repr(r)
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return str(value)


def metric_unit(name: str) -> str:
    """The unit a metric's name implies (DESIGN's suffixes)."""
    leaf = name.split(".")[-1]
    head = name.split(".")[0]
    if head == "per_service" or leaf.endswith("_mib"):
        return "MiB"
    if leaf.endswith("_s"):
        return "s"
    if leaf.endswith("_pct"):
        return "%"
    return ""


def fmt_metric(name: str, value: Any) -> str:
    """A metric with its unit: ``1.15 s``, ``5374 MiB``, ``+0.9%``.  Contains ``fmt(value)``."""
    text = fmt(value)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return text
    unit = metric_unit(name)
    if unit == "%":
        return ("+" if value > 0 else "") + text + "%"
    return f"{text} {unit}" if unit else text


def flatten_metrics(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    """Metrics as (name, value) rows; a dict metric (``per_service``) becomes ``per_service.NAME``."""
    rows: list[tuple[str, Any]] = []
    for k, v in metrics.items():
        if isinstance(v, dict):
            if not v:
                rows.append((k, "none"))
            for sk, sv in v.items():
                rows.append((f"{k}.{sk}", sv))
        else:
            rows.append((k, v))
    return rows


@dataclass
class Text:
    text: str


@dataclass
class Code:
    text: str


@dataclass
class Strong:
    text: str


@dataclass
class Link:
    label: str
    href: str


Inline = Union[Text, Code, Strong, Link]


@dataclass
class Cell:
    spans: list
    attrs: dict[str, str] = field(default_factory=dict)   # data-* attributes for the HTML
    css: str = ""                                        # a class for the HTML


@dataclass
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass
class Para:
    spans: list
    css: str = ""


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    css: str = ""


@dataclass
class Bullets:
    items: list  # list[list[Inline]]


@dataclass
class Image:
    alt: str
    src: str      # a file name next to the summary


@dataclass
class Doc:
    title: str
    blocks: list = field(default_factory=list)

    def add(self, *blocks: Any) -> None:
        self.blocks.extend(blocks)


def _spans(x: Any) -> list:
    if isinstance(x, list):
        return x
    if isinstance(x, (Text, Code, Strong, Link)):
        return [x]
    return [Text(str(x))]


def cell(x: Any, css: str = "", **attrs: str) -> Cell:
    return Cell(_spans(x), {k.replace("_", "-"): v for k, v in attrs.items()}, css)


def status_cell(status: str) -> Cell:
    label = status.upper() if status in STATUSES else status
    spans: list = [Strong(label)] if status in ("fail", "error") else [Text(label)]
    return Cell(spans, {"data-status": status}, f"status-{status}")
