"""Combo: growth of cancer cell lines under drug pairs (CANDLE Pilot1, NCI-ALMANAC), in PyTorch.

Architecture (Keras baseline ``combo_baseline_keras2.py``, defaults ``combo_default_model.txt``):
one feature sub-network per feature *type* -- the cell features and the drug descriptors --
each ``dense_feature_layers`` [1000, 1000, 1000]; the drug sub-network is SHARED by drug 1 and
drug 2. Their outputs are concatenated -> ``dense`` [1000, 1000, 1000] -> Dense(1); MSE; Adam
(Keras default learning rate), batch_size 32, epochs 10, std-scaled features, 20% validation.
``residual`` (add when widths match), ``batch_normalization``, ``dropout``, ``warmup_lr``,
``reduce_lr`` as in the baseline.

``run(params)`` returns ``loss`` (final-epoch validation MSE), ``val_mae``, ``val_r2``,
``val_corr``, ``runtime``...

Data: synthetic by default (``data_size`` full = 60 cell lines x 942 landmark-gene expression
features, 104 drugs x 3,809 dragon7 descriptors, 300,000 (cell, drug1, drug2) rows; small =
same tables, 16,000 rows; tiny = 20 x 64, 24 x 128, 3,000 rows; or ``n_cells``, ``n_drugs``,
``n_cell_features``, ``n_drug_features``, ``n_samples``), or the original files from
``data_dir`` / ``$CANDLE_DATA_DIR``: ``ComboDrugGrowth_Nov2017.csv`` (NCI-ALMANAC),
``combined_rnaseq_data_lincs1000`` (TSV, ``Sample`` + genes), ``ALMANAC_drug_descriptors_dragon7.txt``
(TSV, ``NAME`` = ``NSC.<id>`` + descriptors) and, when present, the cell-name maps
``NCI60_CELLNAME_to_Combo.txt`` (``Name`` -> ``CELLNAME``) and
``NCI60_CELLNAME_to_Combo.new.txt`` (``NCI60.ID`` -> ``CELLNAME``). The response is the
baseline's: valid rows, replicate mean per concentration pair, minimum over concentrations,
percent growth / 100 (``use_combo_score``: maximum ComboScore instead).

Rows are (cell index, drug1 index, drug2 index) into device-resident feature tables, so a
batch is gathered on the device. When a sub-network has no dropout/batch norm and its table is
small relative to the batch (and always for evaluation), it runs once over the whole table and
rows pick their outputs -- the same function, far fewer FLOPs.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .common import (
    COMMON_ALIASES,
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
    impute_mean,
    init_weights,
    make_logger,
    parse_params,  # noqa: F401 - re-exported (tests use nt3.parse_params)
    parse_run_params,
    regression_metrics,
    resolve_device,
    setup_backend,
    std_scale,
    to_device,
)

# cells, drugs, cell features, drug features, rows
SIZES = {
    "full": (60, 104, 942, 3809, 300_000),
    "small": (60, 104, 942, 3809, 16_000),
    "tiny": (20, 24, 64, 128, 3_000),
}
MIRNA_FEATURES = 450  # synthetic microRNA profile width (cell_features: mirna)

RESPONSE_FILE = "ComboDrugGrowth_Nov2017.csv"
RNASEQ_FILE = "combined_rnaseq_data_lincs1000"
DRUG_FILES = ("ALMANAC_drug_descriptors_dragon7.txt", "pan_drugs_dragon7_descriptors.tsv")
CELLMAP_FILE = "NCI60_CELLNAME_to_Combo.txt"
RNASEQ_MAP_FILE = "NCI60_CELLNAME_to_Combo.new.txt"

SCHEMA: dict[str, Spec] = {
    **common_schema(
        batch_size=32,
        epochs=10,
        learning_rate=None,
        optimizer="adam",
        dropout=0.0,
        activation="relu",
        reduce_lr_factor=0.5,
        reduce_lr_patience=5,
        min_lr=1e-5,
        eval_batch_size=8192,
    ),
    "dense": Spec("ints", [1000, 1000, 1000]),
    "dense_feature_layers": Spec("ints", [1000, 1000, 1000]),
    "residual": Spec("bool", False),
    "batch_normalization": Spec("bool", False),
    "cell_features": Spec("choice", "expression", choices=("expression", "mirna", "categorical")),
    "drug_features": Spec("choice", "descriptors", choices=("descriptors", "categorical")),
    "use_landmark_genes": Spec("bool", True),
    "use_combo_score": Spec("bool", False),
    "feature_subsample": Spec("int", 0, low=0),
    "val_split": Spec("float", 0.2, low=0, high=1, low_open=True, high_open=True),
    "n_cells": Spec("int", None, low=1, allow_none=True),
    "n_drugs": Spec("int", None, low=1, allow_none=True),
    "n_cell_features": Spec("int", None, low=1, allow_none=True),
    "n_drug_features": Spec("int", None, low=1, allow_none=True),
    "n_samples": Spec("int", None, low=4, allow_none=True),
    "response_data": Spec("str", RESPONSE_FILE),
    "cell_data": Spec("str", RNASEQ_FILE),
    "drug_data": Spec("str", None, allow_none=True),
}
ALIASES = {**COMMON_ALIASES, "validation_split": "val_split", "dense_feature": "dense_feature_layers"}


def _one_list(v: Any) -> Any:
    """Combo's defaults file gives cell_features=['expression']: accept a one-element list."""
    if isinstance(v, (list, tuple)) and len(v) == 1:
        return v[0]
    if isinstance(v, str):
        s = v.strip()
        if s.startswith("[") and s.endswith("]"):
            inner = [x.strip().strip("'\"") for x in s[1:-1].split(",") if x.strip()]
            if len(inner) == 1:
                return inner[0]
    return v


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


