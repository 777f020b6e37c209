"""NT3 objective: training on tiny synthetic data, result contract, real-file loader."""

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks.candle import nt3  # noqa: E402

FAST = {"data_size": "tiny", "conv": "32 8 4 32 4 1", "pool": "1 2", "optimizer": "adam",
        "learning_rate": 1e-3, "batch_size": 16, "device": "cpu"}


def test_validation_loss_falls():
    r = nt3.run({**FAST, "epochs": 8})
    hist = json.loads(r["history"])["val_loss"]
    assert len(hist) == 8 and r["epochs_completed"] == 8
    assert hist[-1] < hist[0] - 0.1, hist
    assert r["loss"] == pytest.approx(hist[-1], rel=1e-5)
    assert r["accuracy"] >= 0.8


def test_result_contract():
    r = nt3.run({**FAST, "epochs": 1})
    for key in ("loss", "val_loss", "accuracy", "val_accuracy", "runtime", "train_loss", "epochs_completed",
                "seconds_per_epoch", "n_params", "history", "device", "data_source"):
        assert key in r, key
    for k, v in r.items():
        assert type(v) in (float, int, bool, str), (k, type(v))
    assert r["device"] == "cpu" and r["data_source"] == "synthetic"
    assert r["n_features"] == nt3.SIZES["tiny"][0] and r["n_train"] == nt3.SIZES["tiny"][1]
    assert 0.0 <= r["accuracy"] <= 1.0 and r["runtime"] > 0 and math.isfinite(r["loss"])


def test_reproducible_by_seed():
    a = nt3.run({**FAST, "epochs": 2, "seed": 3})
    b = nt3.run({**FAST, "epochs": 2, "seed": 3})
    c = nt3.run({**FAST, "epochs": 2, "seed": 4})
    assert a["loss"] == b["loss"]
    assert a["loss"] != c["loss"]


def test_synthetic_data_deterministic_balanced_and_scaled():
    a = nt3.synthetic(300, 40, 20, seed=5)
    b = nt3.synthetic(300, 40, 20, seed=5)
    assert np.array_equal(a["x_train"], b["x_train"]) and np.array_equal(a["y_test"], b["y_test"])
    assert a["x_train"].shape == (40, 300) and a["x_test"].shape == (20, 300)
    assert a["y_train"].sum() == 20 and a["y_test"].sum() == 10
    allx = np.concatenate([a["x_train"], a["x_test"]])
    assert allx.min() >= 0 and np.isclose(np.abs(allx).max(axis=0), 1).mean() > 0.95
    assert not np.array_equal(a["x_train"], nt3.synthetic(300, 40, 20, seed=6)["x_train"])


def test_time_limit_stops_between_epochs():
    r = nt3.run({**FAST, "epochs": 50, "max_seconds": 0.001})
    assert r["epochs_completed"] == 1 and r["stopped_early"] is True


def test_bf16_autocast_runs():
    r = nt3.run({**FAST, "epochs": 1, "bf16": True})
    assert math.isfinite(r["loss"])


def test_divergence_is_reported():
    r = nt3.run({**FAST, "epochs": 3, "optimizer": "sgd", "learning_rate": 1e30})
    assert r["diverged"] is True and r["loss"] == math.inf


def test_loader_reads_original_format(tmp_path):
    pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    n_feat = 120
    for name, n in (("nt_train2.csv", 24), ("nt_test2.csv", 10)):
        y = np.arange(n) % 2
        x = rng.gamma(1.0, 2.0, (n, n_feat)) + 3.0 * y[:, None] * (np.arange(n_feat) < 10)
        np.savetxt(tmp_path / name, np.column_stack([y, x]), delimiter=",", fmt="%.5g")
    r = nt3.run({"data_dir": str(tmp_path), "epochs": 2, "conv": "8 4 1", "pool": "2", "dense": "16",
                 "optimizer": "adam", "learning_rate": 1e-3, "batch_size": 8})
    assert r["data_source"] == "real" and r["n_features"] == n_feat
    assert r["n_train"] == 24 and r["n_val"] == 10
    d = nt3.load_real(tmp_path / "nt_train2.csv", tmp_path / "nt_test2.csv", 2)
    assert d["x_train"].shape == (24, n_feat) and d["y_test"].tolist() == [0, 1] * 5
    assert np.abs(np.concatenate([d["x_train"], d["x_test"]])).max(axis=0) == pytest.approx(np.ones(n_feat))


def test_env_data_dir_without_files_falls_back_to_synthetic(tmp_path, monkeypatch):
    monkeypatch.setenv("CANDLE_DATA_DIR", str(tmp_path))
    r = nt3.run({**FAST, "epochs": 1})
    assert r["data_source"] == "synthetic"
    with pytest.raises(FileNotFoundError):
        nt3.run({**FAST, "epochs": 1, "data_dir": str(tmp_path)})
