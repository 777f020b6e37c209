"""Combo objective: training on tiny synthetic data, shared drug network, real-file loader."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks.candle import combo  # noqa: E402
from benchmarks.candle.common import parse_params  # noqa: E402

FAST = {"data_size": "tiny", "dense": "128 128", "dense_feature_layers": "64 64", "batch_size": 64,
        "n_samples": 1500, "device": "cpu"}


def test_validation_loss_falls():
    r = combo.run({**FAST, "epochs": 6})
    hist = json.loads(r["history"])["val_loss"]
    assert len(hist) == 6
    assert hist[-1] < 0.8 * hist[0], hist
    for key in ("loss", "runtime", "val_mae", "val_r2", "val_corr", "val_mse"):
        assert key in r and type(r[key]) is float, key
    assert r["val_mse"] == pytest.approx(r["loss"], rel=1e-4)
    assert r["val_r2"] > 0.2 and r["val_corr"] > 0.5


def test_drug_network_is_shared_and_symmetric_inputs():
    p = parse_params(FAST, combo.SCHEMA, combo.ALIASES)
    net = combo.ComboNet(64, 128, p)
    n_drug = sum(t.numel() for t in net.drug_net.parameters())
    n_all = sum(t.numel() for t in net.parameters())
    n_cell = sum(t.numel() for t in net.cell_net.parameters())
    n_top = sum(t.numel() for t in net.top.parameters()) + sum(t.numel() for t in net.out.parameters())
    assert n_all == n_cell + n_drug + n_top  # one drug sub-network, used twice
    assert net.top[0].linear.in_features == 64 * 3


@pytest.mark.parametrize("extra", [{}, {"dropout": 0.0, "residual": True}])
def test_table_mode_is_exact(extra):
    p = parse_params({**FAST, **extra}, combo.SCHEMA, combo.ALIASES)
    torch.manual_seed(0)
    net = combo.ComboNet(16, 24, p)
    cells, drugs = torch.randn(5, 16), torch.randn(7, 24)
    rows = torch.tensor([[0, 1, 2], [4, 6, 6], [2, 0, 3], [1, 5, 1]])
    a = net(rows, cells, drugs, False, False)
    b = net(rows, cells, drugs, True, True)
    assert torch.allclose(a, b, atol=1e-5)
    ga = torch.autograd.grad(a.sum(), list(net.parameters()))
    gb = torch.autograd.grad(net(rows, cells, drugs, True, True).sum(), list(net.parameters()))
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(ga, gb))


def test_variants_train():
    r = combo.run({**FAST, "epochs": 3, "residual": True, "batch_normalization": True, "dropout": 0.1,
                   "warmup_lr": True, "activation": "tanh", "optimizer": "rmsprop"})
    hist = json.loads(r["history"])["val_loss"]
    assert hist[-1] < hist[0]
    r = combo.run({**FAST, "epochs": 2, "cell_features": ["categorical"], "drug_features": "categorical"})
    assert r["n_cell_features"] == r["n_cells"] and r["n_drug_features"] == r["n_drugs"]


def test_synthetic_shapes():
    d = combo.synthetic(*combo.SIZES["tiny"], seed=1)
    assert d["cells"].shape == (20, 64) and d["drugs"].shape == (24, 128)
    assert d["rows"].shape == (3000, 3) and (d["rows"][:, 1] <= d["rows"][:, 2]).all()
    assert np.allclose(d["cells"].mean(0), 0, atol=1e-5)
    assert len(np.unique(d["rows"], axis=0)) == 3000
    e = combo.synthetic(*combo.SIZES["tiny"], seed=1)
    assert np.array_equal(d["y"], e["y"])


def _write_combo_files(root, rng):
    import pandas as pd

    cells = {"MCF7": "BR:MCF7", "A549/ATCC": "LC:A549_ATCC", "HOP-62": "LC:HOP_62"}
    nscs = ["740", "3088", "752", "119875"]
    rows = []
    for cname in cells:
        for i, a in enumerate(nscs):
            for b in nscs[i:]:
                for c1 in (1e-6, 1e-5):
                    for c2 in (1e-7, 1e-6):
                        for rep in range(2):
                            same = a == b
                            rows.append({
                                "COMBODRUGSEQ": len(rows), "SCREENER": "FG", "STUDY": "FG-1", "TESTDATE": "01/01/2010",
                                "PLATE": "P1", "NSC1": a, "CONC1": c1, "NSC2": "" if same else b,
                                "CONC2": "" if same else c2, "PERCENTGROWTH": round(float(rng.uniform(-50, 110)), 2),
                                "SCORE": "" if same else round(float(rng.normal(0, 20)), 2),
                                "VALID": "Y", "PANEL": "x", "CELLNAME": cname,
                            })
    df = pd.DataFrame(rows)
    df.loc[0, "VALID"] = "N"
    df.loc[0, "PERCENTGROWTH"] = -1000.0  # an invalid row must not count
    df.to_csv(root / combo.RESPONSE_FILE, index=False)
    pd.DataFrame({"Name": list(cells), "CELLNAME": list(cells.values())}).to_csv(root / combo.CELLMAP_FILE, sep="\t", index=False)
    nci_ids = {"NCI60.MCF7": "BR:MCF7", "NCI60.A549": "LC:A549_ATCC", "NCI60.HOP-62": "LC:HOP_62"}
    pd.DataFrame({"NCI60.ID": list(nci_ids), "CELLNAME": list(nci_ids.values())}).to_csv(root / combo.RNASEQ_MAP_FILE, sep="\t", index=False)
    genes = [f"GENE{i}" for i in range(12)]
    samples = list(nci_ids) + ["CCLE.OTHER", "GDSC.OTHER"]
    expr = pd.DataFrame(rng.normal(5, 2, (len(samples), len(genes))).round(3), columns=genes)
    expr.insert(0, "Sample", samples)
    expr.to_csv(root / combo.RNASEQ_FILE, sep="\t", index=False)
    desc = pd.DataFrame(rng.normal(0, 1, (len(nscs), 9)).round(3), columns=[f"D{i}" for i in range(9)])
    desc.iloc[1, 2] = np.nan
    desc["ALLNA"] = np.nan
    desc.insert(0, "NAME", [f"NSC.{n}" for n in nscs])
    desc.to_csv(root / combo.DRUG_FILES[0], sep="\t", index=False, na_rep="na")
    return df


def test_loader_reads_original_format(tmp_path):
    pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    raw = _write_combo_files(tmp_path, rng)

    resp = combo.load_response(tmp_path / combo.RESPONSE_FILE, tmp_path / combo.CELLMAP_FILE, False)
    # 3 cells x 10 unordered pairs (incl. single drugs)
    assert len(resp) == 30
    assert set(resp["CELLNAME"]) == {"BR.MCF7", "LC.A549_ATCC", "LC.HOP_62"}
    valid = raw[raw["VALID"] == "Y"]
    sel = valid[(valid["CELLNAME"] == "MCF7") & (valid["NSC1"] == "740") & (valid["NSC2"] == "3088")]
    expected = sel.groupby(["CONC1", "CONC2"])["PERCENTGROWTH"].mean().min() / 100
    got = resp[(resp["CELLNAME"] == "BR.MCF7") & (resp["NSC1"] == "740") & (resp["NSC2"] == "3088")]["GROWTH"]
    assert got.item() == pytest.approx(expected, rel=1e-5)
    single = resp[(resp["NSC1"] == "752") & (resp["NSC2"] == "752")]
    assert len(single) == 3  # single-drug rows: NSC2 := NSC1
    assert (resp["GROWTH"] > -5).all()  # the invalid row was dropped

    r = combo.run({**FAST, "data_dir": str(tmp_path), "epochs": 2, "n_samples": None, "batch_size": 8})
    assert r["data_source"] == "real"
    assert (r["n_cells"], r["n_drugs"], r["n_cell_features"], r["n_drug_features"]) == (3, 4, 12, 9)
    assert r["n_train"] + r["n_val"] == 30 and r["n_val"] == 6

    score = combo.load_response(tmp_path / combo.RESPONSE_FILE, tmp_path / combo.CELLMAP_FILE, True)
    assert len(score) == 30
    with pytest.raises(ValueError, match="use_combo_score"):
        combo.run({**FAST, "use_combo_score": True, "epochs": 1})
