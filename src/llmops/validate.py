"""Numbers from the command line, checked once and the same way everywhere: finite and inside a
stated range.  A NaN compares false with everything, so a plain `lo <= x <= hi` already refuses
it; an infinity is refused by any finite bound."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ConfigError, UsageError


def _num(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 1e6 and x == int(x) else f"{x:g}"


def check_range(name: str, value: float, lo: float, hi: float) -> None:
    """UsageError (exit 2) unless lo <= value <= hi; NaN and infinities never pass."""
    if not (lo <= value <= hi):
        raise UsageError(f"{name} {value:g} out of range; allowed {_num(lo)}..{_num(hi)}")


def in_range(lo: float, hi: float) -> Callable[[Any, Any, Any], Any]:
    """A Typer option callback: the value is checked while the command line is parsed, so a bad
    number is refused before anything (NVML, the engine, a fault) is touched."""

    def callback(_ctx: Any, param: Any, value: Any) -> Any:
        if value is not None:
            check_range(param.opts[0] if param.opts else param.name, value, lo, hi)
        return value

    return callback


def read_config_text(path: Path | str, what: str) -> str:
    """A config file's text, or ConfigError (exit 2) naming it: missing, unreadable or not UTF-8."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {p}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{what} {p}: {e.strerror or e}") from None
