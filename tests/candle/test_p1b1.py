"""P1B1 objective: training on tiny synthetic data, variants, real-file loader."""

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks.candle import p1b1  # noqa: E402
from benchmarks.candle.common import parse_params  # noqa: E402

FAST = {"data_size": "tiny", "dense": "64 32", "batch_size": 32, "device": "cpu"}


def test_validation_loss_falls():
    r = p1b1.run({**FAST, "epochs": 8, "latent_dim": 16})
    hist = json.loads(r["history"])["val_loss"]
    assert len(hist) == 8
    assert hist[-1] < 0.8 * hist[0], hist
    assert r["val_mse"] == pytest.approx(r["loss"], rel=1e-3)  # ae: the loss is the MSE
    for key in ("loss", "runtime", "val_corr", "val_r2", "val_mse", "test_mse", "test_corr", "test_r2"):
        assert key in r and type(r[key]) is float, key
    assert r["val_corr"] > 0.3


@pytest.mark.parametrize(
    "extra",
    [
        {"model": "vae", "latent_dim": 8},
        {"model": "cvae", "latent_dim": 4},
        {"residual": True, "batch_normalization": True, "dropout": 0.2, "dense": "64 64"},
        {"warmup_lr": True, "reduce_lr": True, "optimizer": "rmsprop", "alpha_dropout": True, "dropout": 0.1,
         "activation": "selu"},
    ],
)
def test_variants_train(extra):
    r = p1b1.run({**FAST, "epochs": 4, **extra})
    hist = json.loads(r["history"])["val_loss"]
    assert all(math.isfinite(v) for v in hist)
    assert hist[-1] < hist[0], hist


def test_residual_adds_only_between_equal_widths():
    p = parse_params({**FAST, "dense": "64 64 32", "residual": 1}, p1b1.SCHEMA, p1b1.ALIASES)
    net = p1b1.P1B1Net(200, 1, p)
    assert [b.residual for b in net.encoder] == [False, True, False]
    assert [b.residual for b in net.decoder] == [False, False, True]


def test_landmark_genes_size():
    r = p1b1.run({**FAST, "use_landmark_genes": True, "epochs": 1, "n_train": 40, "n_test": 10})
    assert r["n_features"] == p1b1.LANDMARK_GENES


@pytest.mark.slow
def test_wider_bottleneck_reconstructs_better():
    kw = {**FAST, "epochs": 10, "learning_rate": 3e-3}
    narrow = p1b1.run({**kw, "latent_dim": 1})
    wide = p1b1.run({**kw, "latent_dim": 32})
    assert wide["loss"] < narrow["loss"]


def _write_p1b1(path, rng, genes, n, types):
    import pandas as pd

    df = pd.DataFrame(rng.gamma(1.0, 2.0, (n, len(genes))).round(4), columns=genes)
    df.insert(0, "cancer_type", [types[i % len(types)] for i in range(n)])
    df.insert(0, "case_id", [f"case-{path.stem}-{i}" for i in range(n)])
    df.to_csv(path, index=False)


def test_loader_reads_original_format(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    genes = [f"ENSG{i:011d}" for i in range(50)]
    types = ["TCGA-BRCA", "TCGA-LUAD", "TCGA-KIRC"]
    _write_p1b1(tmp_path / "P1B1.train.csv", rng, genes, 40, types)
    _write_p1b1(tmp_path / "P1B1.test.csv", rng, genes, 12, types)
    pd.DataFrame({"symbol": [f"G{i}" for i in range(20)], "gdc": genes[::5] + [f"ENSG9{i:010d}" for i in range(10)]}).to_csv(
        tmp_path / "lincs1000.tsv", sep="\t", index=False)

    r = p1b1.run({**FAST, "data_dir": str(tmp_path), "epochs": 2, "model": "cvae"})
    assert r["data_source"] == "real" and r["n_features"] == 50
    assert r["n_train"] + r["n_val"] == 40 and r["n_val"] == 4
    r = p1b1.run({**FAST, "data_dir": str(tmp_path), "epochs": 1, "use_landmark_genes": True})
    assert r["n_features"] == 10  # the lincs genes present in the file

    p = parse_params({"data_dir": str(tmp_path)}, p1b1.SCHEMA, p1b1.ALIASES)
    d = p1b1.load_real(tmp_path / "P1B1.train.csv", tmp_path / "P1B1.test.csv", None, p)
    allx = np.concatenate([d["x_train"], d["x_val"], d["x_test"]])
    assert allx.min() == pytest.approx(0) and allx.max() == pytest.approx(1)
    assert set(np.concatenate([d["y_train"], d["y_test"]])) <= {0, 1, 2}
    assert d["x_test"].shape == (12, 50)


def test_loader_dev_file_names(tmp_path):
    pytest.importorskip("pandas")
    rng = np.random.default_rng(1)
    genes = [f"g{i}" for i in range(20)]
    _write_p1b1(tmp_path / "P1B1.dev.train.csv", rng, genes, 30, ["a", "b"])
    _write_p1b1(tmp_path / "P1B1.dev.test.csv", rng, genes, 10, ["a", "b"])
    r = p1b1.run({**FAST, "data_dir": str(tmp_path), "epochs": 1})
    assert r["data_source"] == "real" and r["n_features"] == 20
