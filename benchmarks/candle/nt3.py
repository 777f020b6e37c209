"""NT3: 1D CNN classifying RNA-seq profiles as normal or tumor (CANDLE Pilot1), in PyTorch.

Architecture (Keras baseline ``nt3_baseline_keras2.py``, defaults from ``nt3_default_model.txt``):
``conv`` triplets (filters, kernel, stride) -> activation -> MaxPool(``pool[i]``) ... -> Flatten
-> ``dense`` layers (activation, Dropout) -> Dense(``classes``); softmax cross-entropy.
Defaults: conv = [128, 20, 1, 128, 10, 1], pool = [1, 10], dense = [200, 20], relu, SGD,
learning_rate 0.001, batch_size 20, dropout 0.1, epochs 400; data MaxAbs-scaled.

``run(params)`` returns ``loss`` (final validation cross-entropy; the validation set is the
test file, as in the baseline), ``accuracy``, ``runtime`` and training details.

Data: synthetic by default (``data_size`` full = 60,483 features, 1,120 train / 280 test;
small = 12,000 features, 320 / 80; tiny = 256 features, 96 / 32; or ``n_features``,
``n_train``, ``n_test``), or the original ``nt_train2.csv`` / ``nt_test2.csv`` (no header,
class label in the first column) from ``data_dir`` / ``$CANDLE_DATA_DIR``.
"""

from __future__ import annotations

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
    file_key,
    find_data_dir,
    finish,
    init_weights,
    make_logger,
    maxabs_scale,
    parse_params,  # noqa: F401 - re-exported (tests use nt3.parse_params)
    parse_run_params,
    resolve_device,
    setup_backend,
    to_device,
)

SIZES = {"full": (60483, 1120, 280), "small": (12000, 320, 80), "tiny": (256, 96, 32)}

SCHEMA: dict[str, Spec] = {
    **common_schema(
        batch_size=20,
        epochs=400,
        learning_rate=0.001,
        optimizer="sgd",
        dropout=0.1,
        activation="relu",
        reduce_lr=True,  # the baseline always uses ReduceLROnPlateau(factor=0.1, patience=10)
        reduce_lr_factor=0.1,
        reduce_lr_patience=10,
        min_lr=0.0,
        eval_batch_size=0,
    ),
    "conv": Spec("ints", [128, 20, 1, 128, 10, 1]),
    "pool": Spec("ints", [1, 10]),
    "dense": Spec("ints", [200, 20]),
    "classes": Spec("int", 2, low=2),
    "n_features": Spec("int", None, low=1, allow_none=True),
    "n_train": Spec("int", None, low=2, allow_none=True),
    "n_test": Spec("int", None, low=2, allow_none=True),
    "train_data": Spec("str", "nt_train2.csv"),
    "test_data": Spec("str", "nt_test2.csv"),
}
ALIASES = dict(COMMON_ALIASES)


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


def conv_layers(conv: list[int], pool: list[int]) -> list[tuple[int, int, int, int]]:
    """(filters, kernel, stride, pool) per conv layer; stops at the first non-positive triplet
    like the baseline; missing pool entries mean no pooling."""
    if len(conv) % 3:
        raise bad_param("conv", conv, "expected (filters, kernel, stride) triplets")
    out = []
    for i in range(0, len(conv), 3):
        f, k, s = conv[i : i + 3]
        if f <= 0 or k <= 0 or s <= 0:
            break
        j = i // 3
        pl = pool[j] if j < len(pool) else 1
        if pl < 1:
            raise bad_param("pool", pool, "pool sizes must be >= 1")
        out.append((f, k, s, pl))
    return out


def check_shapes(n_features: int, conv: list[int], pool: list[int]) -> int:
    """Length after the conv/pool stack times channels (the Flatten width); ValueError if a
    kernel or pool does not fit the sequence."""
    length, ch = n_features, 1
    for f, k, s, pl in conv_layers(conv, pool):
        if k > length:
            raise bad_param("conv", conv, f"kernel {k} longer than the sequence ({length}) with {n_features} features")
        length = (length - k) // s + 1
        if pl > length:
            raise bad_param("pool", pool, f"pool {pl} longer than the sequence ({length}) with {n_features} features")
        length //= pl
        ch = f
    return length * ch


