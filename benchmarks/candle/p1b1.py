"""P1B1: dense autoencoder of RNA-seq profiles (CANDLE Pilot1), in PyTorch.

Architecture (Keras baseline ``p1b1_baseline_keras2.py``, defaults ``p1b1_default_model.txt``):
encoder ``dense`` layers [2000, 600] (Dense -> activation -> residual add when widths match ->
BatchNorm -> Dropout), a ``latent_dim`` (2) bottleneck, the mirrored decoder, and a sigmoid
output of the input width; ``model`` = ``ae`` (MSE loss), ``vae`` (binary cross-entropy + KL /
input_dim, reparameterized sampling with ``epsilon_std``) or ``cvae`` (conditioned on the
cancer type). Adam, batch_size 100, epochs 100, MinMax-scaled data, 10% validation split.
``warmup_lr``, ``reduce_lr``, ``residual``, ``batch_normalization``, ``alpha_dropout`` as in
the baseline.

``run(params)`` returns ``loss`` (final-epoch validation loss of the model's objective),
``val_mse``, ``val_corr``, ``val_r2`` (feature-averaged, like scikit-learn), the same on the
test set, ``runtime``... For the VAE, evaluation uses the latent mean (no sampling).

Data: synthetic by default (``data_size`` full = 60,483 genes, 3,000 train / 1,000 test;
small = 6,000 genes, 1,000 / 300; tiny = 200 genes, 300 / 100; ``use_landmark_genes`` = 978
genes; or ``n_features``/``n_train``/``n_test``), or the original ``P1B1.train.csv`` /
``P1B1.test.csv`` (or ``P1B1.dev.*``; header, ``case_id``, ``cancer_type``, gene columns) with
``lincs1000.tsv`` (column ``gdc``) for landmark genes, from ``data_dir`` / ``$CANDLE_DATA_DIR``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import (
    COMMON_ALIASES,
    Activation,
    LRControl,
    Params,
    Spec,
    Trainer,
    bad_param,
    batched,
    build_optimizer,
    cached,
    common_schema,
    dense_stack,
    file_key,
    find_data_dir,
    finish,
    init_weights,
    make_logger,
    minmax_scale,
    parse_params,  # noqa: F401 - re-exported (tests use nt3.parse_params)
    parse_run_params,
    resolve_device,
    setup_backend,
    to_device,
)

SIZES = {"full": (60483, 3000, 1000), "small": (6000, 1000, 300), "tiny": (200, 300, 100)}
LANDMARK_GENES = 978
N_TYPES = 10
FILE_PAIRS = [("P1B1.train.csv", "P1B1.test.csv"), ("P1B1.dev.train.csv", "P1B1.dev.test.csv")]

SCHEMA: dict[str, Spec] = {
    **common_schema(
        batch_size=100,
        epochs=100,
        learning_rate=None,
        optimizer="adam",
        dropout=0.0,
        activation="relu",
        reduce_lr_factor=0.5,
        reduce_lr_patience=5,
        min_lr=1e-5,
        eval_batch_size=1024,
    ),
    "dense": Spec("ints", [2000, 600]),
    "latent_dim": Spec("int", 2, low=1),
    "model": Spec("choice", "ae", choices=("ae", "vae", "cvae")),
    "loss": Spec("choice", "mse", choices=("mse", "binary_crossentropy")),
    "residual": Spec("bool", False),
    "batch_normalization": Spec("bool", False),
    "alpha_dropout": Spec("bool", False),
    "epsilon_std": Spec("float", 1.0, low=0),
    "use_landmark_genes": Spec("bool", False),
    "feature_subsample": Spec("int", 0, low=0),
    "val_split": Spec("float", 0.1, low=0, high=1, low_open=True, high_open=True),
    "n_features": Spec("int", None, low=1, allow_none=True),
    "n_train": Spec("int", None, low=4, allow_none=True),
    "n_test": Spec("int", None, low=1, allow_none=True),
    "train_data": Spec("str", None, allow_none=True),
    "test_data": Spec("str", None, allow_none=True),
}
ALIASES = {**COMMON_ALIASES, "validation_split": "val_split"}


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


class P1B1Net(nn.Module):
    def __init__(self, n_in: int, n_cond: int, p: Params):
        super().__init__()
        self.kind = p.model
        self.n_cond = n_cond if p.model == "cvae" else 0
        self.epsilon_std = p.epsilon_std
        bn, res = p.batch_normalization, p.residual
        self.encoder, h = dense_stack(n_in + self.n_cond, p.dense, p, residual=res, batch_norm=bn)
        if self.kind == "ae":
            self.latent = nn.Sequential(nn.Linear(h, p.latent_dim), Activation(p.activation))
        else:
            self.z_mean = nn.Linear(h, p.latent_dim)
            self.z_log_var = nn.Linear(h, p.latent_dim)
        self.decoder, h = dense_stack(p.latent_dim + self.n_cond, list(reversed(p.dense)), p, residual=res, batch_norm=bn)
        self.out = nn.Linear(h, n_in)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Output logits (sigmoid gives the reconstruction) and, for (c)vae, the per-sample KL."""
        if self.n_cond:
            x = torch.cat([x, cond.to(x.dtype)], dim=1)
        h = self.encoder(x)
        kl = None
        if self.kind == "ae":
            z = self.latent(h)
        else:
            mean, log_var = self.z_mean(h).float(), self.z_log_var(h).float()
            if self.training:
                z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean) * self.epsilon_std
            else:
                z = mean
            kl = -0.5 * torch.sum(1 + log_var - mean * mean - torch.exp(log_var), dim=1)
            z = z.to(h.dtype)
        if self.n_cond:
            z = torch.cat([z, cond.to(z.dtype)], dim=1)
        return self.out(self.decoder(z)), kl


