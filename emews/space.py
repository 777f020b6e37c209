"""Search spaces: named dimensions, sampling, validation and encodings.

A :class:`Space` is an ordered list of dimensions. Six kinds exist:

============  ==========================================  =============================
type          YAML                                         value given to the objective
============  ==========================================  =============================
real          ``{type: real, low: 0, high: 1, log: no}``   ``float``
int           ``{type: int, low: 1, high: 64, log: no}``   ``int``
ordinal       ``{type: ordinal, values: [16, 32, 64]}``    one of the values (ordered)
categorical   ``{type: categorical, values: [a, b]}``      one of the values (unordered)
bool          ``{type: bool}``                             ``bool``
constant      ``{type: constant, value: x}``               ``x``
============  ==========================================  =============================

Any numeric dimension may carry ``sigma`` (the genetic algorithm's mutation width, in the
dimension's own units for real/int and in index steps for ordinal), as in CANDLE Supervisor's
GA parameter files, which :func:`emews.formats.read_supervisor_json` reads.

Encodings for optimizers:

* :meth:`Space.to_unit` / :meth:`Space.from_unit`: one column per *searchable* dimension
  (constants left out) in ``[0, 1]``; log dimensions are uniform in log space; ordinal,
  categorical and bool map to their index spread over ``[0, 1]``.
* :meth:`Space.encode`: like ``to_unit`` but categorical dimensions are one-hot, which is what
  distance-based models want.

Example:
    >>> space = Space.from_dict({"lr": {"type": "real", "low": 1e-4, "high": 1e-1, "log": True},
    ...                          "batch": {"type": "ordinal", "values": [16, 32, 64]}})
    >>> [p["batch"] in (16, 32, 64) for p in space.sample(3, seed=0)]
    [True, True, True]
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import SpaceError

__all__ = [
    "Dimension",
    "Real",
    "Int",
    "Ordinal",
    "Categorical",
    "Bool",
    "Constant",
    "Space",
    "plain",
]


def plain(value: Any) -> Any:
    """Turn numpy scalars (and containers of them) into plain Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


class Dimension:
    """One named parameter. Subclasses define sampling, validation and the unit encoding."""

    kind = "?"
    #: number of columns this dimension takes in :meth:`Space.encode`
    width = 1
    searchable = True

    def __init__(self, name: str):
        if not isinstance(name, str) or not name:
            raise SpaceError(f"a dimension name must be a non-empty string, got {name!r}")
        self.name = name

    # -- to override -------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator, n: int) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def validate(self, value: Any) -> Any:  # pragma: no cover - abstract
        """Return ``value`` as the plain Python value of this dimension or raise SpaceError."""
        raise NotImplementedError

    def to_unit(self, value: Any) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def from_unit(self, u: float) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------
    def encode(self, value: Any) -> list[float]:
        return [self.to_unit(value)]

    def decode(self, cols: Sequence[float]) -> Any:
        return self.from_unit(cols[0])

    def _bad(self, value: Any, why: str) -> SpaceError:
        return SpaceError(f"value {value!r} {why}", key=self.name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))


