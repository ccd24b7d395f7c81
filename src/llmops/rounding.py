"""The one rounding rule for evidence figures: a missing value stays missing (None is never
rounded into a number), and every figure is written as a float with `nd` decimals."""

from __future__ import annotations


def rounded(x: float | None, nd: int) -> float | None:
    return None if x is None else round(float(x), nd)


__all__ = ["rounded"]
