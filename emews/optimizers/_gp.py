"""A Gaussian process that holds up at 5,000+ observations, in numpy/scipy only.

::

    observations ──▶ kernel hyperparameters: marginal likelihood x priors (L-BFGS-B, analytic
         │           gradient) on at most ``hyper_points`` of them (the best half + a random
         │           half), warm-started; past ``always_refit`` observations refitted only
         │           when the data grew by 20 % (else kept)
         ▼
    condition on ALL of them: exact (Cholesky) up to ``max_points``, else an inducing-point
    (DTC) approximation on ``inducing`` of them (the best half + a random half)
         ▼
    predict(X) -> mean, std (of the latent function, not of a noisy observation)

The kernel is mlrMBO's kriging default made automatic: an ARD Matern-5/2 with a constant
amplitude and a fitted nugget (noise variance), on the encoded unit cube. Columns may share a
length scale (``groups``) and carry a weight (``column_scale``): a categorical dimension's
one-hot columns share one, weighted by 1/sqrt(2), so that a differing category adds 1 to the
squared scaled distance (a Hamming-distance kernel term, as Optuna's GPSampler has). The
hyperparameters are maximum a posteriori (``prior=True``, the default): Optuna's GPSampler
priors on the inverse squared length scales (log density ``-(0.1 / x + 0.1 x)``), a Gamma(2, 1)
on the amplitude and a Gamma(1.1, 30) on the noise, all on standardized losses. Costs, for ``n``
observations, ``m`` inducing points and ``N`` candidates: a hyperparameter fit is
O(iterations * h^3) with ``h <= hyper_points``; conditioning O(n^3) exact / O(n m^2) sparse;
a prediction O(N n^2) exact / O(N m^2) sparse.
"""

from __future__ import annotations

import math

import numpy as np

from ._model import BelieverSurrogate

__all__ = ["GPSurrogate"]

_SQRT5 = math.sqrt(5.0)
_MIN_STD = 1e-9
_JITTER = 1e-8
# bounds of the log hyperparameters: length scales (unit-cube widths), amplitude, noise
# (both relative to the standardized losses)
_LOG_LS = (math.log(0.01), math.log(20.0))
_LOG_AMP = (math.log(0.05), math.log(20.0))
_LOG_NOISE = (math.log(1e-6), math.log(1.0))


def _sqdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    return np.maximum(d2, 0.0)


def _matern(A: np.ndarray, B: np.ndarray, ls: np.ndarray, amp: float) -> np.ndarray:
    """Matern-5/2 covariance between rows of ``A`` and ``B``."""
    r = np.sqrt(_sqdist(A / ls, B / ls))
    return amp * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r * r) * np.exp(-_SQRT5 * r)


#: Gamma(concentration, rate) prior of the noise variance (standardized losses)
_NOISE_PRIOR = (1.1, 30.0)


def _neg_log_prior(theta: np.ndarray) -> tuple[float, np.ndarray]:
    """GPSampler's priors in the log hyperparameters (length scales, amplitude, noise)."""
    t, s, u = theta[:-2], theta[-2], theta[-1]
    lam = np.exp(-2.0 * t)  # inverse squared length scales
    a, v = math.exp(s), math.exp(u)
    c, rate = _NOISE_PRIOR
    f = float((0.1 / lam + 0.1 * lam).sum()) + (a - s) + (rate * v - (c - 1.0) * u)
    grad = np.empty_like(theta)
    grad[:-2] = 0.2 / lam - 0.2 * lam
    grad[-2] = a - 1.0
    grad[-1] = rate * v - (c - 1.0)
    return f, grad


