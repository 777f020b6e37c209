"""Several objectives and constraints: the config's ``objectives`` and ``constraints``, and
what they make of each finished result.

::

    worker: objective returns {val_loss: .3, train_time: 12, gpu_mem_gb: 38}
            the runner takes the first objective's value as the loss (spec ``loss_key``)
        ──Result(loss=.3, metrics={train_time: 12, gpu_mem_gb: 38})──▶ driver
    driver: ObjectiveSpec.judge(result)   (once, before it is journaled and told)
        ──Result(loss=.3, objectives=(.3, 12.0), violation=0.0, metrics={val_loss: .3, ...})──▶
            journal, results.csv, best.json, the optimizer

Objective values are kept *to minimize* (an objective to maximize is negated) in
:attr:`emews.task.Result.objectives`; the values as returned stay in the metrics under their
names. A result that lacks a named objective metric (or holds a non-number there) becomes a
failed result whose error names the metric. A constraint's metric that is missing makes the
result infeasible (violation ``inf``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .errors import ConfigError
from .task import DONE, FAILED, Result

__all__ = ["Constraint", "ObjectiveSpec", "parse_objectives", "DIRECTIONS", "OPERATORS"]

DIRECTIONS = ("min", "max")
OPERATORS = ("<=", "<", ">=", ">")
_CONSTRAINT = re.compile(r"^\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``metric op bound``, e.g. ``gpu_mem_gb <= 40``."""

    metric: str
    op: str
    bound: float

    def excess(self, value: Any) -> float:
        """By how much ``value`` lies outside the bound: 0 inside, ``inf`` when it is missing
        or not a number; a strict bound met with equality counts the smallest positive amount."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return math.inf
        v, b = float(value), self.bound
        if self.op in ("<=", "<"):
            amount, bad = v - b, (v > b if self.op == "<=" else v >= b)
        else:
            amount, bad = b - v, (v < b if self.op == ">=" else v <= b)
        if not bad:
            return 0.0
        return amount if amount > 0 else math.ulp(abs(b)) or 5e-324

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


@dataclass(frozen=True)
class ObjectiveSpec:
    """The objectives (names and directions, in order) and the constraints of a search.

    Attributes:
        names: the metric names, the first one the loss early stopping and the progress read.
        directions: ``"min"`` or ``"max"`` for each name.
        constraints: the bounds a feasible result meets.
    """

    names: tuple[str, ...] = ("loss",)
    directions: tuple[str, ...] = ("min",)
    constraints: tuple[Constraint, ...] = ()

    @property
    def multi(self) -> bool:
        """More than one objective."""
        return len(self.names) > 1

    @property
    def needs_declaration(self) -> bool:
        """An optimizer must declare ``multi_objective`` for it: several objectives or constraints."""
        return self.multi or bool(self.constraints)

    @property
    def signs(self) -> tuple[float, ...]:
        """+1 for an objective to minimize, -1 for one to maximize."""
        return tuple(1.0 if d == "min" else -1.0 for d in self.directions)

    def raw(self, objectives: Sequence[float]) -> dict[str, float]:
        """The values as returned, by name, of a vector to minimize."""
        return {n: s * v for n, s, v in zip(self.names, self.signs, objectives)}

    def to_meta(self) -> dict:
        """What the journal's meta records (``objectives``)."""
        return {"names": list(self.names), "directions": list(self.directions),
                "constraints": [[c.metric, c.op, c.bound] for c in self.constraints]}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None) -> ObjectiveSpec | None:
        """The spec a journal's meta recorded (None: one objective, ``loss``)."""
        if not meta:
            return None
        return cls(tuple(meta["names"]), tuple(meta["directions"]),
                   tuple(Constraint(m, op, float(b)) for m, op, b in meta.get("constraints") or ()))

    def judge(self, r: Result) -> Result:
        """``r`` with its objective vector, violation and loss (the first objective, to
        minimize) set; a finished result missing an objective metric becomes a failed one.
        Results that did not finish are returned unchanged."""
        if r.status != DONE:
            return r
        raw: dict[str, Any] = dict(r.metrics)
        raw[self.names[0]] = r.loss  # the runner took the first objective's value as the loss
        values = []
        for name in self.names:
            v = raw.get(name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                why = "is missing from" if name not in raw else f"is not a finite number ({v!r}) in"
                returned = ", ".join(sorted(k for k in raw if k != self.names[0] or r.loss is not None))
                return replace(r, status=FAILED, loss=None, error=(
                    f"objective metric {name!r} {why} the values the objective returned (returned: {returned}); "
                    f"the objectives are {', '.join(self.names)}"))
            values.append(float(v))
        objectives = tuple(s * v for s, v in zip(self.signs, values))
        violation = sum(c.excess(raw.get(c.metric)) for c in self.constraints) if self.constraints else None
        metrics = dict(r.metrics)
        for i, (name, v) in enumerate(zip(self.names, values)):
            if not (name == "loss" and i == 0 and objectives[0] == v):  # else the loss column holds it
                metrics[name] = v
        return replace(r, loss=objectives[0], metrics=metrics, objectives=objectives if self.multi else None,
                       violation=violation)


def _direction(value: Any, source: str, key: str) -> str:
    if value not in DIRECTIONS:
        raise ConfigError(f"must be min or max, got {value!r}", source, key)
    return value


def _name(value: Any, source: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"an objective must be named by a metric the objective returns (a non-empty string), "
                          f"got {value!r}", source, key)
    return value


def parse_objectives(objectives: Any, constraints: Any, source: str = "<dict>") -> ObjectiveSpec | None:
    """The config's ``objectives`` and ``constraints``, checked (None: the default, one
    objective ``loss`` to minimize, no constraints).

    ``objectives``: a mapping ``{val_loss: min, train_time: min}`` in order, or a list of
    names (each to minimize) or of one-key mappings ``[{val_loss: min}, {accuracy: max}]``.
    ``constraints``: a mapping ``{gpu_mem_gb: "<= 40"}`` (operators ``<=``, ``<``, ``>=``, ``>``).

    Raises:
        ConfigError: naming ``source``, the key and the value.
    """
    names: list[str] = []
    directions: list[str] = []
    if objectives is not None:
        if isinstance(objectives, Mapping):
            items = list(objectives.items())
            if not items:
                raise ConfigError("must name at least one objective, got {}", source, "objectives")
        elif isinstance(objectives, list):
            if not objectives:
                raise ConfigError("must name at least one objective, got []", source, "objectives")
            items = []
            for i, item in enumerate(objectives):
                if isinstance(item, Mapping) and len(item) == 1:
                    items.append(next(iter(item.items())))
                elif isinstance(item, str):
                    items.append((item, "min"))
                else:
                    raise ConfigError(f"must be a metric name or {{name: min|max}}, got {item!r}", source,
                                      f"objectives[{i}]")
        else:
            raise ConfigError(f"must be a mapping of metric names to min or max, like {{val_loss: min, train_time: "
                              f"min}}, got {objectives!r}", source, "objectives")
        for name, direction in items:
            _name(name, source, "objectives")
            if name in names:
                raise ConfigError(f"names the objective {name!r} twice (got {objectives!r})", source, "objectives")
            names.append(name)
            directions.append(_direction(direction, source, f"objectives.{name}"))
    cons: list[Constraint] = []
    if constraints is not None:
        if not isinstance(constraints, Mapping):
            raise ConfigError(f"must be a mapping of metric names to bounds, like {{gpu_mem_gb: \"<= 40\"}}, got "
                              f"{constraints!r}", source, "constraints")
        for metric, text in constraints.items():
            _name(metric, source, "constraints")
            m = _CONSTRAINT.match(text) if isinstance(text, str) else None
            bound = float(m.group(2)) if m else math.nan
            if m is None or not math.isfinite(bound):
                raise ConfigError(f"must be an operator (<=, <, >=, >) and a number, like \"<= 40\", got {text!r}",
                                  source, f"constraints.{metric}")
            cons.append(Constraint(str(metric), m.group(1), bound))
    if not names:
        names, directions = ["loss"], ["min"]
    spec = ObjectiveSpec(tuple(names), tuple(directions), tuple(cons))
    if spec == ObjectiveSpec():
        return None
    return spec


# -- over the rows of a journal (results.csv, best.json, Results and the report) -----------------
def scored_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The finished rows that carry an objective vector."""
    return [r for r in rows if r.get("status") == DONE and r.get("objectives") is not None]


def feasible(row: Mapping[str, Any]) -> bool:
    """True unless the row's violation is positive (no constraints: every row is)."""
    v = row.get("violation")
    return v is None or v <= 0


def pareto_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The feasible finished rows no other feasible one dominates, by their first objective."""
    from ._pareto import nondominated

    ok = [r for r in scored_rows(rows) if feasible(r)]
    if not ok:
        return []
    mask = nondominated([r["objectives"] for r in ok])
    front = [r for r, keep in zip(ok, mask) if keep]
    return sorted(front, key=lambda r: (tuple(r["objectives"]), r["task_id"]))


def front_summary(rows: Sequence[Mapping[str, Any]], spec: ObjectiveSpec,
                  reference: Sequence[float] | None = None) -> dict:
    """The Pareto set of ``rows`` as best.json and report.json state it: each member's task
    id, parameters, objective values as returned (by name), metrics and violation; the
    hypervolume (in the space to minimize: objectives to maximize negated) against the stated
    reference point (default: :func:`emews._pareto.reference_point` of the feasible points)."""
    from ._pareto import hypervolume, reference_point

    front = pareto_rows(rows)
    ok = [r["objectives"] for r in scored_rows(rows) if feasible(r)]
    body: dict[str, Any] = {"objectives": dict(zip(spec.names, spec.directions)),
                            "constraints": [str(c) for c in spec.constraints],
                            "feasible": len(ok), "pareto": [], "hypervolume": None, "reference_point": None}
    for r in front:
        body["pareto"].append({"task_id": r["task_id"], "params": r["params"],
                               "values": spec.raw(r["objectives"]), "objectives": list(r["objectives"]),
                               "metrics": r.get("metrics") or {}, "violation": r.get("violation")})
    if ok:
        ref = list(reference) if reference is not None else reference_point(ok).tolist()
        body["hypervolume"] = hypervolume(ok, ref)
        body["reference_point"] = {"objectives": ref, "values": spec.raw(ref)}
    return body