def objective(logits: torch.Tensor, kl: torch.Tensor | None, x: torch.Tensor, p: Params, reduction: str = "mean") -> torch.Tensor:
    """Mean (or summed over samples) loss of a batch: MSE / BCE for ae, BCE + KL/dim for vae."""
    logits = logits.float()
    if kl is None and p.loss == "mse":
        per = ((torch.sigmoid(logits) - x) ** 2).mean(dim=1)
    else:
        per = F.binary_cross_entropy_with_logits(logits, x, reduction="none").mean(dim=1)
        if kl is not None:
            per = per + kl / x.shape[1]
    return per.mean() if reduction == "mean" else per.sum()


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def synthetic(n_features: int, n_samples: int, seed: int, rank: int = 32) -> dict[str, np.ndarray]:
    """Expression-like profiles with low-rank structure (so reconstruction is learnable).

    Samples from ``N_TYPES`` cancer types: a type centre plus individual variation in a
    ``rank``-dimensional factor space, mapped to genes with gamma-distributed baseline levels
    and gene-specific spread, plus independent noise; floored at 0 (log expression) and
    MinMax-scaled. A wider bottleneck (up to ``rank``) and a well-trained network reconstruct
    more of it.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 11]))
    nf, n = int(n_features), int(n_samples)
    types = rng.integers(0, N_TYPES, n)
    centres = rng.standard_normal((N_TYPES, rank)).astype(np.float32)
    z = centres[types] + 0.8 * rng.standard_normal((n, rank), dtype=np.float32)
    w = (rng.standard_normal((rank, nf), dtype=np.float32) / np.float32(math.sqrt(rank)))
    mu = rng.gamma(1.2, 2.0, nf).astype(np.float32)
    sd = (0.3 + 0.5 * rng.random(nf)).astype(np.float32)
    x = np.empty((n, nf), dtype=np.float32)
    for s in range(0, n, 256):
        e = min(n, s + 256)
        xc = mu + sd * (z[s:e] @ w + 0.4 * rng.standard_normal((e - s, nf), dtype=np.float32))
        np.maximum(xc, 0.0, out=xc)
        x[s:e] = xc
    return {"x": minmax_scale(x), "y": types.astype(np.int64)}


def split(x: np.ndarray, y: np.ndarray, n_train: int, val_split: float, seed: int) -> dict[str, np.ndarray]:
    """First ``n_train`` rows -> shuffled train/validation split; the rest is the test set."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 12]))
    order = rng.permutation(n_train)
    n_val = max(1, int(round(n_train * val_split)))
    if n_val >= n_train:
        raise bad_param("val_split", val_split, f"leaves no training rows out of {n_train}")
    tr, va = order[n_val:], order[:n_val]
    return {
        "x_train": x[tr], "y_train": y[tr], "x_val": x[va], "y_val": y[va],
        "x_test": x[n_train:], "y_test": y[n_train:],
    }