class NT3Net(nn.Module):
    def __init__(self, n_features: int, p: Params):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for f, k, s, pl in conv_layers(p.conv, p.pool):
            layers.append(nn.Conv1d(c_in, f, k, stride=s))
            layers.append(Activation(p.activation))
            if pl > 1:
                layers.append(nn.MaxPool1d(pl))
            c_in = f
        self.features = nn.Sequential(*layers)
        self.has_conv = bool(layers)
        width = check_shapes(n_features, p.conv, p.pool)
        head: list[nn.Module] = []
        for w in p.dense:
            if w <= 0:
                continue
            head += [nn.Linear(width, w), Activation(p.activation)]
            if p.dropout > 0:
                head.append(nn.Dropout(p.dropout))
            width = w
        head.append(nn.Linear(width, p.classes))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.has_conv:
            x = self.features(x.unsqueeze(1))
        return self.head(x.flatten(1))


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def synthetic(n_features: int, n_train: int, n_test: int, seed: int) -> dict[str, np.ndarray]:
    """Normal/tumor expression-like data with a learnable signal.

    log(1+FPKM)-like gene levels (gamma-distributed means, gene-specific noise, co-expressed
    gene blocks, values floored at 0), balanced classes. Tumor samples shift a set of genes in
    short contiguous runs: half of them the same way in all tumors (linearly separable), half
    in opposite directions for two tumor subtypes (needs a non-linear model). MaxAbs-scaled
    over train+test like the baseline.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 3]))
    nf, n = int(n_features), int(n_train) + int(n_test)
    y = np.concatenate([rng.permutation(np.arange(m) % 2) for m in (n_train, n_test)]).astype(np.int64)
    subtype = rng.integers(0, 2, n)
    mu = rng.gamma(1.2, 2.0, nf).astype(np.float32)
    sd = (0.25 + 0.35 * rng.random(nf)).astype(np.float32)
    block = 64
    blk = np.arange(nf) // block
    n_blocks = int(blk[-1]) + 1
    # informative genes: runs of 8 neighbouring genes
    run = 8
    n_inf = max(32, nf // 25)
    starts = rng.choice(max(1, nf - run), size=max(1, n_inf // run), replace=False)
    inf = np.unique(np.clip((starts[:, None] + np.arange(run)).ravel(), 0, nf - 1))
    rng.shuffle(inf)
    half = len(inf) // 2
    shared, sub = np.sort(inf[:half]), np.sort(inf[half:])
    d_shared = (rng.choice([-1.0, 1.0], len(shared)) * rng.uniform(1.5, 3.0, len(shared)) * sd[shared]).astype(np.float32)
    d_sub = (rng.uniform(2.0, 3.5, len(sub)) * sd[sub]).astype(np.float32)
    x = np.empty((n, nf), dtype=np.float32)
    chunk = 128
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        m = e - s
        fac = rng.standard_normal((m, n_blocks), dtype=np.float32)
        noise = rng.standard_normal((m, nf), dtype=np.float32)
        xc = mu + sd * (0.5 * fac[:, blk] + 0.85 * noise)
        tumor = y[s:e] == 1
        st = subtype[s:e]
        rows = np.nonzero(tumor)[0]
        xc[np.ix_(rows, shared)] += d_shared
        ra, rb = np.nonzero(tumor & (st == 0))[0], np.nonzero(tumor & (st == 1))[0]
        xc[np.ix_(ra, sub)] += d_sub
        xc[np.ix_(rb, sub)] -= d_sub
        np.maximum(xc, 0.0, out=xc)
        x[s:e] = xc
    x = maxabs_scale(x)
    return {"x_train": x[:n_train], "y_train": y[:n_train], "x_test": x[n_train:], "y_test": y[n_train:]}


def load_real(train_path: Path, test_path: Path, classes: int) -> dict[str, np.ndarray]:
    """The baseline's files: CSV without header, class label then features per row."""
    import pandas as pd

    tr = pd.read_csv(train_path, header=None, dtype=np.float32, engine="c").to_numpy()
    te = pd.read_csv(test_path, header=None, dtype=np.float32, engine="c").to_numpy()
    if tr.shape[1] != te.shape[1] or tr.shape[1] < 2:
        raise ValueError(f"NT3 files disagree or have no features: {tr.shape} vs {te.shape}")
    y_tr, y_te = tr[:, 0].astype(np.int64), te[:, 0].astype(np.int64)
    for name, y in (("train", y_tr), ("test", y_te)):
        if y.min() < 0 or y.max() >= classes:
            raise ValueError(f"NT3 {name} labels outside 0..{classes - 1}: {sorted(set(y.tolist()))[:10]}")
    x = maxabs_scale(np.concatenate([tr[:, 1:], te[:, 1:]], axis=0))
    n = len(tr)
    return {"x_train": x[:n], "y_train": y_tr, "x_test": x[n:], "y_test": y_te}


