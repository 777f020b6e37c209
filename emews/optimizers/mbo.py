"""Model-based optimization (mlrMBO-style): by default a GP with Optuna GPSampler's recipe.

::

    tell(results) ──▶ observations (failures imputed) ──▶ fit ONE surrogate per data change
                                                                │
    ask(q) ◀── decode ◀── greedy pick of q candidates ◀── acquisition on N candidates
                          (exclusion radius around         (global random + local moves
                           pending and picked points)        around the best points)

Why not ``skopt.Optimizer.ask(q, "cl_min")``: it refits the model once per proposed point
(a constant-liar fantasy each), so a batch of 1,000 at 5,000 observations costs 1,000 forest
fits. Here a batch costs one fit and one prediction over the candidate set; batch diversity
and asynchrony come from

* mlrMBO's multi-point LCB (``acquisition="lcb"``): each point of a batch optimizes
  ``mean - lambda * std`` with its own ``lambda`` drawn from an exponential distribution
  (mean ``kappa``), so a batch spans exploitation to exploration from one model;
* an exclusion radius in the encoded space: no proposal lies closer than ``exclusion`` to a
  point still being evaluated (pending = asked but not told) or to one picked earlier in
  the same batch, and none repeats an evaluated point;
* with the GP (``surrogate="auto"``): a kriging believer — each pick, and each pending
  point, is believed observed at its predicted mean before the next pick. While the GP is
  exact and candidates x conditioning points^2 x batch stays under ``_sequential_work``, the
  GP is conditioned on each belief and the acquisition optimized again for the next pick
  (``_sequential``); beyond, rank-one variance updates over fixed candidates while that work
  stays under ``_believer_work``; beyond that, the exclusion radius alone. The GP's best
  candidates are first polished by local moves, then optimized (log-EI, L-BFGS-B on the
  ordered columns, coordinate moves on the discrete and categorical ones: ``_acquire.py``).

Several objectives: for 2 or 3 on the GP, expected hypervolume improvement (one GP per
objective, the exact box form, a kriging-believer batch: ``_ehvi.py``); otherwise ParEGO (one
random augmented-Chebyshev scalarization per proposal, reusing all of the above: ``_multi.py``).
Constraints: a feasibility model whose probability multiplies either acquisition.

The GP scales by never refitting what it need not (``_gp.py``): kernel hyperparameters on
at most 300 observations, kept until the data grew by 20 %; conditioning on all of them,
exact up to ``gp_max_points`` and through ``gp_inducing`` inducing points beyond.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import log_ndtr, ndtr

from ..space import Space
from ..task import CANCELLED, Result
from ._acquire import AcquisitionOptimizer, lcb, log_ei
from ._base import Optimizer
from ._model import BelieverSurrogate, GradientSurrogate
from .._pareto import nondominated
from ._ehvi import REFERENCE, StackedModels, box_decomposition, ehvi, ehvi_acquisition, normalization
from ._multi import FeasibilityModel, WeightLattice, chebyshev, normalized
from ._multi import objective_vector as _objective_vector
from ._surrogates import SURROGATES, make_surrogate
from ._unit import UnitGrid

__all__ = ["MBO"]

_ACQUISITIONS = ("ei", "lcb", "pi")
_DESIGNS = ("lhs", "sobol", "random")
_IMPUTE = ("worst", "penalty")
_TRANSFORMS = ("rank", "log", "none", "power")
_MULTI_METHODS = ("auto", "ehvi", "parego")


def _choice(setting: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"MBO setting {setting}={value!r}: expected one of {', '.join(map(repr, allowed))}")
    return value


def _int_setting(setting: str, value: Any, minimum: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"MBO setting {setting}={value!r}: expected an integer >= {minimum}")
    return int(value)


def _float_setting(setting: str, value: Any, minimum: float = 0.0, allow_none: bool = False,
                   maximum: float = math.inf) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or not minimum <= value <= maximum:
        raise ValueError(f"MBO setting {setting}={value!r}: expected a number in [{minimum}, {maximum}]")
    return float(value)


def _min_distance(E: np.ndarray, P: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Euclidean distance from each row of ``E`` to its nearest row of ``P``."""
    e2 = (E * E).sum(1)
    best = np.full(len(E), np.inf)
    for s in range(0, len(P), chunk):
        B = P[s : s + chunk]
        d2 = e2[:, None] + (B * B).sum(1)[None, :] - 2.0 * (E @ B.T)
        best = np.minimum(best, d2.min(axis=1))
    return np.sqrt(np.maximum(best, 0.0))


def _free(dmin: np.ndarray, seen: np.ndarray, radius: float) -> tuple[np.ndarray, float]:
    """Candidates a pick may take: farther than ``radius`` from every pending and picked point
    and not evaluated, the radius halved while none is (returned, it stays halved for the
    next picks); else any not exactly on one; in a tiny discrete space all taken, any."""
    free = (dmin > radius) & ~seen
    while not free.any() and radius > 1e-6:
        radius /= 2
        free = (dmin > radius) & ~seen
    if not free.any():
        free = dmin > 0
    if not free.any():  # a tiny discrete space, all of it taken: repeat the best
        free = np.ones(len(dmin), dtype=bool)
    return free, radius


def _transform(y: np.ndarray, how: str) -> np.ndarray:
    """The losses as the surrogate learns them, standardized (mean 0, std 1).

    ``rank``: normal scores of the ranks (a Gaussian copula: only the order of the losses
    matters, so one diverged run at 1e6 does not flatten everything else); ``log``:
    ``log(y - min + spread/1000)``; ``none``: the losses themselves.
    """
    if how == "rank":
        from scipy.stats import norm, rankdata

        z = norm.ppf((rankdata(y) - 0.5) / len(y))
    elif how == "power":
        from scipy.stats import yeojohnson

        z0 = (y - y.mean()) / (float(y.std()) or 1.0)
        with np.errstate(all="ignore"):
            z = yeojohnson(z0)[0]
        if not np.isfinite(z).all():
            z = z0
    elif how == "log":
        spread = float(np.ptp(y)) or 1.0
        z = np.log(y - y.min() + spread / 1000)
    else:
        z = y.astype(float)
    std = float(z.std()) or 1.0
    return (z - z.mean()) / std


#: the key under which a batch's earlier picks are pending for its later ones (no space key looks so)
_BATCH = "\0batch"