def load_real(train_path: Path, test_path: Path, lincs_path: Path | None, p: Params) -> dict[str, np.ndarray]:
    """CANDLE P1B1 CSVs: header row, ``case_id``, ``cancer_type``, then one column per gene."""
    import pandas as pd

    def read(path: Path) -> pd.DataFrame:
        cols = list(pd.read_csv(path, nrows=0, engine="c").columns)
        dtypes = {c: (str if c in ("case_id", "cancer_type") else np.float32) for c in cols}
        return pd.read_csv(path, dtype=dtypes, engine="c", na_values=["na", "-", ""])

    tr, te = read(train_path), read(test_path)
    genes = [c for c in tr.columns if c not in ("case_id", "cancer_type")]
    missing = [c for c in genes if c not in te.columns]
    if missing:
        raise ValueError(f"P1B1 test file lacks {len(missing)} gene columns of the train file, e.g. {missing[:3]}")
    if lincs_path is not None:
        lincs = pd.read_csv(lincs_path, sep="\t", engine="c")
        if "gdc" not in lincs.columns:
            raise ValueError(f"{lincs_path} has no 'gdc' column")
        wanted = set(lincs["gdc"].astype(str))
        genes = [g for g in genes if g in wanted]
        if not genes:
            raise ValueError(f"no landmark genes of {lincs_path} in {train_path}")
    if p.feature_subsample and p.feature_subsample < len(genes):
        rng = np.random.default_rng(p.data_seed)
        genes = [genes[i] for i in sorted(rng.choice(len(genes), p.feature_subsample, replace=False))]
    x = np.concatenate([tr[genes].to_numpy(np.float32), te[genes].to_numpy(np.float32)])
    x = np.nan_to_num(x, nan=0.0)
    if "cancer_type" in tr.columns and "cancer_type" in te.columns:
        labels = pd.Categorical(pd.concat([tr["cancer_type"], te["cancer_type"]]).astype(str))
        y = np.asarray(labels.codes, dtype=np.int64)
    else:
        y = np.zeros(len(x), dtype=np.int64)
    return split(minmax_scale(x), y, len(tr), p.val_split, p.data_seed)


def find_real(p: Params) -> tuple[Path, Path, Path | None] | None:
    pairs = [(p.train_data, p.test_data)] if p.train_data or p.test_data else FILE_PAIRS
    errors = []
    for tr, te in pairs:
        if not tr or not te:
            raise bad_param("train_data" if not tr else "test_data", tr or te, "give both train_data and test_data")
        need = [tr, te] + (["lincs1000.tsv"] if p.use_landmark_genes else [])
        try:
            d = find_data_dir(p, need, ["Pilot1", "P1B1", "Pilot1/P1B1"])
        except FileNotFoundError as e:
            errors.append(str(e))
            continue
        if d is None:
            return None
        return d / tr, d / te, (d / "lincs1000.tsv") if p.use_landmark_genes else None
    raise FileNotFoundError("; ".join(errors))


def synthetic_shape(p: Params) -> tuple[int, int, int]:
    nf, ntr, nte = SIZES[p.data_size]
    if p.use_landmark_genes:
        nf = LANDMARK_GENES
    if p.feature_subsample:
        nf = min(nf, p.feature_subsample)
    return (p.n_features or nf, p.n_train or ntr, p.n_test or nte)


def get_data(p: Params) -> tuple[tuple, dict[str, np.ndarray], str]:
    real = find_real(p)
    if real is not None:
        files = [f for f in real if f is not None]
        key = ("p1b1", "real", file_key(files), p.feature_subsample, p.val_split, p.data_seed)
        return key, cached(key, lambda: load_real(real[0], real[1], real[2], p)), "real"
    nf, ntr, nte = synthetic_shape(p)
    key = ("p1b1", "synthetic", nf, ntr, nte, p.val_split, p.data_seed)

    def build() -> dict[str, np.ndarray]:
        d = synthetic(nf, ntr + nte, p.data_seed)
        return split(d["x"], d["y"], ntr, p.val_split, p.data_seed)

    return key, cached(key, build), "synthetic"