def data_dir(p: Params) -> Path | None:
    return find_data_dir(p, [p.train_data, p.test_data], ["Pilot1", "NT3", "Pilot1/NT3"])


def get_data(p: Params, d: Path | None) -> tuple[tuple, dict[str, np.ndarray], str]:
    """(cache key, host arrays, source) -- cached per process; ``d`` from :func:`data_dir`."""
    if d is not None:
        files = [d / p.train_data, d / p.test_data]
        key = ("nt3", "real", file_key(files), p.classes)
        return key, cached(key, lambda: load_real(files[0], files[1], p.classes)), "real"
    nf, ntr, nte = synthetic_shape(p)
    key = ("nt3", "synthetic", nf, ntr, nte, p.data_seed)
    return key, cached(key, lambda: synthetic(nf, ntr, nte, p.data_seed)), "synthetic"


def synthetic_shape(p: Params) -> tuple[int, int, int]:
    nf, ntr, nte = SIZES[p.data_size]
    return (p.n_features or nf, p.n_train or ntr, p.n_test or nte)


# --------------------------------------------------------------------------------------------
# Objective
# --------------------------------------------------------------------------------------------


def run(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train NT3 with CANDLE-style ``params``; see the module docstring."""
    t_start = time.perf_counter()
    p = parse_run_params(params, SCHEMA, ALIASES, "nt3", "candle")
    conv_layers(p.conv, p.pool)  # format errors before any work
    d = data_dir(p)
    if d is None:
        check_shapes(synthetic_shape(p)[0], p.conv, p.pool)  # shape errors before generating data
    device = resolve_device(p.device)
    setup_backend(p, device)
    log = make_logger(p, "nt3")

    key, host, source = get_data(p, d)
    data = to_device(key, host, device)
    t_data = time.perf_counter() - t_start
    x_tr, y_tr, x_te, y_te = data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    n_features = int(x_tr.shape[1])
    n_test = int(x_te.shape[0])

    torch.manual_seed(p.seed)
    with device:
        model = NT3Net(n_features, p)
        init_weights(model, p.initialization)
    opt = build_optimizer(p, model.parameters(), 1.0, device)
    lrc = LRControl(opt, p)
    eval_bs = p.eval_batch_size or max(p.batch_size, 64)
    state: dict[str, torch.Tensor] = {}

    def loss_fn(idx: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x_tr[idx]).float(), y_tr[idx])

    def val_fn() -> torch.Tensor:
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for s, e in batched(n_test, eval_bs):
            logits = model(x_te[s:e]).float()
            loss_sum = loss_sum + F.cross_entropy(logits, y_te[s:e], reduction="sum")
            correct = correct + (logits.argmax(1) == y_te[s:e]).sum()
        state["correct"] = correct
        return loss_sum / n_test

    trainer = Trainer(model, opt, lrc, p, device, n_train=int(x_tr.shape[0]), loss_fn=loss_fn, val_fn=val_fn,
                      t_start=t_start, log=log)
    trainer.fit()
    out = trainer.summary()
    acc = float(state["correct"].item()) / n_test if "correct" in state else float("nan")
    return finish(
        out,
        trainer,
        t_start,
        t_data,
        source,
        accuracy=acc,
        val_accuracy=acc,
        n_features=n_features,
        n_train=int(x_tr.shape[0]),
        n_val=n_test,
    )
