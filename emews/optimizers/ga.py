"""Genetic algorithms on DEAP, the way CANDLE Supervisor ran them.

::

    GA.run(queues)                                   (resident: owns its loop)
      population ── toolbox.map(evaluate, invalid) ──▶ queues.evaluate(batch) ──▶ workers
          ▲                      (the queue map)     ◀── losses (failures imputed)
          └── select(mu+lambda | simple) ◀── vary (uniform crossover, typed mutation)
                                   └──▶ queues.log({generation, evals, min, mean, max, best})

    several objectives / constraints (results carry ``objectives`` / ``violation``): the
    survivors are chosen by NSGA-II (DEAP ``selNSGA2``: non-dominated sorting, then crowding
    distance) under constraint-domination (feasible first; among infeasible ones the smaller
    violation), parents by a binary tournament on the same order.

    SteadyStateGA (ask/tell)       no generation barrier: each result enters the population
                                   (replacing the worst), each free worker gets a child bred
                                   by tournament from the population as it is now.

DEAP supplies the fitness, the toolbox and the hall of fame. The variation and selection
operators are this module's own, drawing from a private ``random.Random`` seeded from the
optimizer's seed (DEAP's tools draw from the global ``random`` module), and no class is made
with ``deap.creator`` (which mutates a global module). Genes are the parameter values
themselves, one per dimension in space order:

=============  =================================================================================
real, int      ``x + N(0, sigma)``, clipped to the bounds (ints rounded); ``sigma`` from the
               space (Supervisor JSON) or ``(high - low) / 10`` (log dimensions without a sigma:
               a tenth of the log range, applied in log space)
ordinal        index + ``N(0, sigma)`` rounded, clipped; ``sigma`` in index steps (default
               ``max(len(values) / 10, 0.5)``)
categorical    another value, drawn uniformly
bool           flipped
constant       never changed
=============  =================================================================================
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from deap import base, tools

from ..formats import read_population_csv
from ..space import Bool, Categorical, Constant, Dimension, Int, Ordinal, Real, Space, plain
from ..task import CANCELLED, Result
from ._base import Optimizer, ResidentOptimizer

if TYPE_CHECKING:  # pragma: no cover
    from ..queues import OptimizerQueues

__all__ = ["GA", "SteadyStateGA", "read_population_csv"]  # the reader lives in emews.formats

_STRATEGIES = ("mu+lambda", "simple")
#: crossover and mutation probabilities with several objectives when neither is set (the
#: single-objective defaults are 0.2 and 0.8); measured on ZDT1 (benchmarks/quality/ga_nsga2.py)
NSGA2_CXPB, NSGA2_MUTPB = 0.8, 0.2
_IMPUTE = ("worst", "penalty")


class _FitnessMin(base.Fitness):
    """One objective, minimized (a module-level class: no ``deap.creator``)."""

    weights = (-1.0,)


class _ConstrainedFitness(base.Fitness):
    """Several objectives, all minimized, with a constraint violation (0: feasible).

    ``dominates`` is constraint-domination (Deb): a feasible point dominates an infeasible
    one, of two infeasible ones the smaller violation dominates, and two feasible ones
    compare by Pareto dominance. Subclasses set ``weights`` (:func:`_fitness_class`).
    """

    weights: tuple[float, ...] = ()
    violation: float = 0.0

    def dominates(self, other: base.Fitness, obj: slice = slice(None)) -> bool:
        a, b = self.violation, getattr(other, "violation", 0.0)
        if a > 0 or b > 0:
            return a < b
        return super().dominates(other, obj)

    def __hash__(self) -> int:
        return hash((self.wvalues, self.violation))

    def __eq__(self, other: object) -> bool:
        return self.wvalues == getattr(other, "wvalues", None) and self.violation == getattr(other, "violation", None)

    def __ne__(self, other: object) -> bool:
        return not self == other


_FITNESS_CLASSES: dict[int, type] = {}


def _fitness_class(m: int) -> type:
    """The constrained fitness of ``m`` minimized objectives (made once, kept here: no ``deap.creator``)."""
    if m not in _FITNESS_CLASSES:
        _FITNESS_CLASSES[m] = type(f"_FitnessMin{m}", (_ConstrainedFitness,), {"weights": (-1.0,) * m})
    return _FITNESS_CLASSES[m]


class Individual(list):
    """A list of gene values (one per dimension) with a DEAP ``fitness``."""

    def __init__(self, genes: Sequence[Any] = (), fitness: type = _FitnessMin):
        super().__init__(genes)
        self.fitness = fitness()


# -- settings validation ---------------------------------------------------------------------------
def _check_int(owner: str, setting: str, value: Any, minimum: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{owner} setting {setting}={value!r}: expected an integer >= {minimum}")
    return int(value)


def _check_prob(owner: str, setting: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{owner} setting {setting}={value!r}: expected a probability in [0, 1]")
    return float(value)


def _check_choice(owner: str, setting: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{owner} setting {setting}={value!r}: expected one of {', '.join(map(repr, allowed))}")
    return value


class _Genetics:
    """Typed mutation, uniform crossover and tournament selection on a private RNG."""

    def __init__(self, space: Space, rnd: random.Random, indpb: float, tournament: int):
        self.space = space
        self.rnd = rnd
        self.indpb = indpb
        self.tournament = tournament
        self.sigmas: list[float | None] = [self._sigma(d) for d in space.dims]

    @staticmethod
    def _sigma(d: Dimension) -> float | None:
        if isinstance(d, (Real, Int)):
            if d.sigma is not None:
                return d.sigma
            if d.log and isinstance(d, Real):
                return (math.log(d.high) - math.log(d.low)) / 10
            return max((d.high - d.low) / 10, 0.5 if isinstance(d, Int) else 0.0)
        if isinstance(d, Ordinal):
            return d.sigma if d.sigma is not None else max(len(d.values) / 10, 0.5)
        return None

    # individuals <-> params
    def individual(self, params: Mapping[str, Any]) -> Individual:
        return Individual(params[n] for n in self.space.names)

    def params(self, ind: Sequence[Any]) -> dict:
        return {n: plain(v) for n, v in zip(self.space.names, ind)}

    def clone(self, ind: Individual) -> Individual:
        new = Individual(ind, type(ind.fitness))
        if ind.fitness.valid:
            new.fitness.values = ind.fitness.values
            for extra in ("violation", "crowding_dist"):
                if extra in vars(ind.fitness):
                    setattr(new.fitness, extra, getattr(ind.fitness, extra))
        return new

    # variation
    def mutate_gene(self, d: Dimension, x: Any, sigma: float | None) -> Any:
        r = self.rnd
        if isinstance(d, Real):
            if d.log and d.sigma is None:
                y = math.exp(math.log(x) + r.gauss(0.0, sigma))
            else:
                y = x + r.gauss(0.0, sigma)
            return float(min(d.high, max(d.low, y)))
        if isinstance(d, Int):
            return int(min(d.high, max(d.low, round(x + r.gauss(0.0, sigma)))))
        if isinstance(d, Ordinal):
            i = d.index(x) + r.gauss(0.0, sigma)
            return d.values[int(round(min(len(d.values) - 1, max(0, i))))]
        if isinstance(d, Categorical):
            if len(d.values) < 2:
                return x
            others = [v for v in d.values if v != x]
            return others[r.randrange(len(others))]
        if isinstance(d, Bool):
            return not x
        if isinstance(d, Constant):
            return x
        return d.sample(np.random.default_rng(r.randrange(2**32)), 1)[0]  # a user's Dimension: resample

    def mutate(self, ind: Individual, force: bool = False) -> Individual:
        """Mutate each gene with probability ``indpb`` (at least one when ``force``), in place."""
        dims = self.space.dims
        changed = False
        for i, d in enumerate(dims):
            if not d.searchable:
                continue
            if self.rnd.random() < self.indpb:
                ind[i] = self.mutate_gene(d, ind[i], self.sigmas[i])
                changed = True
        if force and not changed:
            free = [i for i, d in enumerate(dims) if d.searchable]
            if free:
                i = free[self.rnd.randrange(len(free))]
                ind[i] = self.mutate_gene(dims[i], ind[i], self.sigmas[i])
        del ind.fitness.values
        return ind

    def crossover(self, a: Individual, b: Individual) -> tuple[Individual, Individual]:
        """Uniform crossover: swap each gene with probability ``indpb``, in place."""
        for i in range(min(len(a), len(b))):
            if self.rnd.random() < self.indpb:
                a[i], b[i] = b[i], a[i]
        del a.fitness.values
        del b.fitness.values
        return a, b

    def select_one(self, population: Sequence[Individual]) -> Individual:
        """Tournament: the best of ``tournament`` individuals drawn with replacement."""
        aspirants = [population[self.rnd.randrange(len(population))] for _ in range(self.tournament)]
        return max(aspirants, key=lambda ind: ind.fitness)

    def select(self, population: Sequence[Individual], k: int) -> list[Individual]:
        return [self.select_one(population) for _ in range(k)]

    def select_one_pareto(self, population: Sequence[Individual]) -> Individual:
        """Binary tournament of NSGA-II: the one that (constraint-)dominates, else the larger
        crowding distance, else either."""
        a = population[self.rnd.randrange(len(population))]
        b = population[self.rnd.randrange(len(population))]
        if a.fitness.dominates(b.fitness):
            return a
        if b.fitness.dominates(a.fitness):
            return b
        ca, cb = getattr(a.fitness, "crowding_dist", 0.0), getattr(b.fitness, "crowding_dist", 0.0)
        if ca != cb:
            return a if ca > cb else b
        return a if self.rnd.random() < 0.5 else b


def _stats(values: Sequence[float]) -> dict:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"min": None, "mean": None, "max": None, "std": None}
    arr = np.asarray(finite)
    return {"min": float(arr.min()), "mean": float(arr.mean()), "max": float(arr.max()), "std": float(arr.std())}


class _Imputer:
    """The loss given to failed evaluations: the worst seen so far, or a fixed penalty."""

    def __init__(self, owner: str, impute: str, penalty: float | None):
        self.impute = _check_choice(owner, "impute", impute, _IMPUTE)
        if penalty is not None and (isinstance(penalty, bool) or not isinstance(penalty, (int, float))
                                    or not math.isfinite(penalty)):
            raise ValueError(f"{owner} setting penalty={penalty!r}: expected a finite number")
        if self.impute == "penalty" and penalty is None:
            raise ValueError(f"{owner} setting impute='penalty' needs the setting penalty "
                             "(the loss of a failed evaluation)")
        self.penalty = None if penalty is None else float(penalty)
        self.worst = -math.inf

    def loss(self, r: Result) -> float:
        if r.ok and r.loss is not None and math.isfinite(r.loss):
            self.worst = max(self.worst, float(r.loss))
            return float(r.loss)
        if self.impute == "penalty":
            return self.penalty  # type: ignore[return-value]
        return self.worst if math.isfinite(self.worst) else math.inf


# -- the generational GA (resident) ----------------------------------------------------------------
class GA(ResidentOptimizer):
    """DEAP genetic algorithm as an EMEWS resident loop: ``toolbox.map`` is the queue map.

    Settings (defaults as CANDLE Supervisor's GA workflow):
        population: individuals per generation (mu). Default 16.
        offspring: children per generation (lambda) for ``mu+lambda`` (default: population).
        generations: stop after this many generations (default: until the budget is spent).
        strategy: ``"mu+lambda"`` (DEAP ``eaMuPlusLambda``: parents and children compete)
            or ``"simple"`` (DEAP ``eaSimple``: children replace the parents).
        mutpb: probability that a child is a mutant. Default 0.8 (0.2 with several objectives).
        cxpb: probability that a child comes from crossover. Default 0.2 (0.8 with several
            objectives, when neither ``cxpb`` nor ``mutpb`` is set).
        indpb: per-gene probability of mutation and of a crossover swap. Default 0.5.
        tournament: tournament size of the selection. Default 4.
        hall_of_fame: best individuals kept (and logged). Default 5.
        impute: failed or timed-out evaluations get the ``"worst"`` loss seen so far (default;
            ``inf`` before any success) or ``penalty``.
        penalty: the loss of a failed evaluation when ``impute="penalty"``.
        initial_population: a CSV file with one column per dimension (see
            :func:`emews.formats.read_population_csv`); its rows start the first generation, random
            individuals fill it up to ``population``.

    A child identical to an individual already evaluated takes its loss without a new
    evaluation; the search ends early when 20 generations in a row bring nothing new.

    Several objectives or constraints (the told results carry ``objectives`` or
    ``violation``): NSGA-II. Survivors are chosen from parents and children (mu+lambda,
    whatever ``strategy``) by DEAP's ``selNSGA2`` under constraint-domination, parents by a
    binary tournament (dominance, then crowding distance). A failed evaluation gets the worst
    value of each objective seen (or ``penalty``) and an infinite violation.

    Seeds: a generation is one batch (``queues.evaluate``), told in its own order whatever
    order its results arrive in, so a seeded search repeats exactly in either ``mode`` and on
    any number of workers.
    """

    path_settings = ("initial_population",)
    multi_objective = True  # NSGA-II once the told results carry objectives or a violation

    def __init__(
        self,
        space: Space,
        seed: int | None = None,
        *,
        population: int = 16,
        offspring: int | None = None,
        generations: int | None = None,
        strategy: str = "mu+lambda",
        mutpb: float | None = None,
        cxpb: float | None = None,
        indpb: float = 0.5,
        tournament: int = 4,
        hall_of_fame: int = 5,
        impute: str = "worst",
        penalty: float | None = None,
        initial_population: str | None = None,
    ):
        super().__init__(space, seed)
        owner = "GA"
        self.population = _check_int(owner, "population", population, 2)
        self.offspring = _check_int(owner, "offspring", offspring, 1, allow_none=True) or self.population
        self.generations = _check_int(owner, "generations", generations, 0, allow_none=True)
        self.strategy = _check_choice(owner, "strategy", strategy, _STRATEGIES)
        self._given = {"mutpb": mutpb is not None, "cxpb": cxpb is not None}
        mutpb = 0.8 if mutpb is None else mutpb
        cxpb = 0.2 if cxpb is None else cxpb
        self.mutpb = _check_prob(owner, "mutpb", mutpb)
        self.cxpb = _check_prob(owner, "cxpb", cxpb)
        if self.strategy == "mu+lambda" and self.cxpb + self.mutpb > 1.0 + 1e-12:
            raise ValueError(f"GA settings cxpb={cxpb!r} and mutpb={mutpb!r}: with strategy 'mu+lambda' "
                             "their sum must not exceed 1")
        self.indpb = _check_prob(owner, "indpb", indpb)
        self.tournament = _check_int(owner, "tournament", tournament, 1)
        self.hall_of_fame = _check_int(owner, "hall_of_fame", hall_of_fame, 1)
        self.imputer = _Imputer(owner, impute, penalty)
        self.initial = read_population_csv(initial_population, space) if initial_population is not None else []
        self.genetics = _Genetics(space, random.Random(int(self.rng.integers(2**63))), self.indpb, self.tournament)
        self.hof = tools.HallOfFame(self.hall_of_fame)
        self.evaluated = 0
        self._failed = 0
        self._cache: dict[str, float] = {}
        self._told: dict[str, Result] = {}  # the result of each evaluated point (several objectives)
        self._m = 0  # objectives the told results carry (0: one loss, no constraint: the classic GA)
        self._worst: list[float] = []

    # -- the queue map -----------------------------------------------------------------------
    def _queue_map(self, queues: OptimizerQueues):
        """A ``toolbox.map`` that evaluates a whole list through the queues at once.

        Returns one fitness tuple per individual, ``None`` for those the driver cancelled
        (budget spent). Repeats of evaluated individuals are answered from memory. With
        several objectives or constraints (see :meth:`_pareto_fitness`) a fitness is a pair
        ``(objective values, violation)``.
        """
        g = self.genetics

        def queue_map(evaluate: Any, individuals: Sequence[Individual]) -> list[Any]:
            keys = [self.space.key(g.params(ind)) for ind in individuals]
            todo: dict[str, dict] = {}
            for k, ind in zip(keys, individuals):
                if k not in self._cache and k not in todo:
                    todo[k] = g.params(ind)
            budget = queues.remaining
            batch = list(todo.items())[:budget]
            if batch:
                results = list(zip((k for k, _ in batch), queues.evaluate([p for _, p in batch])))
                # successes first, so that a failure gets the worst loss of this batch too
                for k, r in sorted(results, key=lambda kr: not kr[1].ok):
                    if r.status == CANCELLED:
                        continue
                    self.evaluated += 1
                    self._failed += 0 if r.ok else 1
                    self._cache[k] = self.imputer.loss(r)
                    self._told[k] = r
                    self._learn(r)
            if self._m:
                return [self._pareto_fitness(self._told.get(k)) if k in self._cache else None for k in keys]
            return [(self._cache[k],) if k in self._cache else None for k in keys]

        return queue_map

    # -- several objectives ------------------------------------------------------------------
    def _learn(self, r: Result) -> None:
        """Note the objectives a told result carries: the first with ``objectives`` or a
        ``violation`` switches the search to NSGA-II; the worst value of each is kept for failures."""
        if r.objectives is not None or r.violation is not None:
            vals = tuple(r.objectives) if r.objectives is not None else (float(r.loss),)
            if not self._m:
                self._m = len(vals)
                self._worst = [-math.inf] * self._m
                # NSGA-II's variation: mostly crossover (unless the settings say otherwise)
                if not self._given["cxpb"] and not self._given["mutpb"]:
                    self.cxpb, self.mutpb = NSGA2_CXPB, NSGA2_MUTPB
            if r.ok and len(vals) == self._m:
                self._worst = [max(w, v) for w, v in zip(self._worst, vals)]

    def _pareto_fitness(self, r: Result | None) -> tuple[tuple[float, ...], float]:
        """``(objective values to minimize, violation)`` of a told result; a failed one (or one
        without objectives) gets the worst value of each objective seen (``penalty`` with
        ``impute="penalty"``) and an infinite violation, so every evaluated point dominates it."""
        if r is not None and r.ok:
            vals = tuple(r.objectives) if r.objectives is not None else (float(r.loss),)
            if len(vals) == self._m:
                return vals, float(r.violation or 0.0)
        if self.imputer.impute == "penalty":
            return (self.imputer.penalty,) * self._m, math.inf
        return tuple(w if math.isfinite(w) else 1e300 for w in self._worst), math.inf

    def _rescore(self, individuals: Sequence[Individual]) -> None:
        """Give each individual its several-objective fitness from the told results."""
        cls = _fitness_class(self._m)
        for ind in individuals:
            key = self.space.key(self.genetics.params(ind))
            if key not in self._cache and key not in self._told:
                continue
            vals, violation = self._pareto_fitness(self._told.get(key))
            crowd = getattr(ind.fitness, "crowding_dist", None)
            ind.fitness = cls()
            ind.fitness.values = vals
            ind.fitness.violation = violation
            if crowd is not None:
                ind.fitness.crowding_dist = crowd

    def _assign(self, toolbox: base.Toolbox, individuals: Sequence[Individual]) -> list[Individual]:
        """Evaluate those without fitness; returns the individuals that have one."""
        invalid = [ind for ind in individuals if not ind.fitness.valid]
        fits = list(toolbox.map(toolbox.evaluate, invalid))
        if self._m:
            self._rescore(individuals)
            return [ind for ind in individuals if ind.fitness.valid]
        for ind, fit in zip(invalid, fits):
            if fit is not None:
                ind.fitness.values = fit
        return [ind for ind in individuals if ind.fitness.valid]

    def _vary_or(self, population: Sequence[Individual], n: int) -> list[Individual]:
        """DEAP ``varOr``: each child from crossover, mutation or reproduction."""
        g, out = self.genetics, []
        for _ in range(n):
            r = g.rnd.random()
            if self._m:  # NSGA-II: parents by binary tournament on (constraint-)dominance and crowding
                if r < self.cxpb and len(population) > 1:
                    a, _b = g.crossover(g.clone(g.select_one_pareto(population)),
                                        g.clone(g.select_one_pareto(population)))
                    out.append(a)
                elif r < self.cxpb + self.mutpb:
                    out.append(g.mutate(g.clone(g.select_one_pareto(population))))
                else:
                    out.append(g.clone(g.select_one_pareto(population)))
            elif r < self.cxpb and len(population) > 1:
                i, j = g.rnd.sample(range(len(population)), 2)
                a, _b = g.crossover(g.clone(population[i]), g.clone(population[j]))
                out.append(a)
            elif r < self.cxpb + self.mutpb:
                out.append(g.mutate(g.clone(population[g.rnd.randrange(len(population))])))
            else:
                out.append(g.clone(population[g.rnd.randrange(len(population))]))
        return out

    def _vary_and(self, population: Sequence[Individual]) -> list[Individual]:
        """DEAP ``varAnd``: crossover of neighbours, then mutation of each child."""
        g = self.genetics
        out = [g.clone(ind) for ind in population]
        for i in range(1, len(out), 2):
            if g.rnd.random() < self.cxpb:
                g.crossover(out[i - 1], out[i])
        for i in range(len(out)):
            if g.rnd.random() < self.mutpb:
                g.mutate(out[i])
        return out

    def _log(self, queues: OptimizerQueues, gen: int, evals: int, population: Sequence[Individual]) -> None:
        if self._m:
            front = [ind for ind in population if not any(o.fitness.dominates(ind.fitness) for o in population)]
            feasible = [ind for ind in population if ind.fitness.violation <= 0]
            queues.log({"optimizer": "ga", "generation": gen, "evals": evals, "total_evals": self.evaluated,
                        "failed": self._failed, "population": len(population), "selection": "nsga2",
                        "front": len(front), "feasible": len(feasible),
                        "objectives_min": [min((i.fitness.values[j] for i in feasible), default=None)
                                           for j in range(self._m)]})
            return
        best = self.hof[0] if len(self.hof) else None
        rec = {"optimizer": "ga", "generation": gen, "evals": evals, "total_evals": self.evaluated,
               "failed": self._failed, "population": len(population),
               **_stats([ind.fitness.values[0] for ind in population]),
               "best_loss": best.fitness.values[0] if best is not None else None,
               "best_params": self.genetics.params(best) if best is not None else None}
        queues.log(rec)

    def run(self, queues: OptimizerQueues) -> None:
        g = self.genetics
        toolbox = base.Toolbox()
        toolbox.register("evaluate", lambda ind: None)  # evaluation happens in the queue map
        toolbox.register("map", self._queue_map(queues))

        # warm_start: the best earlier results join the first population with their fitness (not evaluated again)
        warm = sorted((r for r in getattr(queues, "warm_start", ()) if r.ok), key=lambda r: r.loss)[: self.population]
        start = []
        for r in warm:
            ind = g.individual(r.params)
            ind.fitness.values = (float(r.loss),)
            self._told.setdefault(self.space.key(r.params), r)
            start.append(ind)
        start += [g.individual(p) for p in self.initial]
        if len(start) < self.population:
            start += [g.individual(p) for p in self.space.sample(self.population - len(start), self.rng)]
        before = self.evaluated
        pop = self._assign(toolbox, start)
        self.hof.update(pop)
        if len(pop) > self.population:
            pop = self._survivors(pop)
        self._log(queues, 0, self.evaluated - before, pop)
        if not pop:
            return
        gen, idle = 0, 0
        while queues.remaining > 0 and (self.generations is None or gen < self.generations):
            gen += 1
            before = self.evaluated
            if self.strategy == "mu+lambda" or self._m:
                children = self._assign(toolbox, self._vary_or(pop, self.offspring))
                self.hof.update(children)
                pop = self._survivors(pop + children)
            else:
                children = self._assign(toolbox, self._vary_and(g.select(pop, self.population)))
                self.hof.update(children)
                pop = children or pop
            spent = self.evaluated - before
            self._log(queues, gen, spent, pop)
            idle = 0 if spent else idle + 1
            if idle >= 20:  # nothing new for 20 generations: converged (or a tiny space)
                break

    def _survivors(self, candidates: list[Individual]) -> list[Individual]:
        """``mu`` survivors by tournament (DEAP's eaMuPlusLambda with selTournament); with
        several objectives or constraints, by NSGA-II (DEAP's ``selNSGA2``) over the distinct
        candidates under constraint-domination."""
        if self._m:
            self._rescore(candidates)
            unique: dict[str, Individual] = {}
            for ind in candidates:
                unique.setdefault(self.space.key(self.genetics.params(ind)), ind)
            distinct = list(unique.values())
            chosen = tools.selNSGA2(distinct, min(self.population, len(distinct)))
            return [self.genetics.clone(ind) for ind in chosen]
        return [self.genetics.clone(ind) for ind in self.genetics.select(candidates, self.population)]


# -- the steady-state GA (ask/tell, asynchronous) --------------------------------------------------
class SteadyStateGA(Optimizer):
    """Asynchronous steady-state GA: no generation barrier, so workers never idle.

    Each finished evaluation enters the population (while it has fewer than ``population``
    members, or replacing the worst member when it is better); each free worker gets a child
    bred from the population as it is at that moment: uniform crossover of two tournament
    winners with probability ``cxpb`` (else a copy of one), then typed mutation with
    probability ``mutpb`` (always when the child repeats a pending or evaluated point).

    Settings: ``population``, ``mutpb``, ``cxpb``, ``indpb``, ``tournament``, ``impute``,
    ``penalty``, ``initial_population`` as in :class:`GA`. ``log()`` summarizes the population
    every ``population`` results (a "generation").

    Seeds: ``mode: batch`` repeats exactly for the same ``batch_size``. In ``mode: async`` a
    child is bred from the population as the results that have arrived made it, an order set
    by timing that cannot repeat; only the first ``population`` points (the initial ones, then
    random draws one point at a time) repeat by task id.
    """

    lookahead = 0
    path_settings = ("initial_population",)

    def __init__(
        self,
        space: Space,
        seed: int | None = None,
        *,
        population: int = 16,
        mutpb: float = 0.8,
        cxpb: float = 0.2,
        indpb: float = 0.5,
        tournament: int = 4,
        impute: str = "worst",
        penalty: float | None = None,
        initial_population: str | None = None,
    ):
        super().__init__(space, seed)
        owner = "SteadyStateGA"
        self.population = _check_int(owner, "population", population, 2)
        self.mutpb = _check_prob(owner, "mutpb", mutpb)
        self.cxpb = _check_prob(owner, "cxpb", cxpb)
        self.indpb = _check_prob(owner, "indpb", indpb)
        self.tournament = _check_int(owner, "tournament", tournament, 1)
        self.imputer = _Imputer(owner, impute, penalty)
        self.genetics = _Genetics(space, random.Random(int(self.rng.integers(2**63))), self.indpb, self.tournament)
        self._initial = read_population_csv(initial_population, space) if initial_population is not None else []
        self._seeded = 0  # initial individuals proposed so far
        self.members: list[Individual] = []
        self._pending: dict[str, int] = {}
        self._seen: set[str] = set()
        self._told = 0
        self._failed = 0
        self._record: dict | None = None

    def ask(self, n: int) -> list[dict]:
        out = []
        for _ in range(max(0, n)):
            if self._seeded < self.population or not self.members:
                self._seeded += 1
                params = self._initial.pop(0) if self._initial else self.space.sample(1, self.rng)[0]
            else:
                params = self._breed()
            key = self.space.key(params)
            self._pending[key] = self._pending.get(key, 0) + 1
            out.append(params)
        return out

    def _breed(self) -> dict:
        g = self.genetics
        if g.rnd.random() < self.cxpb and len(self.members) > 1:
            child, _ = g.crossover(g.clone(g.select_one(self.members)), g.clone(g.select_one(self.members)))
        else:
            child = g.clone(g.select_one(self.members))
        if g.rnd.random() < self.mutpb:
            g.mutate(child)
        for _ in range(20):  # a repeat of a pending or evaluated point teaches nothing
            key = self.space.key(g.params(child))
            if key not in self._pending and key not in self._seen:
                break
            g.mutate(child, force=True)
        return g.params(child)

    def tell(self, results: Sequence[Result]) -> None:
        g = self.genetics
        for r in sorted(results, key=lambda r: not r.ok):  # successes first: failures get their worst
            key = self.space.key(r.params)
            if self._pending.get(key, 0) > 1:
                self._pending[key] -= 1
            else:
                self._pending.pop(key, None)
            if r.status == CANCELLED:
                continue
            self._seen.add(key)
            self._told += 1
            self._failed += 0 if r.ok else 1
            ind = g.individual(r.params)
            ind.fitness.values = (self.imputer.loss(r),)
            if len(self.members) < self.population:
                self.members.append(ind)
            else:
                worst = min(range(len(self.members)), key=lambda i: self.members[i].fitness)
                if ind.fitness > self.members[worst].fitness:
                    self.members[worst] = ind
            if self._told % self.population == 0:
                best = max(self.members, key=lambda i: i.fitness)
                self._record = {"optimizer": "ga-steady", "generation": self._told // self.population,
                                "evals": self._told, "failed": self._failed, "population": len(self.members),
                                **_stats([m.fitness.values[0] for m in self.members]),
                                "best_loss": best.fitness.values[0], "best_params": g.params(best)}

    def restore(self, history: Sequence[Result], pending: Sequence[dict]) -> None:
        """Resumed experiment: the earlier results fill the population; points pending from
        before count as seeded, so no more random individuals are drawn than the first
        session would have."""
        for p in pending:
            key = self.space.key(p)
            self._pending[key] = self._pending.get(key, 0) + 1
        self.tell(history)
        self._seeded = min(self.population, len(history) + len(pending))
        while self._initial and self._seeded > 0 and len(self._initial) > self.population - self._seeded:
            self._initial.pop(0)

    def log(self) -> dict | None:
        rec, self._record = self._record, None
        return rec