# --------------------------------------------------------------------------------------------
# Objective
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def _eval_metrics(model: P1B1Net, x: torch.Tensor, cond: torch.Tensor | None, p: Params, bs: int, device: torch.device) -> dict[str, float]:
    """MSE, Pearson correlation over all entries and feature-averaged R^2 of the reconstruction."""
    n, nf = x.shape
    f64 = torch.float64
    s_t = torch.zeros(nf, dtype=f64, device=device)
    s_tt = torch.zeros(nf, dtype=f64, device=device)
    s_res = torch.zeros(nf, dtype=f64, device=device)
    tot = torch.zeros(5, dtype=f64, device=device)  # sum q, sum q^2, sum t*q, sum t, sum t^2 (all entries)
    for s, e in batched(n, bs):
        xb = x[s:e]
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bool(p.bf16)):
            logits, _ = model(xb, None if cond is None else cond[s:e])
        q = torch.sigmoid(logits.float()).double()
        t = xb.double()
        s_t += t.sum(0)
        s_tt += (t * t).sum(0)
        s_res += ((q - t) ** 2).sum(0)
        tot += torch.stack([q.sum(), (q * q).sum(), (t * q).sum(), t.sum(), (t * t).sum()])
    ss_tot = s_tt - s_t * s_t / n
    ok = ss_tot > 1e-12
    r2 = (1 - s_res[ok] / ss_tot[ok]).mean() if bool(ok.any()) else torch.tensor(float("nan"), dtype=f64)
    m = float(n * nf)
    sq, sqq, stq, st, stt = tot.tolist()
    cov = stq / m - (st / m) * (sq / m)
    var_t, var_q = stt / m - (st / m) ** 2, sqq / m - (sq / m) ** 2
    corr = cov / math.sqrt(var_t * var_q) if var_t > 0 and var_q > 0 else float("nan")
    return {"mse": float(s_res.sum().item()) / m, "corr": corr, "r2": float(r2.item())}


def run(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train P1B1 with CANDLE-style ``params``; see the module docstring."""
    t_start = time.perf_counter()
    p = parse_run_params(params, SCHEMA, ALIASES, "p1b1", "keras")
    device = resolve_device(p.device)
    setup_backend(p, device)
    log = make_logger(p, "p1b1")

    key, host, source = get_data(p)
    data = to_device(key, host, device)
    t_data = time.perf_counter() - t_start
    x_tr, x_va, x_te = data["x_train"], data["x_val"], data["x_test"]
    n_types = int(max(int(host["y_train"].max(initial=0)), int(host["y_val"].max(initial=0)),
                      int(host["y_test"].max(initial=0)))) + 1
    cvae = p.model == "cvae"
    c_tr = F.one_hot(data["y_train"], n_types).float() if cvae else None
    c_va = F.one_hot(data["y_val"], n_types).float() if cvae else None
    c_te = F.one_hot(data["y_test"], n_types).float() if cvae and len(x_te) else None
    n_features, n_val = int(x_tr.shape[1]), int(x_va.shape[0])

    torch.manual_seed(p.seed)
    with device:
        model = P1B1Net(n_features, n_types, p)
        init_weights(model, p.initialization)
    opt = build_optimizer(p, model.parameters(), 1.0, device)
    lrc = LRControl(opt, p)
    eval_bs = p.eval_batch_size or 1024

    def loss_fn(idx: torch.Tensor) -> torch.Tensor:
        xb = x_tr[idx]
        logits, kl = model(xb, c_tr[idx] if cvae else None)
        return objective(logits, kl, xb, p)

    def val_fn() -> torch.Tensor:
        total = torch.zeros((), device=device)
        for s, e in batched(n_val, eval_bs):
            xb = x_va[s:e]
            logits, kl = model(xb, c_va[s:e] if cvae else None)
            total = total + objective(logits, kl, xb, p, reduction="sum")
        return total / n_val

    trainer = Trainer(model, opt, lrc, p, device, n_train=int(x_tr.shape[0]), loss_fn=loss_fn, val_fn=val_fn,
                      t_start=t_start, log=log)
    trainer.fit()
    out = trainer.summary()
    model.eval()
    if not trainer.diverged:
        val = _eval_metrics(model, x_va, c_va, p, eval_bs, device)
        test = _eval_metrics(model, x_te, c_te, p, eval_bs, device) if len(x_te) else {}
    else:
        val, test = {}, {}
    nan = float("nan")
    return finish(
        out,
        trainer,
        t_start,
        t_data,
        source,
        val_mse=val.get("mse", nan),
        val_corr=val.get("corr", nan),
        val_r2=val.get("r2", nan),
        test_mse=test.get("mse", nan),
        test_corr=test.get("corr", nan),
        test_r2=test.get("r2", nan),
        n_features=n_features,
        n_train=int(x_tr.shape[0]),
        n_val=n_val,
    )