class ComboNet(nn.Module):
    def __init__(self, n_cell: int, n_drug: int, p: Params):
        super().__init__()
        res, bn = p.residual, p.batch_normalization
        self.cell_net, hc = dense_stack(n_cell, p.dense_feature_layers, p, residual=res, batch_norm=bn)
        self.drug_net, hd = dense_stack(n_drug, p.dense_feature_layers, p, residual=res, batch_norm=bn)  # shared
        self.top, h = dense_stack(hc + 2 * hd, p.dense, p, residual=res, batch_norm=bn)
        self.out = nn.Linear(h, 1)
        # running a sub-network over its whole table is exact only without batch statistics/dropout
        self.table_ok = p.dropout == 0 and not bn

    def head(self, hc: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        return self.out(self.top(torch.cat([hc, h1, h2], dim=1))).squeeze(1)

    def forward(self, rows: torch.Tensor, cells: torch.Tensor, drugs: torch.Tensor, table_cells: bool, table_drugs: bool) -> torch.Tensor:
        c, d1, d2 = rows[:, 0], rows[:, 1], rows[:, 2]
        use_tc = table_cells and (self.table_ok or not self.training)
        use_td = table_drugs and (self.table_ok or not self.training)
        hc = self.cell_net(cells)[c] if use_tc else self.cell_net(cells[c])
        if use_td:
            hd = self.drug_net(drugs)
            h1, h2 = hd[d1], hd[d2]
        else:
            h1, h2 = self.drug_net(drugs[torch.cat([d1, d2])]).chunk(2)
        return self.head(hc, h1, h2)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _pairs(n_drugs: int) -> np.ndarray:
    i, j = np.triu_indices(n_drugs)  # d1 <= d2 (d1 == d2: single-drug rows, as NSC2 := NSC1)
    return np.stack([i, j], axis=1)


def synthetic(n_cells: int, n_drugs: int, n_cf: int, n_df: int, n_samples: int, seed: int,
              rank: int = 8) -> dict[str, np.ndarray]:
    """Cell lines and drugs with hidden factors; growth depends on both drugs' potency in the
    cell line (symmetric in the pair) and a pair-specific interaction.

    Cell features: factors -> genes + noise, std-scaled. Drug descriptors: factors ->
    descriptors + noise, a share turned into counts / binary flags / constants like dragon7,
    std-scaled. Growth fraction ~ 1 - 1.3 tanh(potency1 + potency2 + interaction) + noise,
    roughly in [-0.3, 1].
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 21]))
    u = rng.standard_normal((n_cells, rank))
    v = rng.standard_normal((n_drugs, rank))
    a = rng.standard_normal((rank, n_cf)) / math.sqrt(rank)
    cell = u @ a + 0.5 * rng.standard_normal((n_cells, n_cf))
    b = rng.standard_normal((rank, n_df)) / math.sqrt(rank)
    drug = v @ b + 0.5 * rng.standard_normal((n_drugs, n_df))
    kind = rng.random(n_df)
    counts, flags, const = kind < 0.3, (kind >= 0.3) & (kind < 0.4), (kind >= 0.4) & (kind < 0.45)
    drug[:, counts] = np.round(np.exp(drug[:, counts] / 2))
    drug[:, flags] = (drug[:, flags] > 0.5).astype(np.float64)
    drug[:, const] = 1.0
    m = rng.standard_normal((rank, rank)) / math.sqrt(rank)
    potency = np.logaddexp(0.0, 0.8 * (u @ m @ v.T) + rng.normal(-0.5, 0.5, n_drugs))  # softplus, (cells, drugs)
    inter_w = rng.standard_normal((rank, rank)) / math.sqrt(rank)

    pairs = _pairs(n_drugs)
    total = n_cells * len(pairs)
    n = min(int(n_samples), total)
    pick = rng.choice(total, size=n, replace=False)
    c = pick // len(pairs)
    d1, d2 = pairs[pick % len(pairs)].T
    inter = np.tanh(np.einsum("nr,nr->n", u[c] @ inter_w, v[d1] * v[d2]))
    growth = 1.0 - 1.3 * np.tanh(0.6 * (potency[c, d1] + potency[c, d2]) + 0.5 * inter)
    growth += 0.05 * rng.standard_normal(n)
    rows = np.stack([c, d1, d2], axis=1).astype(np.int64)
    return {"cells": std_scale(cell.astype(np.float32)), "drugs": std_scale(drug.astype(np.float32)),
            "rows": rows, "y": growth.astype(np.float32)}


def split(d: dict[str, np.ndarray], val_split: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 22]))
    n = len(d["y"])
    order = rng.permutation(n)
    n_val = max(1, int(n * val_split))
    if n_val >= n:
        raise bad_param("val_split", val_split, f"leaves no training rows out of {n}")
    tr, va = order[: n - n_val], order[n - n_val :]
    return {"cells": d["cells"], "drugs": d["drugs"], "rows_train": d["rows"][tr], "y_train": d["y"][tr],
            "rows_val": d["rows"][va], "y_val": d["y"][va]}


def _norm_cell(name: Any) -> str:
    return str(name).strip().replace(":", ".")


def _norm_nsc(x: Any) -> str:
    s = str(x).strip()
    for prefix in ("NSC.", "NSC-", "NSC"):
        if s.upper().startswith(prefix):
            s = s[len(prefix) :]
            break
    if s.endswith(".0") and s[:-2].isdigit():
        s = s[:-2]
    return s


def load_response(path: Path, cellmap_path: Path | None, use_combo_score: bool):
    """(CELLNAME, NSC1, NSC2, GROWTH) as the baseline derives it from NCI-ALMANAC."""
    import pandas as pd

    cols = ["CELLNAME", "NSC1", "CONC1", "NSC2", "CONC2", "PERCENTGROWTH", "VALID", "SCORE"]
    df = pd.read_csv(path, usecols=lambda c: c in cols, na_values=["na", "-", ""],
                     dtype={"CELLNAME": str, "NSC1": str, "NSC2": str, "VALID": str}, engine="c")
    missing = [c for c in cols if c not in df.columns and c != "SCORE"]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}")
    df = df[df["VALID"].astype(str).str.strip() == "Y"].copy()
    df["NSC2"] = df["NSC2"].fillna(df["NSC1"])
    df["CONC2"] = df["CONC2"].fillna(df["CONC1"])
    df["PERCENTGROWTH"] = pd.to_numeric(df["PERCENTGROWTH"], errors="coerce")
    df["SCORE"] = pd.to_numeric(df["SCORE"], errors="coerce").fillna(0) if "SCORE" in df.columns else 0.0
    df = df.dropna(subset=["PERCENTGROWTH", "NSC1"])
    df["NSC1"] = df["NSC1"].map(_norm_nsc)
    df["NSC2"] = df["NSC2"].map(_norm_nsc)
    if cellmap_path is not None:
        cm = pd.read_csv(cellmap_path, sep="\t", dtype=str)
        if {"Name", "CELLNAME"} <= set(cm.columns):
            mapping = dict(zip(cm["Name"].str.strip(), cm["CELLNAME"].str.strip()))
            df["CELLNAME"] = df["CELLNAME"].map(lambda x: mapping.get(str(x).strip(), x))
    df["CELLNAME"] = df["CELLNAME"].map(_norm_cell)
    keys = ["CELLNAME", "NSC1", "NSC2"]
    if use_combo_score:
        out = df.groupby(keys, sort=True)["SCORE"].max().reset_index().rename(columns={"SCORE": "GROWTH"})
    else:
        mean = df.groupby(keys + ["CONC1", "CONC2"], sort=True)["PERCENTGROWTH"].mean()
        out = mean.groupby(level=keys).min().reset_index().rename(columns={"PERCENTGROWTH": "GROWTH"})
        out["GROWTH"] = out["GROWTH"] / 100.0
    return out


def load_table(path: Path, id_col: str, norm, sep: str = "\t", prefix: str | None = None):
    """(ids, float32 matrix) of a TSV with one id column; mean-imputed and std-scaled.

    With ``prefix``, rows whose id starts with it are kept when there are any (the combined
    RNA-seq file holds several sources; the NCI60 rows are the ALMANAC cell lines)."""
    import pandas as pd

    df = pd.read_csv(path, sep=sep, engine="c", na_values=["na", "-", ""], low_memory=False)
    if id_col not in df.columns:
        raise ValueError(f"{path} has no {id_col!r} column")
    if prefix is not None:
        mask = df[id_col].astype(str).str.startswith(prefix)
        if mask.any():
            df = df[mask]
    ids = [norm(x) for x in df[id_col]]
    x = df.drop(columns=[id_col]).apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    x = x[:, ~np.all(np.isnan(x), axis=0)] if len(x) else x
    return ids, std_scale(impute_mean(x).astype(np.float32))


def load_real(files: dict[str, Path | None], p: Params) -> dict[str, np.ndarray]:
    import pandas as pd

    resp = load_response(files["response"], files.get("cellmap"), p.use_combo_score)

    # cell features
    if p.cell_features == "categorical":
        cell_ids = sorted(set(resp["CELLNAME"]))
        cells = np.eye(len(cell_ids), dtype=np.float32)
    else:
        cell_ids, cells = load_table(files["cells"], "Sample", str, prefix="NCI60")
        rmap: dict[str, str] = {}
        if files.get("cellmap_new") is not None:
            cm = pd.read_csv(files["cellmap_new"], sep="\t", dtype=str)
            if {"NCI60.ID", "CELLNAME"} <= set(cm.columns):
                rmap = dict(zip(cm["NCI60.ID"].str.strip(), cm["CELLNAME"].str.strip()))

        def rename(s: str) -> str:
            if s in rmap:
                return rmap[s]
            return s[len("NCI60."):] if s.startswith("NCI60.") else s

        cell_ids = [_norm_cell(rename(s)) for s in cell_ids]

    # drug features
    if p.drug_features == "categorical":
        drug_ids = sorted(set(resp["NSC1"]) | set(resp["NSC2"]))
        drugs = np.eye(len(drug_ids), dtype=np.float32)
    else:
        drug_ids, drugs = load_table(files["drugs"], "NAME", _norm_nsc)

    if p.feature_subsample:
        rng = np.random.default_rng(p.data_seed)
        if p.cell_features != "categorical" and p.feature_subsample < cells.shape[1]:
            cells = cells[:, np.sort(rng.choice(cells.shape[1], p.feature_subsample, replace=False))]
        if p.drug_features != "categorical" and p.feature_subsample < drugs.shape[1]:
            drugs = drugs[:, np.sort(rng.choice(drugs.shape[1], p.feature_subsample, replace=False))]

    ci = {c: i for i, c in enumerate(cell_ids)}
    di = {d: i for i, d in enumerate(drug_ids)}
    c = resp["CELLNAME"].map(ci)
    d1 = resp["NSC1"].map(di)
    d2 = resp["NSC2"].map(di)
    ok = c.notna() & d1.notna() & d2.notna()
    if not ok.any():
        raise ValueError("no response rows match both the cell features and the drug descriptors")
    rows = np.stack([c[ok].to_numpy(), d1[ok].to_numpy(), d2[ok].to_numpy()], axis=1).astype(np.int64)
    y = resp.loc[ok, "GROWTH"].to_numpy(np.float32)
    return split({"cells": cells, "drugs": drugs, "rows": rows, "y": y}, p.val_split, p.data_seed)


def find_real(p: Params) -> dict[str, Path | None] | None:
    need = [p.response_data]
    if p.cell_features == "mirna":
        if p.data_source == "real" or p.data_dir is not None:
            raise bad_param("cell_features", p.cell_features, "only synthetic data support mirna here")
        return None
    if p.cell_features == "expression":
        need.append(p.cell_data)
    drug_names = [p.drug_data] if p.drug_data else list(DRUG_FILES)
    errors: list[str] = []
    for drug_file in drug_names if p.drug_features == "descriptors" else [None]:
        req = need + ([drug_file] if drug_file else [])
        try:
            d = find_data_dir(p, req, ["Pilot1", "combo", "Pilot1/combo", "Combo"])
        except FileNotFoundError as e:
            errors.append(str(e))
            continue
        if d is None:
            return None
        files: dict[str, Path | None] = {"response": d / p.response_data}
        if p.cell_features == "expression":
            files["cells"] = d / p.cell_data
        if drug_file:
            files["drugs"] = d / drug_file
        files["cellmap"] = d / CELLMAP_FILE if (d / CELLMAP_FILE).is_file() else None
        files["cellmap_new"] = d / RNASEQ_MAP_FILE if (d / RNASEQ_MAP_FILE).is_file() else None
        return files
    raise FileNotFoundError("; ".join(errors))


def synthetic_shape(p: Params) -> tuple[int, int, int, int, int]:
    nc, nd, ncf, ndf, n = SIZES[p.data_size]
    ncf = p.n_cell_features or (MIRNA_FEATURES if p.cell_features == "mirna" and p.data_size == "full" else ncf)
    ndf = p.n_drug_features or ndf
    if p.feature_subsample:
        ncf, ndf = min(ncf, p.feature_subsample), min(ndf, p.feature_subsample)
    return (p.n_cells or nc, p.n_drugs or nd, ncf, ndf, p.n_samples or n)


def get_data(p: Params) -> tuple[tuple, dict[str, np.ndarray], str]:
    files = find_real(p)
    if files is not None:
        paths = [f for f in files.values() if f is not None]
        key = ("combo", "real", file_key(paths), p.cell_features, p.drug_features, p.use_combo_score,
               p.feature_subsample, p.val_split, p.data_seed)
        return key, cached(key, lambda: load_real(files, p)), "real"
    if p.use_combo_score:
        raise bad_param("use_combo_score", p.use_combo_score, "synthetic data have no combination score")
    nc, nd, ncf, ndf, n = synthetic_shape(p)
    key = ("combo", "synthetic", nc, nd, ncf, ndf, n, p.cell_features, p.drug_features, p.val_split, p.data_seed)

    def build() -> dict[str, np.ndarray]:
        d = synthetic(nc, nd, ncf, ndf, n, p.data_seed)
        if p.cell_features == "categorical":
            d["cells"] = np.eye(nc, dtype=np.float32)
        if p.drug_features == "categorical":
            d["drugs"] = np.eye(nd, dtype=np.float32)
        return split(d, p.val_split, p.data_seed)

    return key, cached(key, build), "synthetic"


# --------------------------------------------------------------------------------------------
# Objective
# --------------------------------------------------------------------------------------------


def run(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train Combo with CANDLE-style ``params``; see the module docstring."""
    t_start = time.perf_counter()

    def lists(params: dict) -> dict:
        for k in ("cell_features", "drug_features"):
            if k in params:
                params[k] = _one_list(params[k])
        return params

    p = parse_run_params(params, SCHEMA, ALIASES, "combo", "keras", prepare=lists)
    device = resolve_device(p.device)
    setup_backend(p, device)
    log = make_logger(p, "combo")

    key, host, source = get_data(p)
    data = to_device(key, host, device)
    t_data = time.perf_counter() - t_start
    cells, drugs = data["cells"], data["drugs"]
    r_tr, y_tr, r_va, y_va = data["rows_train"], data["y_train"], data["rows_val"], data["y_val"]
    n_val = int(r_va.shape[0])

    torch.manual_seed(p.seed)
    with device:
        model = ComboNet(int(cells.shape[1]), int(drugs.shape[1]), p)
        init_weights(model, p.initialization)
    opt = build_optimizer(p, model.parameters(), 1.0, device)
    lrc = LRControl(opt, p)
    eval_bs = p.eval_batch_size or 8192
    bs = p.batch_size
    table_cells = cells.shape[0] <= bs
    table_drugs = drugs.shape[0] <= 2 * bs

    def loss_fn(idx: torch.Tensor) -> torch.Tensor:
        pred = model(r_tr[idx], cells, drugs, table_cells, table_drugs).float()
        return torch.mean((pred - y_tr[idx]) ** 2)

    def predict_val() -> torch.Tensor:
        hc, hd = model.cell_net(cells), model.drug_net(drugs)
        preds = []
        for s, e in batched(n_val, eval_bs):
            r = r_va[s:e]
            preds.append(model.head(hc[r[:, 0]], hd[r[:, 1]], hd[r[:, 2]]).float())
        return torch.cat(preds)

    def val_fn() -> torch.Tensor:
        return torch.mean((predict_val() - y_va) ** 2)

    trainer = Trainer(model, opt, lrc, p, device, n_train=int(r_tr.shape[0]), loss_fn=loss_fn, val_fn=val_fn,
                      t_start=t_start, log=log)
    trainer.fit()
    out = trainer.summary()
    nan = float("nan")
    metrics = {"mse": nan, "mae": nan, "r2": nan, "corr": nan}
    if not trainer.diverged:
        model.eval()
        with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bool(p.bf16)):
            metrics = regression_metrics(y_va, predict_val())
    return finish(
        out,
        trainer,
        t_start,
        t_data,
        source,
        val_mse=metrics["mse"],
        val_mae=metrics["mae"],
        val_r2=metrics["r2"],
        val_corr=metrics["corr"],
        n_cells=int(cells.shape[0]),
        n_drugs=int(drugs.shape[0]),
        n_cell_features=int(cells.shape[1]),
        n_drug_features=int(drugs.shape[1]),
        n_train=int(r_tr.shape[0]),
        n_val=n_val,
    )