class MBO(Optimizer):
    """Model-based optimization: a surrogate, an acquisition function, batches from one fit.

    The default surrogate is kriging (a GP with a nugget) on every space, categorical and bool
    dimensions through a Hamming term of the kernel, as Optuna's GPSampler;
    ``benchmarks/quality/run.py`` compares it with Optuna's TPE and GPSampler and DeepHyper's
    CBO.

    Settings:
        surrogate: ``"auto"`` (default: ``"gp"``), ``"gp"`` (Gaussian process: ARD Matern
            5/2 with a fitted nugget, mlrMBO's kriging; an ordinal is its ordered index; a
            categorical or bool dimension adds 1 / length scale^2 to the squared distance
            where the values differ; hyperparameters by maximum a posteriori under
            GPSampler's priors), ``"rf"`` (random forest, mlrMBO's choice with categories;
            the GP beat it on the mixed problems of ``benchmarks/quality/``), ``"et"`` (extra
            trees), ``"gbrt"`` (quantile gradient boosting).
        acquisition: ``"ei"`` (expected improvement), ``"lcb"`` (lower confidence bound;
            a batch draws one exploration weight per point, mlrMBO's qLCB) or ``"pi"``
            (probability of improvement). Default ``"ei"``.
        kappa: LCB exploration weight (the mean of the per-point weights in a batch). Default 1.
        xi: EI/PI improvement margin, in standard deviations of the transformed losses. Default 0.
        initial_design: ``"lhs"`` (Latin hypercube), ``"sobol"`` or ``"random"``.
        n_initial: size of the initial design (default ``max(2 * dims + 2, first ask)``;
            an initial design is never smaller than the first batch asked for).
        impute: failed and timed-out evaluations count as the ``"worst"`` loss seen so far
            (default) or as ``penalty``. Cancelled ones are forgotten.
        penalty: the loss of a failed evaluation when ``impute="penalty"``.
        n_candidates: candidate points scored per proposal (at least ``20 * q`` for a batch
            of ``q``; with several objectives past 100 observations, a batch of ``q`` picks
            shares them, each pick scoring ``n_candidates / q`` but at least 1000). Default 5000.
        local_fraction: share of candidates made by perturbing the best points found so far
            (the rest are uniform samples). Default 0.8.
        exclusion: radius, in the encoded unit space scaled by 1/sqrt(columns), around
            pending points and points picked for the same batch, where no proposal may land.
            Shrinks when a batch does not fit. Default 0.02.
        transform: what the surrogate learns: ``"auto"`` (default: ``"power"`` for the GP,
            ``"rank"`` for the others), ``"rank"`` (normal scores of the loss ranks: robust to
            diverged runs and heavy tails, but flat near the optimum), ``"power"`` (a
            Yeo-Johnson transform fitted by maximum likelihood: log-like on heavy tails,
            near-linear otherwise), ``"log"`` or ``"none"``.
        random_fraction: share of proposals drawn uniformly at random instead (mlrMBO's
            interleaved random points; a guard against a surrogate that over-exploits).
            Default 0.
        n_estimators: trees of the forest / boosting stages (rf, et, gbrt). Default 100.
        n_jobs: threads for forest fits and predictions (-1: every core). Default -1.
        gp_max_points: observations a GP conditions on exactly (Cholesky); with more, an
            inducing-point (DTC) approximation conditions on all of them through
            ``gp_inducing`` of them (the best half and a random sample). The kernel
            hyperparameters are fitted on at most 300 observations (the best half and a
            random sample), warm-started from the previous fit, and past 300 observations
            refitted only when the data has grown by 20 % since: a proposal at 5,000
            observations usually costs a sparse conditioning and one prediction. Default 500.
        gp_inducing: inducing points of the sparse GP. Default 300.
        max_fit_points: observations the surrogate is fitted on at most; beyond, the best
            half of them and a random sample of the rest, drawn again at each fit. This bounds
            a proposal's cost on a search of 100,000s of evaluations (the sparse GP's
            conditioning is linear in the points it sees, a forest's fit more than that),
            where the points far from the best add little to where the next ones go.
            Default 20,000.
        blas_threads: threads of the linear algebra (numpy's BLAS) while proposing. Default
            1: the matrices are small (at most a few hundred columns), and on a machine whose
            cores are busy with other work, idle BLAS threads spin: a proposal at 200,000
            observations took 3.4-4.2 s with the default threads and 1.2-1.5 s with one, on
            the 2-core development machine at load average 6. ``None`` leaves numpy's own.
        multi_method: how several objectives are searched: ``"auto"``, ``"ehvi"`` or
            ``"parego"`` (below). Default ``"auto"``.

    Several objectives and constraints are learned from the results told (their number and
    whether constraints exist, never from settings; ``multi_method`` only chooses how):

    * results whose ``objectives`` hold 2 or more values (each to minimize), with
      ``multi_method``:

      - ``"auto"`` (default): EHVI for 2 or 3 objectives without constraints when the
        surrogate is the GP, ParEGO otherwise (4+ objectives: the boxes of the non-dominated
        region grow as the front to the power ``m - 1``; with constraints ParEGO reached more
        of C2-DTLZ2's hypervolume, 0.65 against 0.55);
      - ``"ehvi"``: expected hypervolume improvement (``_ehvi.py``), the GP only. One GP per
        objective, each normalized from the best value seen (0) to a fifth of the way from
        the front's nadir to the worst value seen (1), reference point 1.1; a batch picks by
        EHVI (times the probability of feasibility), believes each pick observed at its
        predicted means and picks again. Until a feasible point with objectives is known,
        ParEGO searches. At 100 evaluations (8 in flight, median of 5 seeds) it reached
        0.99 of ZDT1's true hypervolume and 0.74 of DTLZ2's, against ParEGO's 0.97 and 0.67;
      - ``"parego"``: ParEGO (Knowles 2006; mlrMBO's default multi-objective method). Each objective is normalized to [0, 1]
      by its observed range; each proposal draws a weight vector ``w`` from the simplex
      lattice (at least 100 vectors) and the model learns the augmented Chebyshev
      scalarization ``max_i(w_i f_i) + 0.05 * sum_i(w_i f_i)``; the ``q`` proposals of a
      batch take ``q`` different weight vectors (mlrMBO's multi-point ParEGO), each pick a
      pending point for the later ones. Up to 100 observations each pick searches its own
      kernel hyperparameters, beyond the batch's later picks keep the first one's.
    * results whose ``violation`` is not None (one objective or several): a GP on
      feasibility labels (``_multi.FeasibilityModel``); the acquisition is multiplied by the
      probability of feasibility (added to log EI) and the incumbent is the best feasible
      point; until a feasible point is seen, the model learns the violation itself.
    * failed results (no objectives) are imputed as with one objective (``impute``).

    Seeds: with a seed, ``mode: batch`` repeats exactly for the same ``batch_size`` (a batch is
    told in its own order, whatever order its results arrive in). In ``mode: async`` each
    proposal follows the results that have arrived when a worker frees up, an order set by
    timing that cannot repeat; only the initial design repeats by task id (its first
    ``n_initial`` points, when ``n_initial`` is at least the worker count: the design is never
    smaller than the first ask).

    Example:
        >>> from emews.space import Space
        >>> space = Space.from_dict({"x": {"type": "real", "low": -2, "high": 2}})
        >>> opt = MBO(space, seed=0, n_initial=4)
        >>> len(opt.ask(4))
        4
    """

    lookahead = 0  # proposals depend on the latest results: never ask ahead of free workers
    multi_objective = True  # results with several objectives: EHVI or ParEGO (multi_method)

    def __init__(
        self,
        space: Space,
        seed: int | None = None,
        *,
        surrogate: str = "auto",
        acquisition: str = "ei",
        kappa: float = 1.0,
        xi: float = 0.0,
        initial_design: str = "lhs",
        n_initial: int | None = None,
        impute: str = "worst",
        penalty: float | None = None,
        n_candidates: int = 5000,
        local_fraction: float = 0.8,
        exclusion: float = 0.02,
        transform: str = "auto",
        random_fraction: float = 0.0,
        n_estimators: int = 100,
        n_jobs: int = -1,
        gp_max_points: int = 500,
        gp_inducing: int = 300,
        max_fit_points: int = 20_000,
        blas_threads: int | None = 1,
        multi_method: str = "auto",
    ):
        super().__init__(space, seed)
        self.surrogate = _choice("surrogate", surrogate, ("auto", *SURROGATES))
        self.acquisition = _choice("acquisition", acquisition, _ACQUISITIONS)
        self.kappa = _float_setting("kappa", kappa)
        self.xi = _float_setting("xi", xi)
        self.initial_design = _choice("initial_design", initial_design, _DESIGNS)
        self.n_initial = _int_setting("n_initial", n_initial, 1, allow_none=True)
        self.impute = _choice("impute", impute, _IMPUTE)
        self.penalty = _float_setting("penalty", penalty, -math.inf, allow_none=True)
        if self.impute == "penalty" and self.penalty is None:
            raise ValueError("MBO setting impute='penalty' needs the setting penalty (the loss of a failed evaluation)")
        self.n_candidates = _int_setting("n_candidates", n_candidates, 10)
        self.local_fraction = _float_setting("local_fraction", local_fraction, 0.0, maximum=1.0)
        self.exclusion = _float_setting("exclusion", exclusion, 0.0)
        self.transform = _choice("transform", transform, ("auto", *_TRANSFORMS))
        self.random_fraction = _float_setting("random_fraction", random_fraction, 0.0, maximum=1.0)
        self.n_estimators = _int_setting("n_estimators", n_estimators, 1)
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
            raise ValueError(f"MBO setting n_jobs={n_jobs!r}: expected a positive integer or -1")
        self.n_jobs = n_jobs
        self.gp_max_points = _int_setting("gp_max_points", gp_max_points, 10)
        self.gp_inducing = _int_setting("gp_inducing", gp_inducing, 10)
        self.max_fit_points = _int_setting("max_fit_points", max_fit_points, 10)
        self.blas_threads = _int_setting("blas_threads", blas_threads, 1, allow_none=True)
        self.multi_method = _choice("multi_method", multi_method, _MULTI_METHODS)

        self.grid = UnitGrid(space)
        #: the surrogate fitted: ``surrogate``, or the GP for ``"auto"``
        self.model_name = self.surrogate
        if self.surrogate == "auto":
            self.model_name = "gp"
        if self.multi_method == "ehvi" and self.model_name != "gp":
            raise ValueError(f"MBO setting multi_method='ehvi' needs surrogate 'gp' (or 'auto'), not {self.surrogate!r}; "
                             "multi_method 'parego' works with every surrogate")
        #: the transform applied: ``transform``, or the surrogate's own for ``"auto"``
        self.transform_name = self.transform
        if self.transform == "auto":
            self.transform_name = "power" if self.model_name == "gp" else "rank"
        # observations: unit rows, loss (nan = failed, imputed at fit time)
        self._U: list[np.ndarray] = []
        self._y: list[float] = []
        self._keys: set[str] = set()
        self._U_array = np.empty((0, self.grid.n))  # _U as an array, see _observed
        self._seen_lookup: set[bytes] = set()  # see _seen_rows
        self._seen_count = 0
        self._pending: dict[str, list[np.ndarray]] = {}  # key -> unit rows asked, not told
        self._design: np.ndarray | None = None
        self._design_next = 0
        self._model = None
        self._model_size = -1  # observations the model was fitted on
        self._model_scalar = 0  # ... and the scalarization (``_scalar_id``)
        self._best_z = 0.0  # the best observed loss, transformed as the model sees it
        self._record: dict | None = None
        self._fits = 0
        self._proposed = 0  # model-phase proposals so far (paces the interleaved random points)
        # several objectives and constraints (see _multi.py), learned from the results told
        self._objectives: list[np.ndarray | None] = []  # per observation: its objective vector (None: failed)
        self._violation: list[float] = []  # per observation: its violation (nan: unknown)
        self._n_objectives = 1
        self._constrained = False
        self._scalar: np.ndarray | None = None  # the losses the model learns in place of _y (nan: failed)
        self._feasible: np.ndarray | None = None  # with constraints: which observations are feasible
        self._scalar_id = 0  # changes with every scalarization: the model is fitted again
        self._feasibility: FeasibilityModel | None = None
        self._feasibility_size = -1  # observations the feasibility model was fitted on
        self._pof_cache: tuple | None = None  # (feasibility model, rows, their log PoF): see _log_pof
        self._share_hyper = False  # the model keeps the previous one's kernel hyperparameters
        self._pick_candidates: int | None = None  # ParEGO: candidates scored per pick of a batch
        self._weights: WeightLattice | None = None
        self._ehvi_models: list | None = None  # EHVI: one GP per objective ...
        self._ehvi_size = -1  # ... fitted on this many observations
        self._ehvi_scaling: tuple[np.ndarray, np.ndarray] | None = None  # ... on objectives normalized so

    # -- ask/tell ----------------------------------------------------------------------------
    def ask(self, n: int) -> list[dict]:
        if n <= 0:
            return []
        if self.blas_threads is None:
            return self._ask(n)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(self.blas_threads, user_api="blas"):
            return self._ask(n)

    def _ask(self, n: int) -> list[dict]:
        t0 = time.perf_counter()
        U = self._from_design(n)
        if len(U) < n:
            more = self._propose(n - len(U))
            U = np.vstack([U, more]) if len(U) else more
        params = self.grid.params(U)
        for u, p in zip(U, params):
            self._pending.setdefault(self.space.key(p), []).append(u)
        if self._record is not None:
            self._record["propose_seconds"] = round(time.perf_counter() - t0, 4)
            self._record["proposed"] = n
        return params

    def tell(self, results: Sequence[Result]) -> None:
        for r in results:
            key = self.space.key(r.params)
            rows = self._pending.get(key)
            if rows:
                rows.pop()
                if not rows:
                    del self._pending[key]
            if r.status == CANCELLED:
                continue  # never ran: nothing learned
            try:
                u = self.grid.unit([r.params])[0]
            except (KeyError, TypeError, ValueError):  # not a point of this space: nothing to learn
                continue
            self._U.append(u)
            self._y.append(float(r.loss) if r.ok and r.loss is not None and math.isfinite(r.loss) else math.nan)
            self._keys.add(key)
            self._objectives.append(_objective_vector(r))
            if self._objectives[-1] is not None:
                self._n_objectives = max(self._n_objectives, len(self._objectives[-1]))
            if r.violation is not None:
                self._constrained = True
            self._violation.append(float(r.violation) if r.ok and r.violation is not None else math.nan)

    def log(self) -> dict | None:
        """A summary after each model fit: observations, failures, best loss, seconds."""
        rec, self._record = self._record, None
        return rec

    # -- initial design ------------------------------------------------------------------------
    def _from_design(self, n: int) -> np.ndarray:
        if self._design is None:
            size = self.n_initial if self.n_initial is not None else 2 * self.grid.n + 2
            if not self._y:
                size = max(size, n)  # without data, the first batch has nothing better to follow
            size = max(0, size - len(self._y))  # observations told before the first ask count
            self._design = self.grid.snap(self._unit_design(size)) if size > 0 else np.empty((0, self.grid.n))
        take = self._design[self._design_next : self._design_next + n]
        self._design_next += len(take)
        return take

    def _unit_design(self, size: int) -> np.ndarray:
        d = self.grid.n
        if self.initial_design == "random":
            return self.rng.random((size, d))
        if self.initial_design == "sobol":
            from scipy.stats import qmc

            try:
                sobol = qmc.Sobol(d, scramble=True, rng=self.rng)
            except TypeError:  # scipy < 1.15
                sobol = qmc.Sobol(d, scramble=True, seed=self.rng)
            m = int(math.ceil(math.log2(max(size, 2))))
            return sobol.random_base2(m)[:size]
        # Latin hypercube: one point per row-stratum in every column
        cells = np.argsort(self.rng.random((size, d)), axis=0)
        return (cells + self.rng.random((size, d))) / size

    # -- model ---------------------------------------------------------------------------------
    def _observed(self) -> np.ndarray:
        """The observations' unit rows as one array (extended, not rebuilt, as they come)."""
        have = len(self._U_array)
        if have < len(self._U):
            self._U_array = np.vstack([self._U_array, np.asarray(self._U[have:], dtype=float)])
        return self._U_array

    def _seen_rows(self) -> set[bytes]:
        """Snapped encodings (rounded) of every observation, extended as they come."""
        have = self._seen_count
        if have < len(self._U):
            obs = self.grid.encode(self.grid.snap(self._observed()[have:]))
            self._seen_lookup.update(row.tobytes() for row in np.round(obs, 9))
            self._seen_count = len(self._U)
        return self._seen_lookup

    def _training_data(self) -> tuple[np.ndarray, np.ndarray] | None:
        y = np.asarray(self._y if self._scalar is None else self._scalar, dtype=float)
        ok = np.isfinite(y)
        if ok.sum() < 2 or np.ptp(y[ok]) == 0:
            return None
        fill = float(y[ok].max()) if self.impute == "worst" else float(self.penalty)  # type: ignore[arg-type]
        y = np.where(ok, y, fill)
        return self._observed(), y

    #: observations up to which every fit searches the GP's kernel hyperparameters again
    _always_refit = 300
    #: ParEGO: observations up to which each pick of a batch searches its own hyperparameters
    _multi_refit = 100
    #: ParEGO: the fewest candidates a pick of a batch scores (the batch shares ``n_candidates``)
    _multi_candidates = 1000

    def _gp_columns(self) -> tuple[np.ndarray, np.ndarray]:
        """Length-scale group and weight of each encoded column: a categorical's one-hot
        columns share one length scale, weighted so that a differing category adds 1 to the
        squared distance (a Hamming term); a bool's (0.25 or 0.75) weighted 2 to the same end."""
        groups, weights = [], []
        for k, d in enumerate(self.grid.dims):
            w = d.width
            groups += [k] * w
            if self.grid.categorical[k]:
                weights += [2.0] if w == 1 else [1.0 / math.sqrt(2.0)] * w
            else:
                weights += [1.0] * w
        return np.asarray(groups, dtype=int), np.asarray(weights)

    def _fit(self) -> bool:
        """Fit the surrogate when observations changed since the last fit; False when too few."""
        if self._model is not None and self._model_size == len(self._y) and self._model_scalar == self._scalar_id:
            return True
        data = self._training_data()
        if data is None:
            return False
        U, y = data
        raw = np.asarray(self._y if self._scalar is None else self._scalar, dtype=float)
        feasible = self._feasible
        if len(y) > self.max_fit_points:
            keep = self._fit_subset(y)
            U, y, raw = U[keep], y[keep], raw[keep]
            feasible = None if feasible is None else feasible[keep]
        z = _transform(y, self.transform_name)
        t0 = time.perf_counter()
        model = make_surrogate(self.model_name, random_state=int(self.rng.integers(2**31 - 1)),
                               n_estimators=self.n_estimators, n_jobs=self.n_jobs, gp_max_points=self.gp_max_points,
                               gp_inducing=self.gp_inducing, previous=self._model,
                               gp_columns=self._gp_columns(),
                               gp_always_refit=0 if self._share_hyper else self._always_refit)
        model.fit(self.grid.encode(U), z)
        self._fits += 1
        self._model, self._model_size, self._model_scalar = model, len(self._y), self._scalar_id
        finite = raw[np.isfinite(raw)]
        incumbents = np.isfinite(raw)
        if feasible is not None and (incumbents & feasible).any():  # the incumbent: the best feasible point
            incumbents = incumbents & feasible
        self._best_z = float(z[incumbents].min())
        self._record = {
            "optimizer": "mbo", "fit": self._fits, "observations": len(self._y), "fitted_on": len(y),
            "failed": int(len(raw) - len(finite)), "best": float(finite.min()),
            "surrogate": self.model_name, "fit_seconds": round(time.perf_counter() - t0, 4),
        }
        return True

    def _fit_subset(self, y: np.ndarray) -> np.ndarray:
        """Indices of ``max_fit_points`` observations: the best half (the best one always
        among them) and a uniform sample of the others, in their original order."""
        size = self.max_fit_points
        half = size // 2
        best = np.argpartition(y, half - 1)[:half]
        rest = np.setdiff1d(np.arange(len(y)), best, assume_unique=True)
        return np.sort(np.concatenate([best, self.rng.choice(rest, size - half, replace=False)]))

    # -- proposals -----------------------------------------------------------------------------
    #: scales (in unit-cube widths) of local moves, and how many of the best points they start from
    _scales = (0.2, 0.1, 0.05, 0.02, 0.005)
    _top = 10

    def _propose(self, q: int) -> np.ndarray:
        if self._n_objectives == 1 and not self._constrained:
            return self._propose_from_model(q)
        if self._n_objectives == 1:  # constraints on one objective: the loss, a feasibility model
            self._scalarize(None)
            return self._propose_from_model(q)
        if self._uses_ehvi():
            picks = self._propose_ehvi(q)
            if picks is not None:
                return picks
        # ParEGO: each proposal of the batch on its own scalarization; the earlier picks of
        # the batch are pending points for the later ones (believed, kept apart)
        if self._weights is None or self._weights.m != self._n_objectives:
            self._weights = WeightLattice(self._n_objectives)
        picks: list[np.ndarray] = []
        try:
            for j, w in enumerate(self._weights.draw(q, self.rng)):
                self._scalarize(w)
                # past _multi_refit observations the batch's later picks keep the first one's
                # kernel hyperparameters (a conditioning, not a search, per scalarization)
                self._share_hyper = j > 0 and len(self._y) > self._multi_refit
                # past _multi_refit observations the batch shares the candidate budget (each
                # pick still polishes its best)
                if len(self._y) > self._multi_refit:
                    self._pick_candidates = min(self.n_candidates, max(self._multi_candidates, self.n_candidates // q))
                u = self._propose_from_model(1)[0]
                picks.append(u)
                self._pending.setdefault(_BATCH, []).append(u)
        finally:
            self._pending.pop(_BATCH, None)
            self._share_hyper = False
            self._pick_candidates = None
        if self._record is not None:
            self._record["method"] = "parego"
        return np.asarray(picks)

    # -- several objectives: expected hypervolume improvement (see _ehvi.py) ---------------------
    #: EHVI: candidates scored per batch (uniform and local moves around the front), polished
    _ehvi_candidates = 2000
    #: EHVI: starts of the gradient steps per pick (past ``_multi_refit`` observations, the
    #: batch's later picks take ``_ehvi_later_starts`` and half the iterations: the gradient
    #: steps were most of a proposal's cost)
    _ehvi_starts = 5
    _ehvi_later_starts = 1
    #: EHVI with 3 or more objectives: past this many front points, ParEGO proposes (the boxes
    #: grow about as front^1.5: 1,500 at 100 points, 4,200 at 200, 11,500 at 400, where cutting
    #: them alone took 4 s)
    _ehvi_max_front = 150

    def _uses_ehvi(self) -> bool:
        """EHVI when asked for, or (``multi_method="auto"``) for 2 or 3 objectives on the GP
        without constraints: where it won in benchmarks/quality/multi.py (with C2-DTLZ2's
        constraint ParEGO reached more hypervolume)."""
        if self.multi_method == "parego" or self.model_name != "gp":
            return False
        return self.multi_method == "ehvi" or (self._n_objectives <= 3 and not self._constrained)

    def _fit_ehvi(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """One GP per normalized objective (refitted when observations changed); returns the
        unit rows of the front, its normalized objectives and the reference point, or None
        while no feasible point with objectives is known (ParEGO then searches for one)."""
        n = len(self._y)
        have = np.fromiter((f is not None for f in self._objectives), bool, n)
        if have.sum() < 2:
            return None
        F = np.asarray([f for f in self._objectives if f is not None], dtype=float)
        ok = np.ones(len(F), dtype=bool)
        if self._constrained:
            viol, known = self._violations()
            ok = viol[have] <= 0
            self._fit_feasibility(known, viol)
            if not ok.any():
                return None
        front_mask = np.zeros(len(F), dtype=bool)
        front_mask[np.flatnonzero(ok)[nondominated(F[ok])]] = True
        U = self._observed()
        if self._ehvi_size != n:
            lo, span = normalization(F, F[front_mask])
            Z = (F - lo) / span
            # failed evaluations: the worst normalized value seen, in every objective (impute="worst")
            Y = np.tile(Z.max(axis=0), (n, 1))
            Y[have] = Z
            E = self.grid.encode(U)
            t0 = time.perf_counter()
            models = []
            for i in range(Y.shape[1]):
                previous = self._ehvi_models[i] if self._ehvi_models and i < len(self._ehvi_models) else None
                model = make_surrogate("gp", random_state=int(self.rng.integers(2**31 - 1)),
                                       gp_max_points=self.gp_max_points, gp_inducing=self.gp_inducing,
                                       previous=previous, gp_columns=self._gp_columns(),
                                       gp_always_refit=self._always_refit)
                models.append(model.fit(E, Y[:, i]))
            self._fits += 1
            self._ehvi_models, self._ehvi_size, self._ehvi_scaling = models, n, (lo, span)
            self._record = {
                "optimizer": "mbo", "method": "ehvi", "fit": self._fits, "observations": n,
                "failed": int(n - have.sum()), "front": int(front_mask.sum()),
                "surrogate": "gp", "fit_seconds": round(time.perf_counter() - t0, 4),
            }
        lo, span = self._ehvi_scaling
        front_u = U[have][front_mask]
        return front_u, (F[front_mask] - lo) / span, np.full(F.shape[1], REFERENCE)

    def _propose_ehvi(self, q: int) -> np.ndarray | None:
        """A batch by EHVI (times the probability of feasibility), each pick believed observed
        at its predicted means before the next (the GPs conditioned while exact, the means
        joining the front); pending points are believed first. None (ParEGO proposes): no
        feasible front yet, or, with 3+ objectives, one of more than ``_ehvi_max_front`` points."""
        fitted = self._fit_ehvi()
        if fitted is None:
            return None
        front_u, front, ref = fitted
        if front.shape[1] >= 3 and len(front) > self._ehvi_max_front:
            return None
        models = list(self._ehvi_models)
        exact = all(isinstance(mdl, BelieverSurrogate) and mdl.exact for mdl in models)
        pending = [u for rows in self._pending.values() for u in rows]

        def believe(u: np.ndarray) -> None:
            nonlocal front, models
            e = self.grid.encode(np.asarray(u)[None, :])
            m = np.array([mdl.predict(e)[0][0] for mdl in models])
            front = np.vstack([front, m[None, :]])
            if exact:
                models = [mdl.conditioned(e, m[i : i + 1]) for i, mdl in enumerate(models)]

        for u in pending:
            believe(u)
        # candidates: uniform, and local moves around the front (the batch shares them); each
        # one's predictions are kept (computed again only when a belief changed the GPs)
        n = max(self._ehvi_candidates, 20 * q)
        n_local = int(round(n * self.local_fraction))
        C = np.empty((0, self.grid.n))
        E = self.grid.encode(C)
        mu = np.empty((0, len(models)))
        sd = np.empty_like(mu)
        lp = np.empty(0)
        dmin = np.empty(0)
        seen = np.empty(0, dtype=bool)
        scale = 1.0 / math.sqrt(max(1, E.shape[1]))
        picks: list[np.ndarray] = []

        def add(new: np.ndarray) -> None:
            nonlocal C, E, mu, sd, lp, dmin, seen
            En = self.grid.encode(new)
            m_, s_ = StackedModels(models).predict(En)
            lpn = self._log_pof(En)
            kept = picks + pending
            C, E = np.vstack([C, new]), np.vstack([E, En])
            mu, sd = np.vstack([mu, m_]), np.vstack([sd, s_])
            lp = np.r_[lp, np.zeros(len(En)) if lpn is None else lpn]
            dmin = np.r_[dmin, _min_distance(En, self.grid.encode(np.asarray(kept))) * scale
                         if kept else np.full(len(En), np.inf)]
            seen = np.r_[seen, self._seen(En)]

        def score(rows: slice | np.ndarray = slice(None)) -> np.ndarray:
            with np.errstate(divide="ignore"):
                value = np.log(ehvi(mu[rows], sd[rows], *boxes)) + lp[rows]
            if not np.isfinite(value).any():  # nothing expected anywhere: the best predicted sum
                value = -mu[rows].sum(axis=1)
            return value

        add(self.grid.snap(np.vstack([self.rng.random((n - n_local, self.grid.n)),
                                      self._perturb(front_u, None, n_local, self._scales)])))
        radius = self.exclusion
        boxes = None
        for _ in range(q):
            boxes = box_decomposition(front, ref)
            s = score()
            # polish the best free candidates by local moves (the acquisition is smooth)
            k = min(16, len(C))
            for step in self._polish:
                free, radius = _free(dmin, seen, radius)
                top = C[np.argsort(-np.where(free, s, -np.inf), kind="stable")[:k]]
                before = len(C)
                add(self.grid.snap(np.vstack([self._perturb(top, None, 64, (step,)),
                                              self._perturb(top, None, 64, (step, step / 4))])))
                s = np.r_[s, score(slice(before, None))]
            # then gradient steps on log EHVI (+ log PoF) from the best few (GPSampler's recipe)
            free, radius = _free(dmin, seen, radius)
            if self._ehvi_starts > 0:
                stack = models + ([self._feasibility.model] if self._feasibility is not None else [])
                acq = ehvi_acquisition(*boxes, len(models), self._feasibility is not None)
                later = bool(picks) and len(self._y) > self._multi_refit
                opt = AcquisitionOptimizer(self.grid, StackedModels(stack), acq,
                                           maxiter=self._maxiter // 2 if later else self._maxiter)
                k = self._ehvi_later_starts if later else self._ehvi_starts
                starts = np.argsort(-np.where(free, s, -np.inf), kind="stable")[:k]
                before = len(C)
                add(opt.optimize(C[starts])[0])
                s = np.r_[s, score(slice(before, None))]
                free, radius = _free(dmin, seen, radius)
            i = int(np.argmax(np.where(free, s, -np.inf)))
            picks.append(C[i])
            dmin = np.minimum(dmin, np.sqrt(((E - E[i]) ** 2).sum(-1)) * scale)
            believe(C[i])
            if exact:  # the GPs were conditioned on the belief: every prediction changes
                mu, sd = StackedModels(models).predict(E)
        if self._record is not None:
            self._record["boxes"] = len(boxes[0])
        return np.asarray(picks)

    def _scalarize(self, weights: np.ndarray | None) -> None:
        """Set what the model learns: the augmented Chebyshev scalarization of the normalized
        objectives with ``weights`` (None: the loss), and, with constraints, which observations
        are feasible and the feasibility model. Until a feasible point is seen, the model
        learns the violation itself (the search first looks for a feasible region)."""
        n = len(self._y)
        scalar = np.asarray(self._y, dtype=float)
        if weights is not None:
            have = np.fromiter((f is not None for f in self._objectives), bool, n)
            scalar = np.full(n, math.nan)
            if have.any():
                F = np.asarray([f for f in self._objectives if f is not None], dtype=float)
                scalar[have] = chebyshev(normalized(F), weights)
        self._feasible = None
        if self._constrained:
            viol, known = self._violations()
            self._feasible = known & (viol <= 0)
            if not self._feasible.any():
                # nothing feasible yet: minimize the violation (an infinite one is imputed)
                scalar = np.where(known, np.where(np.isfinite(viol), viol, math.nan), math.nan)
                finite = scalar[np.isfinite(scalar)]
                if len(finite) and np.isnan(scalar[known]).any():
                    scalar = np.where(known & ~np.isfinite(scalar), 2.0 * float(finite.max()) + 1.0, scalar)
                self._feasible = None
            self._fit_feasibility(known, viol)
        self._scalar = None if weights is None and not self._constrained else scalar
        self._scalar_id += 1

    def _violations(self) -> tuple[np.ndarray, np.ndarray]:
        """Each observation's violation (nan: not known, a failed evaluation) and whether it
        is known (finite, or infinite: a constrained metric missing)."""
        viol = np.asarray(self._violation, dtype=float)
        return viol, np.isfinite(viol) | (viol == math.inf)

    def _fit_feasibility(self, known: np.ndarray, viol: np.ndarray) -> None:
        """The feasibility model on the observations whose violation is known (once per data
        size); None while every one is feasible or none is."""
        n = len(self._y)
        if self._feasibility_size == n:
            return
        self._feasibility_size = n
        feasible = known & (viol <= 0)
        if not feasible.any() or feasible.sum() == known.sum():
            self._feasibility = None
            return
        model = make_surrogate("gp", random_state=int(self.rng.integers(2**31 - 1)), gp_max_points=self.gp_max_points,
                               gp_inducing=self.gp_inducing, gp_columns=self._gp_columns(),
                               previous=self._feasibility.model if self._feasibility is not None else None,
                               gp_always_refit=self._always_refit)
        U = self._observed()[known]
        self._feasibility = FeasibilityModel(model).fit(self.grid.encode(U), viol[known])

    def _propose_from_model(self, q: int) -> np.ndarray:
        if not self._fit():
            return self.grid.snap(self.rng.random((q, self.grid.n)))
        n = max(self.n_candidates, 20 * q) if self._pick_candidates is None else self._pick_candidates
        C = self._candidates(n)
        E = self.grid.encode(C)
        mu, sd = self._model.predict(E)
        # interleaved random points: proposals number k, k+1/f, k+2/f, ... are uniform draws
        f = self.random_fraction
        done = self._proposed
        n_random = int(math.floor((done + q) * f + 1e-9) - math.floor(done * f + 1e-9))
        self._proposed += q
        n_global = n - (int(round(n * self.local_fraction)) if self._U else 0)
        believer = None
        if self.model_name == "gp":
            C, E, mu, sd = self._refine(C, E, mu, sd, q)
            C, E, mu, sd = self._optimize_acquisition(C, E, mu, sd)
            if not n_random:
                seq = self._sequential(C, E, mu, sd, q)
                if seq is not None:
                    return seq
            believer = self._believer(E, q)
            if believer is not None:
                mu, sd = believer.mu, believer.sd  # pending points believed
        if self.model_name == "gp" and believer is None:
            # too large: the believer works on the best candidates (and a few uniform ones to draw from)
            acq = self._acquisition(mu, sd, self.kappa, lp=self._log_pof(E))
            top = np.argsort(-acq, kind="stable")[: max(1000, 10 * q)]
            glob = np.arange(n_global)
            if n_random and n_global:
                glob = self.rng.choice(n_global, size=min(n_global, max(250, 10 * n_random)), replace=False)
            glob = glob[~np.isin(glob, top)] if n_random else glob[:0]
            keep = np.concatenate([glob, top])
            believer = self._believer(E[keep], q)
            if believer is not None:
                C, E, n_global = C[keep], E[keep], len(glob)
                mu, sd = believer.mu, believer.sd
        return C[self._select(E, mu, sd, q, n_random, n_global, believer)]

    #: the believer's budget: candidates x conditioning points, and that times the batch size
    _believer_size = 2e7
    _believer_work = 5e7

    def _believer(self, E: np.ndarray, q: int) -> _Believer | None:
        """A kriging believer over the candidates, when the batch and the model are small enough."""
        pending = [u for rows in self._pending.values() for u in rows]
        if q + len(pending) < 2:
            return None
        if not isinstance(self._model, BelieverSurrogate):
            return None
        rows = self._model.conditioning_points
        size = (len(E) + len(pending)) * rows
        if size > self._believer_size or size * (q + len(pending)) > self._believer_work:
            return None  # large batches: the exclusion radius alone keeps them apart
        P = self.grid.encode(np.asarray(pending)) if pending else np.empty((0, E.shape[1]))
        full = np.vstack([E, P])
        mu, sd, factors = self._model.predict_factors(full)
        b = _Believer(self._model, full, mu, sd, factors, self._best_z)
        for i in range(len(E), len(full)):  # pending points first: believed at their mean
            b.believe(i)
        b.mu, b.sd = b.mu[: len(E)], b.sd[: len(E)]
        b.rows = len(E)
        return b

    #: starts of the gradient-based optimization of the acquisition, and its iterations per round
    _starts = 10
    _maxiter = 50

    #: the sequential kriging believer: largest batch, candidates kept, starts re-optimized per pick
    _sequential_q = 64
    _sequential_keep = 1000
    _sequential_starts = 3
    _sequential_work = 3e9

    def _acquisition_fn(self, kappa: float, best: float) -> Callable:
        """The acquisition with its derivatives, for :class:`AcquisitionOptimizer`."""
        if self.acquisition == "lcb":
            return lambda m, s: lcb(m, s, kappa)
        return lambda m, s: log_ei(m, s, best, self.xi)

    def _sequential(self, C: np.ndarray, E: np.ndarray, mu: np.ndarray, sd: np.ndarray, q: int) -> np.ndarray | None:
        """A batch picked one point at a time, each believed observed at its predicted mean
        (the exact GP conditioned on it, hyperparameters kept) before the acquisition is
        optimized again for the next: GPSampler's handling of running trials. None when the
        model is sparse or the work (candidates x conditioning points^2 x batch) too large."""
        model = self._model
        if not isinstance(model, BelieverSurrogate) or not model.exact or q > self._sequential_q:
            return None
        pending = [u for rows in self._pending.values() for u in rows]
        n_cond = model.conditioning_points + len(pending) + q
        keep = min(len(E), self._sequential_keep)
        if n_cond > self.gp_max_points or keep * n_cond**2 * q > self._sequential_work:
            return None
        if self.acquisition == "lcb":
            kappas = self.rng.exponential(self.kappa, size=q)
            kappas[0] = self.kappa  # a batch of one is plain LCB
        else:
            kappas = np.full(q, self.kappa)
        best = self._best_z
        lp = self._log_pof(E)
        top = np.argsort(-self._acquisition(mu, sd, kappas[0], best, lp), kind="stable")[:keep]
        C, E, mu, sd = C[top], E[top], mu[top], sd[top]
        lp = None if lp is None else lp[top]
        scale = 1.0 / math.sqrt(max(1, E.shape[1]))
        dmin = np.full(len(E), np.inf)
        if pending:
            P = self.grid.encode(np.asarray(pending))
            m, _ = model.predict(P)
            model = model.conditioned(P, m)
            best = min(best, float(m.min()))
            dmin = _min_distance(E, P) * scale
        seen = self._seen(E)
        radius = self.exclusion
        picks = []
        for j in range(q):
            if (j or pending) and self.acquisition == "pi":
                mu, sd = model.predict(E)
            elif j or pending:
                mu, sd = model.predict(E)
                acq = self._acquisition(mu, sd, kappas[j], best, lp)
                starts = np.argsort(-acq, kind="stable")[: self._sequential_starts]
                opt = AcquisitionOptimizer(self.grid, model, self._acquisition_fn(kappas[j], best),
                                           maxiter=self._maxiter)
                new, _ = opt.optimize(C[starts])
                En = self.grid.encode(new)
                m, s = model.predict(En)
                C, E = np.vstack([C, new]), np.vstack([E, En])
                mu, sd = np.r_[mu, m], np.r_[sd, s]
                lp = None if lp is None else np.r_[lp, self._log_pof(En)]
                dmin = np.r_[dmin, _min_distance(En, self.grid.encode(np.asarray(picks + pending))) * scale
                             if picks or pending else np.full(len(En), np.inf)]
                seen = np.r_[seen, self._seen(En)]
            score = self._acquisition(mu, sd, kappas[j], best, lp)
            free, radius = _free(dmin, seen, radius)
            i = int(np.argmax(np.where(free, score, -np.inf)))
            picks.append(C[i])
            dmin = np.minimum(dmin, np.sqrt(((E - E[i]) ** 2).sum(-1)) * scale)
            if j + 1 < q:
                model = model.conditioned(E[i : i + 1], mu[i : i + 1])
                best = min(best, float(mu[i]))
        return np.asarray(picks)

    def _seen(self, E: np.ndarray) -> np.ndarray:
        """Which encoded rows repeat an evaluated point (exact repeats are only possible on
        discrete columns: snapped encodings are compared)."""
        if not self._keys:
            return np.zeros(len(E), dtype=bool)
        lookup = self._seen_rows()
        return np.fromiter((row.tobytes() in lookup for row in np.round(E, 9)), bool, len(E))

    def _optimize_acquisition(self, C: np.ndarray, E: np.ndarray, mu: np.ndarray,
                              sd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Candidates plus the local optima of the acquisition reached from the best few
        (GPSampler's recipe: gradient steps on the ordered columns, coordinate moves on the
        discrete and categorical ones; see ``_acquire.py``)."""
        if self.acquisition == "pi" or not isinstance(self._model, GradientSurrogate) or self._starts < 1:
            return C, E, mu, sd
        acq = self._acquisition(mu, sd, self.kappa, lp=self._log_pof(E))
        order = np.argsort(-acq, kind="stable")
        starts = order[: self._starts]
        opt = AcquisitionOptimizer(self.grid, self._model, self._acquisition_fn(self.kappa, self._best_z),
                                   maxiter=self._maxiter)
        new, _ = opt.optimize(C[starts])
        En = self.grid.encode(new)
        m, s = self._model.predict(En)
        return np.vstack([C, new]), np.vstack([E, En]), np.r_[mu, m], np.r_[sd, s]

    #: rounds and step sizes (unit-cube widths) of the polishing of a GP's best candidates
    _polish = (0.05, 0.01, 0.002)

    def _refine(self, C: np.ndarray, E: np.ndarray, mu: np.ndarray, sd: np.ndarray,
                q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Polish the candidates of highest acquisition by local moves (a smooth model's
        optimum lies between the candidates): a few rounds, each around the best so far."""
        k = min(len(C), max(16, q), 128)
        lp = self._log_pof(E)
        for step in self._polish:
            acq = self._acquisition(mu, sd, self.kappa, lp=lp)
            top = C[np.argpartition(-acq, k - 1)[:k]]
            n = max(128, 4 * k)
            few = self._perturb(top, None, n // 2, (step,))  # a few columns each
            allcols = top[self.rng.integers(0, k, size=n - n // 2)]
            allcols = allcols + self.rng.normal(size=allcols.shape) * step
            allcols = np.abs(allcols)
            allcols = np.where(allcols > 1.0, 2.0 - allcols, allcols)
            cat = self.grid.categorical
            if cat.any():  # categorical columns stay as they are
                allcols[:, cat] = top[self.rng.integers(0, k, size=len(allcols))][:, cat]
            new = self.grid.snap(np.vstack([few, allcols]))
            En = self.grid.encode(new)
            m, s = self._model.predict(En)
            C, E, mu, sd = np.vstack([C, new]), np.vstack([E, En]), np.r_[mu, m], np.r_[sd, s]
            lp = None if lp is None else np.r_[lp, self._log_pof(En)]
        return C, E, mu, sd

    def _candidates(self, n: int) -> np.ndarray:
        d = self.grid.n
        n_local = int(round(n * self.local_fraction)) if self._U else 0
        out = [self.rng.random((n - n_local, d))]
        if n_local:
            U = self._observed()
            y = self._ranking()
            k = max(1, min(self._top, len(y) // 5 + 1))
            top = np.argpartition(y, k - 1)[:k] if len(y) > k else np.arange(len(y))
            top = top[np.lexsort((top, y[top]))]  # by loss, ties in observation order (as a stable sort)
            # the best point gets half the moves, the others share the rest
            weights = np.full(len(top), 0.5 / max(1, len(top) - 1))
            weights[0] = 0.5 if len(top) > 1 else 1.0
            out.append(self._perturb(U[top], weights / weights.sum(), n_local, self._scales))
        return self.grid.snap(np.vstack(out))

    def _ranking(self) -> np.ndarray:
        """Each observation's rank key for local moves (lower: better; failed: inf): the loss
        or the scalarization learned, infeasible points after every feasible one (by violation)."""
        y = np.asarray(self._y if self._scalar is None else self._scalar, dtype=float)
        y = np.where(np.isfinite(y), y, np.inf)
        if self._feasible is not None and len(self._feasible) == len(y) and self._feasible.any():
            viol = np.asarray(self._violation, dtype=float)
            worst = float(y[np.isfinite(y)].max()) if np.isfinite(y).any() else 0.0
            y = np.where(self._feasible, y, worst + 1.0 + np.where(np.isfinite(viol), viol, np.inf))
        return y

    def _perturb(self, P: np.ndarray, weights: np.ndarray | None, n: int, scales: Sequence[float]) -> np.ndarray:
        """``n`` local moves from rows of ``P``: a few columns each, at one of ``scales``."""
        parents = P[self.rng.choice(len(P), size=n, p=weights)]
        d = self.grid.n
        # change each column with probability ~ 2/d (at least one column per point)
        mask = self.rng.random((n, d)) < min(1.0, 2.0 / d)
        mask[np.arange(n), self.rng.integers(0, d, size=n)] = True
        scale = np.asarray(scales)[self.rng.integers(0, len(scales), size=n)][:, None]
        # ordered columns move by a Gaussian step (at least one cell for discrete ones)
        step = self.rng.normal(size=(n, d)) * scale
        levels = self.grid.levels
        disc = levels > 0
        if disc.any():
            cell = np.where(disc, 1.0 / np.maximum(levels, 1), 0.0)
            step = np.where(disc & (np.abs(step) < cell), np.sign(step) * cell, step)
        moved = parents + step
        # mirror at the bounds instead of piling points onto them
        moved = np.abs(moved)
        moved = np.where(moved > 1.0, 2.0 - moved, moved)
        cat = self.grid.categorical
        if cat.any():
            moved[:, cat] = self.rng.random((n, int(cat.sum())))
        return np.where(mask, moved, parents)

    def _acquisition(self, mu: np.ndarray, sd: np.ndarray, kappa: float, best: float | None = None,
                     lp: np.ndarray | None = None) -> np.ndarray:
        """Higher is better. ``lp``: the log probability of feasibility of the same rows
        (constraints), added to log EI (EI times the probability), to log PI, and to LCB."""
        best = self._best_z if best is None else best
        if self.acquisition == "lcb":
            value = -(mu - kappa * sd)
        elif self.acquisition == "pi":
            if lp is not None:
                return log_ndtr((best - mu - self.xi) / sd) + lp
            return ndtr((best - mu - self.xi) / sd)
        else:
            value = log_ei(mu, sd, best, self.xi)[0]  # log EI: the same order, no underflow far away
        return value if lp is None else value + lp

    def _log_pof(self, E: np.ndarray) -> np.ndarray | None:
        """Log probability that encoded rows are feasible (None: no constraint model).

        A proposal asks for it on growing candidate sets (candidates, then the polished ones
        appended, then the optimized ones): rows that extend the last set asked for are the
        only ones predicted (with constraints, ParEGO spent a third of a proposal predicting
        the same candidates again)."""
        feas = self._feasibility
        if feas is None:
            return None
        cached = self._pof_cache
        if cached is not None and cached[0] is feas and len(cached[1]) <= len(E) \
                and np.array_equal(cached[1], E[: len(cached[1])]):
            known = len(cached[1])
            lp = cached[2] if known == len(E) else np.r_[cached[2], feas.log_probability(E[known:])]
        else:
            lp = feas.log_probability(E)
        self._pof_cache = (feas, np.array(E, copy=True), lp)
        return lp

    def _select(self, E: np.ndarray, mu: np.ndarray, sd: np.ndarray, q: int, n_random: int = 0,
                n_global: int = 0, believer: _Believer | None = None) -> np.ndarray:
        """Greedy pick of ``q`` candidate indices, kept apart by the exclusion radius.

        With a ``believer``, each pick is believed observed at its predicted mean before the
        next one (a kriging believer: the variance around it shrinks, the incumbent may move).
        """
        scale = 1.0 / math.sqrt(max(1, E.shape[1]))
        # distance of each candidate to the nearest pending / already picked point
        dmin = np.full(len(E), np.inf)
        pending = [u for rows in self._pending.values() for u in rows]
        if pending:
            dmin = _min_distance(E, self.grid.encode(np.asarray(pending))) * scale
        seen = self._seen(E)  # never re-propose an evaluated point
        if self.acquisition == "lcb":
            kappas = self.rng.exponential(self.kappa, size=q)
            kappas[0] = self.kappa  # a batch of one is plain LCB
        else:
            kappas = np.full(q, self.kappa)
        lp = self._log_pof(E)
        base = None if self.acquisition == "lcb" else self._acquisition(mu, sd, self.kappa, lp=lp)
        radius = self.exclusion
        picked: list[int] = []
        uniform = np.zeros(q, dtype=bool)
        if n_random:
            uniform[self.rng.choice(q, size=min(q, n_random), replace=False)] = True
        for j in range(q):
            if believer is not None and picked:
                believer.believe(picked[-1])
                mu, sd = believer.mu[: len(E)], believer.sd[: len(E)]
                base = None if self.acquisition == "lcb" else self._acquisition(mu, sd, self.kappa, believer.best, lp)
            if uniform[j]:  # any free uniform candidate
                score = np.where(np.arange(len(E)) < n_global, self.rng.random(len(E)), -np.inf)
            else:
                score = base if base is not None else self._acquisition(mu, sd, kappas[j], lp=lp)
            free, radius = _free(dmin, seen, radius)
            masked = np.where(free, score, -np.inf)
            if uniform[j] and not np.isfinite(masked).any():  # no free uniform candidate left
                score = base if base is not None else self._acquisition(mu, sd, kappas[j], lp=lp)
                masked = np.where(free, score, -np.inf)
            i = int(np.argmax(masked))
            picked.append(i)
            dmin = np.minimum(dmin, np.sqrt(((E - E[i]) ** 2).sum(-1)) * scale)
        return np.asarray(picked, dtype=int)


class _Believer:
    """Sequential kriging-believer updates of a GP's predictions over a fixed set of rows.

    Believing row ``i`` observed at its mean leaves every mean as it is and lowers each
    variance by ``cov(x, x_i)^2 / (var(x_i) + noise)``, with the covariances themselves
    updated by the earlier beliefs (rank-one updates, O(rows x conditioning points) each).
    """

    def __init__(self, model: Any, E: np.ndarray, mu: np.ndarray, sd: np.ndarray, factors: Any, best: float):
        self.model, self.E, self.factors = model, E, factors
        self.mu_all, self.var = mu, sd * sd
        self.mu, self.sd = mu, sd
        self.best = best
        self.rows = len(E)
        self._u: list[np.ndarray] = []

    def believe(self, i: int) -> None:
        c = self.model.covariance(self.E, self.factors, i)
        for u in self._u:
            c -= u * u[i]
        u = c / math.sqrt(max(self.var[i], 0.0) + self.model.noise_variance + 1e-12)
        self._u.append(u)
        self.var = np.maximum(self.var - u * u, 1e-18)
        self.best = min(self.best, float(self.mu_all[i]))
        self.mu, self.sd = self.mu_all[: self.rows], np.sqrt(self.var[: self.rows])