class _Numeric(Dimension):
    cast: type = float

    def __init__(self, name: str, low: float, high: float, log: bool = False, sigma: float | None = None):
        super().__init__(name)
        for key, v in (("low", low), ("high", high)):
            if not _is_number(v):
                raise SpaceError(f"must be a number, got {v!r}", key=f"{name}.{key}")
            if not math.isfinite(v):  # .inf/.nan: every proposal would be the bound, or none at all
                raise SpaceError(f"must be a finite number, got {v!r}", key=f"{name}.{key}")
        if sigma is not None and (not _is_number(sigma) or sigma <= 0):
            raise SpaceError(f"must be a positive number, got {sigma!r}", key=f"{name}.sigma")
        if not isinstance(log, (bool, np.bool_)):
            raise SpaceError(f"must be true or false, got {log!r}", key=f"{name}.log")
        if low > high:
            raise SpaceError(f"low must not exceed high, got low={low!r}, high={high!r}", key=name)
        if log and low <= 0:
            raise SpaceError(f"a log-scale dimension needs low > 0, got low={low!r}", key=f"{name}.low")
        self.low = self.cast(low)
        self.high = self.cast(high)
        self.log = bool(log)
        self.sigma = None if sigma is None else float(sigma)

    def _fwd(self, x: float) -> float:
        return math.log(x) if self.log else float(x)

    def _inv(self, y: float) -> float:
        return math.exp(y) if self.log else y

    def to_unit(self, value: Any) -> float:
        lo, hi = self._fwd(self.low), self._fwd(self.high)
        if hi == lo:
            return 0.5
        return min(1.0, max(0.0, (self._fwd(value) - lo) / (hi - lo)))

    def to_dict(self) -> dict:
        d = {"type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        if self.sigma is not None:
            d["sigma"] = self.sigma
        return d


class Real(_Numeric):
    """A real interval ``[low, high]``, optionally log-uniform."""

    kind = "real"
    cast = float

    def sample(self, rng: np.random.Generator, n: int) -> list[float]:
        u = rng.random(n)
        return [self.from_unit(x) for x in u]

    def from_unit(self, u: float) -> float:
        lo, hi = self._fwd(self.low), self._fwd(self.high)
        x = self._inv(lo + float(u) * (hi - lo))
        return float(min(self.high, max(self.low, x)))

    def validate(self, value: Any) -> float:
        if not _is_number(value):
            raise self._bad(value, "is not a number")
        v = float(value)
        if not math.isfinite(v) or v < self.low or v > self.high:
            raise self._bad(value, f"is outside [{self.low}, {self.high}]")
        return v


class Int(_Numeric):
    """An integer range ``low..high`` (both included), optionally log-uniform."""

    kind = "int"
    cast = int

    def __init__(self, name: str, low: int, high: int, log: bool = False, sigma: float | None = None):
        for key, v in (("low", low), ("high", high)):
            if _is_number(v) and math.isfinite(v) and float(v) != int(v):
                raise SpaceError(f"must be an integer, got {v!r}", key=f"{name}.{key}")
        super().__init__(name, low, high, log, sigma)

    def sample(self, rng: np.random.Generator, n: int) -> list[int]:
        if self.log:
            return [self.from_unit(x) for x in rng.random(n)]
        return [int(v) for v in rng.integers(self.low, self.high + 1, size=n)]

    def from_unit(self, u: float) -> int:
        # Split the (log) interval into high-low+1 equal cells so every integer is reachable.
        if not self.log:
            k = int(math.floor(float(u) * (self.high - self.low + 1)))
            return int(min(self.high, max(self.low, self.low + k)))
        lo, hi = math.log(self.low - 0.5 if self.low > 0.5 else self.low), math.log(self.high + 0.5)
        x = math.exp(lo + float(u) * (hi - lo))
        return int(min(self.high, max(self.low, round(x))))

    def to_unit(self, value: Any) -> float:
        if not self.log:
            n = self.high - self.low + 1
            return (int(value) - self.low + 0.5) / n
        lo, hi = math.log(self.low - 0.5 if self.low > 0.5 else self.low), math.log(self.high + 0.5)
        return min(1.0, max(0.0, (math.log(value) - lo) / (hi - lo)))

    def validate(self, value: Any) -> int:
        if not _is_number(value) or float(value) != int(value):
            raise self._bad(value, "is not an integer")
        v = int(value)
        if v < self.low or v > self.high:
            raise self._bad(value, f"is outside [{self.low}, {self.high}]")
        return v


class _Choice(Dimension):
    def __init__(self, name: str, values: Sequence[Any]):
        super().__init__(name)
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise SpaceError(f"must be a list of values, got {values!r}", key=f"{name}.values")
        values = [plain(v) for v in values]
        if not values:
            raise SpaceError("must list at least one value, got []", key=f"{name}.values")
        keys = [json.dumps(v, sort_keys=True, default=str) for v in values]
        if len(set(keys)) != len(keys):
            raise SpaceError(f"has repeated values: {values!r}", key=f"{name}.values")
        self.values = values
        self._index = {k: i for i, k in enumerate(keys)}

    def index(self, value: Any) -> int:
        key = json.dumps(plain(value), sort_keys=True, default=str)
        i = self._index.get(key)
        if i is None and _is_number(value):
            # 32 and 32.0 name the same choice
            for j, v in enumerate(self.values):
                if _is_number(v) and float(v) == float(value):
                    return j
        if i is None:
            raise self._bad(value, f"is not one of {self.values!r}")
        return i

    def validate(self, value: Any) -> Any:
        return self.values[self.index(value)]

    def sample(self, rng: np.random.Generator, n: int) -> list:
        return [self.values[int(i)] for i in rng.integers(0, len(self.values), size=n)]

    def to_unit(self, value: Any) -> float:
        k = len(self.values)
        return (self.index(value) + 0.5) / k

    def from_unit(self, u: float) -> Any:
        k = len(self.values)
        return self.values[int(min(k - 1, max(0, math.floor(float(u) * k))))]


def _check_ordered(name: str, values: Sequence[Any]) -> None:
    """Numeric ordinal values must be in order (ascending or descending): an ordinal's
    neighbours are close, so ``[512, 16, 128, 32]`` is a mistake (or a categorical)."""
    if len(values) < 3 or not all(_is_number(v) for v in values):
        return
    pairs = list(zip(values, values[1:]))
    if all(a < b for a, b in pairs) or all(a > b for a, b in pairs):
        return
    raise SpaceError(f"an ordinal's values must be in order (neighbours are close), got {list(values)!r}; write "
                     f"{sorted(values)!r}, or use type: categorical for unordered choices", key=f"{name}.values")


class Ordinal(_Choice):
    """Ordered choices, e.g. batch sizes ``[16, 32, 64]``; neighbours are close."""

    kind = "ordinal"

    def __init__(self, name: str, values: Sequence[Any], sigma: float | None = None):
        super().__init__(name, values)
        _check_ordered(name, self.values)
        if sigma is not None and (not _is_number(sigma) or sigma <= 0):
            raise SpaceError(f"must be a positive number, got {sigma!r}", key=f"{name}.sigma")
        self.sigma = None if sigma is None else float(sigma)

    def to_dict(self) -> dict:
        d = {"type": self.kind, "values": list(self.values)}
        if self.sigma is not None:
            d["sigma"] = self.sigma
        return d


class Categorical(_Choice):
    """Unordered choices; encoded one-hot by :meth:`Space.encode`."""

    kind = "categorical"

    @property
    def width(self) -> int:  # type: ignore[override]
        return len(self.values)

    def encode(self, value: Any) -> list[float]:
        cols = [0.0] * len(self.values)
        cols[self.index(value)] = 1.0
        return cols

    def decode(self, cols: Sequence[float]) -> Any:
        return self.values[int(np.argmax(cols))]

    def to_dict(self) -> dict:
        return {"type": self.kind, "values": list(self.values)}


class Bool(Dimension):
    """``True`` or ``False``."""

    kind = "bool"

    def sample(self, rng: np.random.Generator, n: int) -> list[bool]:
        return [bool(b) for b in rng.integers(0, 2, size=n)]

    def validate(self, value: Any) -> bool:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if _is_number(value) and value in (0, 1):
            return bool(value)
        raise self._bad(value, "is not true or false")

    def to_unit(self, value: Any) -> float:
        return 0.75 if self.validate(value) else 0.25

    def from_unit(self, u: float) -> bool:
        return bool(float(u) >= 0.5)

    def to_dict(self) -> dict:
        return {"type": self.kind}


class Constant(Dimension):
    """A fixed value handed to every evaluation (not searched)."""

    kind = "constant"
    width = 0
    searchable = False

    def __init__(self, name: str, value: Any):
        super().__init__(name)
        self.value = plain(value)

    def sample(self, rng: np.random.Generator, n: int) -> list:
        return [self.value] * n

    def validate(self, value: Any) -> Any:
        if plain(value) != self.value:
            raise self._bad(value, f"differs from the constant {self.value!r}")
        return self.value

    def to_unit(self, value: Any) -> float:
        return 0.5

    def from_unit(self, u: float) -> Any:
        return self.value

    def encode(self, value: Any) -> list[float]:
        return []

    def decode(self, cols: Sequence[float]) -> Any:
        return self.value

    def to_dict(self) -> dict:
        return {"type": self.kind, "value": self.value}


_KINDS: dict[str, tuple[type[Dimension], set[str], set[str]]] = {
    # type: (class, required keys, optional keys)
    "real": (Real, {"low", "high"}, {"log", "sigma"}),
    "float": (Real, {"low", "high"}, {"log", "sigma"}),
    "int": (Int, {"low", "high"}, {"log", "sigma"}),
    "integer": (Int, {"low", "high"}, {"log", "sigma"}),
    "ordinal": (Ordinal, {"values"}, {"sigma"}),
    "ordered": (Ordinal, {"values"}, {"sigma"}),
    "categorical": (Categorical, {"values"}, set()),
    "bool": (Bool, set(), set()),
    "logical": (Bool, set(), set()),
    "constant": (Constant, {"value"}, set()),
}


def _dimension_from_dict(name: str, spec: Any, source: str | None, prefix: str) -> Dimension:
    key = f"{prefix}{name}"
    if not isinstance(spec, Mapping):
        raise SpaceError(
            f"must be a mapping such as {{type: real, low: 0, high: 1}}, got {spec!r}", source, key
        )
    kind = spec.get("type")
    if kind is None:
        raise SpaceError(
            f"missing required key 'type' (one of {', '.join(sorted(set(k for k in _KINDS)))})", source, key
        )
    if kind not in _KINDS:
        raise SpaceError(
            f"unknown type {kind!r}; expected one of real, int, ordinal, categorical, bool, constant",
            source,
            f"{key}.type",
        )
    cls, required, optional = _KINDS[kind]
    given = set(spec) - {"type"}
    missing = required - given
    if missing:
        raise SpaceError(f"missing required key {sorted(missing)[0]!r} for type {kind!r}", source, key)
    unknown = given - required - optional
    if unknown:
        u = sorted(unknown)[0]
        raise SpaceError(
            f"unknown key {u!r} (value {spec[u]!r}) for type {kind!r}; allowed: "
            f"{', '.join(sorted(required | optional)) or 'none'}",
            source,
            f"{key}.{u}",
        )
    try:
        return cls(name, **{k: spec[k] for k in given})
    except SpaceError as e:
        # re-attach the source file and full key path
        raise SpaceError(_strip_key(str(e), e.key), source, f"{prefix}{e.key}" if e.key else key) from None


def _strip_key(msg: str, key: str | None) -> str:
    if key and msg.startswith(f"{key}: "):
        return msg[len(key) + 2 :]
    return msg


class Space:
    """An ordered collection of named :class:`Dimension` objects.

    Build one from Python objects (``Space([Real("lr", 1e-4, 1e-1, log=True), ...])``),
    from a mapping (:meth:`from_dict`, the YAML form); a CANDLE Supervisor GA parameter file
    is read into one at the edge by :func:`emews.formats.read_supervisor_json`.
    """

    def __init__(self, dims: Iterable[Dimension]):
        self.dims: list[Dimension] = list(dims)
        names = [d.name for d in self.dims]
        if not self.dims:
            raise SpaceError("a search space needs at least one dimension")
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise SpaceError(f"dimension names must be unique, repeated: {sorted(dup)}")
        for d in self.dims:
            if not isinstance(d, Dimension):
                raise SpaceError(f"not a Dimension: {d!r}")
        self._by_name = {d.name: d for d in self.dims}
        self.searchable = [d for d in self.dims if d.searchable]

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], source: str | None = None, prefix: str = "space.") -> Space:
        """Build a space from ``{name: {type: ..., ...}}`` (the YAML form)."""
        if isinstance(spec, Space):
            return spec
        if not isinstance(spec, Mapping):
            raise SpaceError(f"must be a mapping of dimension names to specs, got {spec!r}", source, prefix.rstrip("."))
        if not spec:
            raise SpaceError("must define at least one dimension, got {}", source, prefix.rstrip("."))
        return cls(_dimension_from_dict(str(n), s, source, prefix) for n, s in spec.items())

    def to_dict(self) -> dict:
        return {d.name: d.to_dict() for d in self.dims}

    # -- access --------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dims]

    def __getitem__(self, name: str) -> Dimension:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self):
        return iter(self.dims)

    def __len__(self) -> int:
        return len(self.dims)

    def __repr__(self) -> str:
        return f"Space({self.dims!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.to_dict() == other.to_dict()

    # -- sampling and validation -----------------------------------------------------------------
    def sample(self, n: int = 1, rng: np.random.Generator | int | None = None, *, seed: int | None = None) -> list[dict]:
        """Draw ``n`` independent uniform points (log-uniform on log dimensions)."""
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng if rng is not None else seed)
        cols = {d.name: d.sample(rng, n) for d in self.dims}
        return [{name: cols[name][i] for name in self.names} for i in range(n)]

    def validate(self, params: Mapping[str, Any]) -> dict:
        """Check a parameter dict against the space and return it with plain Python values.

        Raises:
            SpaceError: a name is missing or unknown, or a value is out of its dimension.
        """
        if not isinstance(params, Mapping):
            raise SpaceError(f"a parameter set must be a dict, got {params!r}")
        unknown = set(params) - set(self._by_name)
        if unknown:
            u = sorted(unknown)[0]
            raise SpaceError(f"not a dimension of the space (value {params[u]!r}); dimensions: {self.names}", key=u)
        out = {}
        for d in self.dims:
            if d.name not in params:
                if isinstance(d, Constant):
                    out[d.name] = d.value
                    continue
                raise SpaceError("missing from the parameter set", key=d.name)
            out[d.name] = d.validate(params[d.name])
        return out

    # -- encodings -------------------------------------------------------------------------------
    def to_unit(self, params_list: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Matrix ``(n, n_searchable)`` in ``[0, 1]``, one column per searchable dimension."""
        dims = self.searchable
        out = np.empty((len(params_list), len(dims)))
        for i, p in enumerate(params_list):
            for j, d in enumerate(dims):
                out[i, j] = d.to_unit(p[d.name])
        return out

    def from_unit(self, X: np.ndarray) -> list[dict]:
        """Inverse of :meth:`to_unit` (values clipped into the space)."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        consts = {d.name: d.value for d in self.dims if isinstance(d, Constant)}
        out = []
        dims, names = self.searchable, self.names
        for row in np.clip(X, 0.0, 1.0 - 1e-12).tolist():  # one clip for the matrix (per value: ~3 µs each)
            p = dict(consts)
            for j, d in enumerate(dims):
                p[d.name] = d.from_unit(row[j])
            out.append({n: p[n] for n in names})
        return out

    @property
    def encoded_width(self) -> int:
        return sum(d.width for d in self.searchable)

    def encode(self, params_list: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Matrix ``(n, encoded_width)``: unit columns, categorical dimensions one-hot."""
        out = np.empty((len(params_list), self.encoded_width))
        for i, p in enumerate(params_list):
            row: list[float] = []
            for d in self.searchable:
                row.extend(d.encode(p[d.name]))
            out[i] = row
        return out

    def decode(self, X: np.ndarray) -> list[dict]:
        """Inverse of :meth:`encode` (argmax for one-hot blocks)."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        out = []
        for row in X:
            p, j = {}, 0
            for d in self.dims:
                w = d.width if d.searchable else 0
                cols = row[j : j + w]
                p[d.name] = d.decode(np.clip(cols, 0.0, 1.0 - 1e-12)) if w else d.decode(cols)
                j += w
            out.append(p)
        return out

    def key(self, params: Mapping[str, Any]) -> str:
        """A canonical string for a parameter set, for de-duplication."""
        return json.dumps({n: plain(params[n]) for n in self.names if n in params}, sort_keys=True, default=str)