def _nll(theta: np.ndarray, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None,
         prior: bool = False) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood (plus the negative log prior) and its gradient in the
    log hyperparameters; ``groups[j]``: the length scale of column ``j`` (default: its own)."""
    from scipy.linalg import cho_solve, cholesky

    n = len(X)
    k = len(theta) - 2
    ls = np.exp(theta[:k])[groups] if groups is not None else np.exp(theta[:k])
    amp, noise = math.exp(theta[k]), math.exp(theta[k + 1])
    Xs = X / ls
    r = np.sqrt(_sqdist(Xs, Xs))
    e = np.exp(-_SQRT5 * r)
    Kf = amp * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r * r) * e
    K = Kf.copy()
    K[np.diag_indices(n)] += noise + _JITTER
    try:
        L = cholesky(K, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return 1e25, np.zeros_like(theta)
    alpha = cho_solve((L, True), y, check_finite=False)
    nll = 0.5 * float(y @ alpha) + float(np.log(np.diag(L)).sum()) + 0.5 * n * math.log(2 * math.pi)
    W = np.outer(alpha, alpha) - cho_solve((L, True), np.eye(n), check_finite=False)
    # d K / d log l_k = amp * 5/3 * (1 + sqrt5 r) e^(-sqrt5 r) * (x_ik - x_jk)^2 / l_k^2
    WG = W * (amp * (5.0 / 3.0) * (1.0 + _SQRT5 * r) * e)
    rows = WG.sum(1)
    # sum_ij WG_ij (x_ik - x_jk)^2 = 2 sum_i x_ik^2 rows_i - 2 x_k' WG x_k   (WG symmetric)
    quad = 2.0 * ((X * X).T @ rows) - 2.0 * (X * (WG @ X)).sum(0)
    grad = np.empty_like(theta)
    g_cols = -0.5 * quad / (ls * ls)
    grad[:k] = np.bincount(groups, weights=g_cols, minlength=k) if groups is not None else g_cols
    grad[k] = -0.5 * float((W * Kf).sum())
    grad[k + 1] = -0.5 * noise * float(np.trace(W))
    if prior:
        f, g = _neg_log_prior(theta)
        nll, grad = nll + f, grad + g
    return nll, grad


class GPSurrogate(BelieverSurrogate):
    """ARD Matern-5/2 GP with a nugget; exact up to ``max_points`` observations, sparse beyond.

    Args:
        max_points: observations conditioned on exactly; with more, an inducing-point (DTC)
            approximation conditions on all of them through ``inducing`` inducing points.
        inducing: inducing points of the sparse approximation (the best half of the
            observations and a random sample of the rest).
        hyper_points: observations the kernel hyperparameters are fitted on at most.
        refit_growth: the hyperparameters of ``start`` are kept until the data has grown by
            this factor since they were fitted (below ``always_refit`` observations, never).
        always_refit: up to this many observations every fit searches the hyperparameters.
        random_state: seed of the subsamples and of the first fit's random restart.
        start: the previous fit, whose hyperparameters start (or are reused by) this one.
        groups: ``groups[j]`` is the length scale of input column ``j`` (columns of a group
            share one; default: one per column).
        column_scale: weight of each input column in the distance (default 1).
        prior: fit the hyperparameters by maximum a posteriori (GPSampler's priors) instead
            of maximum likelihood.
    """

    def __init__(self, max_points: int = 500, inducing: int = 300, hyper_points: int = 300,
                 refit_growth: float = 1.2, always_refit: int = 50, random_state: int | None = None,
                 start: GPSurrogate | None = None, groups: np.ndarray | None = None,
                 column_scale: np.ndarray | None = None, prior: bool = True):
        self.max_points = max_points
        self.inducing = max(2, min(inducing, max_points))
        self.hyper_points = hyper_points
        self.refit_growth = refit_growth
        self.always_refit = always_refit
        self.random_state = random_state
        self.groups = None if groups is None else np.asarray(groups, dtype=int)
        self.column_scale = None if column_scale is None else np.asarray(column_scale, dtype=float)
        self.prior = prior
        self._start = (start.theta, start.hyper_n) if start is not None and hasattr(start, "theta") else None
        self.sparse = False  # set by fit: conditioned through inducing points
        self._X = np.empty((0, 0))

    @property
    def conditioning_points(self) -> int:
        """Observations (exact) or inducing points (sparse) the prediction is conditioned on."""
        return len(self._X)

    @property
    def exact(self) -> bool:
        """True while every observation is conditioned on exactly (:meth:`conditioned` works)."""
        return not self.sparse

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        return X * self.column_scale if self.column_scale is not None else X

    # -- fitting -----------------------------------------------------------------------------
    def _subsample(self, y: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        """Indices of ``size`` observations: the best half and a random sample of the rest."""
        if len(y) <= size:
            return np.arange(len(y))
        order = np.argsort(y, kind="stable")
        best = order[: size // 2]
        rest = rng.choice(order[size // 2 :], size - len(best), replace=False)
        return np.sort(np.concatenate([best, rest]))

    def _fit_hyper(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from scipy.optimize import minimize

        d = self._n_scales(X.shape[1])
        bounds = [_LOG_LS] * d + [_LOG_AMP, _LOG_NOISE]
        starts = []
        if self._start is not None and len(self._start[0]) == d + 2:
            starts.append(self._start[0])
        else:
            starts.append(np.r_[np.full(d, math.log(0.5)), 0.0, math.log(1e-2)])
            if len(X) <= 100:  # a random restart while it is cheap
                starts.append(np.r_[rng.uniform(math.log(0.05), math.log(2.0), d), 0.0, math.log(1e-3)])
        best_f, best_t = math.inf, starts[0]
        from threadpoolctl import threadpool_limits

        # small matrices: BLAS threads only spin (badly so on a loaded machine)
        with threadpool_limits(1):
            for t0 in starts:
                res = minimize(_nll, t0, args=(X, y, self.groups, self.prior), jac=True, method="L-BFGS-B", bounds=bounds,
                               options={"maxiter": 150})
                if res.fun < best_f:
                    best_f, best_t = float(res.fun), np.asarray(res.x, dtype=float)
        return best_t

    def _n_scales(self, columns: int) -> int:
        return int(self.groups.max()) + 1 if self.groups is not None and len(self.groups) else columns

    def fit(self, X: np.ndarray, y: np.ndarray) -> GPSurrogate:
        from scipy.linalg import cho_solve, cholesky, solve_triangular

        rng = np.random.default_rng(self.random_state)
        X = self._scaled(X)
        y = np.asarray(y, dtype=float)
        self._mean, self._scale = float(y.mean()), float(y.std()) or 1.0
        z = (y - self._mean) / self._scale
        n = len(X)
        d = self._n_scales(X.shape[1])
        reuse = (self._start is not None and len(self._start[0]) == d + 2 and n > self.always_refit
                 and n < self._start[1] * self.refit_growth)
        if reuse:
            self.theta, self.hyper_n = self._start
        else:
            keep = self._subsample(z, self.hyper_points, rng)
            Xh, zh = X[keep], z[keep]
            zh = (zh - zh.mean()) / (zh.std() or 1.0)
            self.theta, self.hyper_n = self._fit_hyper(Xh, zh, rng), n
        self._start = None
        self.ls = np.exp(self.theta[:d])[self.groups] if self.groups is not None else np.exp(self.theta[:d])
        self.amp = math.exp(self.theta[d])
        self.noise = math.exp(self.theta[d + 1])
        self.refitted = not reuse
        if n <= self.max_points:
            self.sparse = False
            K = _matern(X, X, self.ls, self.amp)
            K[np.diag_indices(n)] += self.noise + _JITTER
            self._L = cholesky(K, lower=True, check_finite=False)
            self._alpha = cho_solve((self._L, True), z, check_finite=False)
            self._X = X
            self._z = z
        else:
            # DTC: Sigma = (Kmm + Kmn Knm / noise)^-1; mean = K*m Sigma Kmn z / noise;
            # var = k** - K*m Kmm^-1 Km* + K*m Sigma Km*
            self.sparse = True
            Z = X[self._subsample(z, self.inducing, rng)]
            m = len(Z)
            Kmm = _matern(Z, Z, self.ls, self.amp)
            Kmm[np.diag_indices(m)] += 1e-6 * self.amp
            self._Lm = cholesky(Kmm, lower=True, check_finite=False)
            sn = math.sqrt(self.noise + _JITTER)
            A = np.empty((m, n))
            for s in range(0, n, 4096):
                A[:, s : s + 4096] = solve_triangular(self._Lm, _matern(Z, X[s : s + 4096], self.ls, self.amp),
                                                      lower=True, check_finite=False) / sn
            B = A @ A.T
            B[np.diag_indices(m)] += 1.0
            self._LB = cholesky(B, lower=True, check_finite=False)
            self._c = solve_triangular(self._LB, A @ z / sn, lower=True, check_finite=False)
            self._X = Z
        return self

    def conditioned(self, X: np.ndarray, y: np.ndarray) -> GPSurrogate:
        """A copy of this exact GP also conditioned on the rows ``X`` observed at ``y`` (same
        hyperparameters and standardization: a fantasy, e.g. a kriging believer's)."""
        import copy

        from scipy.linalg import cho_solve, cholesky

        if self.sparse:
            raise ValueError("conditioned() needs the exact GP (at most max_points observations)")
        new = copy.copy(self)
        Xn = np.vstack([self._X, self._scaled(np.atleast_2d(X))])
        zn = np.r_[self._z, (np.asarray(y, dtype=float).ravel() - self._mean) / self._scale]
        K = _matern(Xn, Xn, self.ls, self.amp)
        K[np.diag_indices(len(Xn))] += self.noise + _JITTER
        new._L = cholesky(K, lower=True, check_finite=False)
        new._alpha = cho_solve((new._L, True), zn, check_finite=False)
        new._X, new._z = Xn, zn
        return new

    # -- prediction --------------------------------------------------------------------------
    def predict(self, X: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and standard deviation (in the units of the ``y`` fitted)."""
        mean, std, _ = self._predict(X, chunk, factors=False)
        return mean, std

    def predict_factors(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray | None]]:
        """Mean, std and the factors ``(V, W)`` of the posterior covariance at the rows of ``X``.

        ``cov(a, b) = scale^2 * (k(a, b) - V[a] . V[b] + W[a] . W[b])`` (one row per row of
        ``X``; ``W`` is None for the exact GP); see :meth:`covariance`.
        """
        return self._predict(X, len(X) or 1, factors=True)  # type: ignore[return-value]

    def covariance(self, X: np.ndarray, factors: tuple[np.ndarray, np.ndarray | None], i: int) -> np.ndarray:
        """Posterior covariance between every row of ``X`` and row ``i`` (``factors`` of ``X``)."""
        V, W = factors
        X = self._scaled(X)
        c = _matern(X, X[i : i + 1], self.ls, self.amp)[:, 0] - V @ V[i]
        if W is not None:
            c += W @ W[i]
        return c * self._scale**2

    @property
    def noise_variance(self) -> float:
        """The nugget, in the units of the ``y`` fitted."""
        return self.noise * self._scale**2

    def _predict(self, X: np.ndarray, chunk: int, factors: bool):
        from scipy.linalg import solve_triangular

        X = self._scaled(X)
        mean = np.empty(len(X))
        var = np.empty(len(X))
        Vs, Ws = [], []
        for s in range(0, len(X), chunk):
            Ks = _matern(self._X, X[s : s + chunk], self.ls, self.amp)  # (n or m, rows)
            W = None
            if not self.sparse:
                mean[s : s + chunk] = Ks.T @ self._alpha
                V = solve_triangular(self._L, Ks, lower=True, check_finite=False)
                var[s : s + chunk] = self.amp - (V * V).sum(0)
            else:
                V = solve_triangular(self._Lm, Ks, lower=True, check_finite=False)
                W = solve_triangular(self._LB, V, lower=True, check_finite=False)
                mean[s : s + chunk] = W.T @ self._c
                var[s : s + chunk] = self.amp - (V * V).sum(0) + (W * W).sum(0)
            if factors:
                Vs.append(V)
                Ws.append(W)
        std = np.sqrt(np.maximum(var, 0.0)) * self._scale
        F = None
        if factors:
            # row-major, one row per point: each covariance is one contiguous matrix-vector product
            F = (np.ascontiguousarray(np.hstack(Vs).T), None if Ws[0] is None else np.ascontiguousarray(np.hstack(Ws).T))
        return mean * self._scale + self._mean, np.maximum(std, _MIN_STD), F

    def predict_grad(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mean, std and their gradients ``(rows, columns)`` with respect to the rows of ``X``.

        For few rows (the starts of an acquisition optimizer): the mean is ``k(x)' beta`` and
        the variance ``amp - k(x)' Q k(x)`` (``Q = K^-1`` exact, ``Kmm^-1 - Sigma`` sparse),
        so both gradients are sums over the conditioning points of the kernel's gradient.
        """
        from scipy.linalg import cho_solve, solve_triangular

        Xs = self._scaled(X)
        P = self._X
        ls2 = self.ls * self.ls
        r = np.sqrt(_sqdist(Xs / self.ls, P / self.ls))  # (rows, n)
        e = np.exp(-_SQRT5 * r)
        Ks = self.amp * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r * r) * e
        # d k / d x_j = G * (x_j - p_j) / l_j^2
        G = -self.amp * (5.0 / 3.0) * (1.0 + _SQRT5 * r) * e
        if not self.sparse:
            beta = self._alpha
            QK = cho_solve((self._L, True), Ks.T, check_finite=False).T  # (rows, n)
        else:
            if not hasattr(self, "_Q"):
                # beta = Lm^-T LB^-T c; Q = Kmm^-1 - Lm^-T LB^-T LB^-1 Lm^-1 (m x m, once per fit)
                Li = solve_triangular(self._Lm, np.eye(len(P)), lower=True, check_finite=False)
                Bi = solve_triangular(self._LB, Li, lower=True, check_finite=False)
                self._beta = Bi.T @ self._c
                self._Q = Li.T @ Li - Bi.T @ Bi
            beta = self._beta
            QK = Ks @ self._Q
        mean = Ks @ beta
        var = np.maximum(self.amp - (QK * Ks).sum(1), 0.0)

        def weighted(Wm: np.ndarray) -> np.ndarray:  # sum_i Wm_ri G_ri (x_rj - p_ij) / l_j^2
            A = Wm * G
            return (A.sum(1)[:, None] * Xs - A @ P) / ls2

        dmean = weighted(np.broadcast_to(beta, G.shape))
        dvar = -2.0 * weighted(QK)
        std = np.sqrt(var)
        safe = np.maximum(std, _MIN_STD)
        dstd = np.where(std[:, None] > _MIN_STD, dvar / (2.0 * safe[:, None]), 0.0)
        scale = self.column_scale if self.column_scale is not None else 1.0
        return (mean * self._scale + self._mean, safe * self._scale, dmean * self._scale * scale,
                dstd * self._scale * scale)
