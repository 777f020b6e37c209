"""One CSV cell as a value of a dimension: what the population and warm-start readers share::

    "0.001" (Real) -> 0.001     "64" / "64.0" (Int) -> 64     "yes" (Bool) -> True
    "relu" (Categorical ["relu", "tanh"]) -> "relu"            "2" (Ordinal [1, 2, 4]) -> 2
"""

from __future__ import annotations

from typing import Any

from ..space import Bool, Categorical, Constant, Dimension, Int, Ordinal, Real

__all__ = ["parse_cell"]

_TRUE = {"true", "1", "yes", "y", "t", "1.0"}
_FALSE = {"false", "0", "no", "n", "f", "0.0"}


def parse_cell(d: Dimension, text: str) -> Any:
    """A CSV cell as a value of ``d`` (raises ValueError with the reason)."""
    s = text.strip()
    if s == "":
        raise ValueError("is empty")
    if isinstance(d, Bool):
        if s.lower() in _TRUE:
            return True
        if s.lower() in _FALSE:
            return False
        raise ValueError(f"value {s!r} is not true or false")
    if isinstance(d, Real):
        try:
            return float(s)
        except ValueError:
            raise ValueError(f"value {s!r} is not a number") from None
    if isinstance(d, Int):
        try:
            x = float(s)
        except ValueError:
            raise ValueError(f"value {s!r} is not an integer") from None
        if not x.is_integer():
            raise ValueError(f"value {s!r} is not an integer")
        return int(x)
    choices = d.values if isinstance(d, (Ordinal, Categorical)) else [d.value] if isinstance(d, Constant) else None
    if choices is None:
        return s
    for v in choices:
        if str(v) == s:
            return v
    try:
        x = float(s)
    except ValueError:
        x = None
    for v in choices:
        if x is not None and isinstance(v, (int, float)) and not isinstance(v, bool) and float(v) == x:
            return v
    raise ValueError(f"value {s!r} is not one of {choices!r}")
