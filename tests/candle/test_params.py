"""Parameter parsing shared by the CANDLE objectives (no training)."""

import math

import pytest

torch = pytest.importorskip("torch")

from benchmarks.candle import combo, nt3, p1b1  # noqa: E402
from benchmarks.candle.common import LRControl, parse_params, resolve_device  # noqa: E402


def parse(mod, params):
    return parse_params(params, mod.SCHEMA, mod.ALIASES)


def test_layer_lists_as_strings_or_lists():
    assert parse(p1b1, {"dense": "1000 1000"}).dense == [1000, 1000]
    assert parse(p1b1, {"dense": [978, 978, 978]}).dense == [978, 978, 978]
    assert parse(p1b1, {"dense": "[1500, 500]"}).dense == [1500, 500]
    assert parse(p1b1, {"dense": 1000}).dense == [1000]
    assert parse(nt3, {"conv": "50 50 50 50 50 1"}).conv == [50, 50, 50, 50, 50, 1]
    assert parse(combo, {"dense_feature_layers": (1000, 1000)}).dense_feature_layers == [1000, 1000]


def test_defaults_follow_the_keras_baselines():
    p = parse(nt3, {})
    assert (p.conv, p.pool, p.dense) == ([128, 20, 1, 128, 10, 1], [1, 10], [200, 20])
    assert (p.optimizer, p.learning_rate, p.batch_size, p.dropout) == ("sgd", 0.001, 20, 0.1)
    p = parse(p1b1, {})
    assert (p.dense, p.latent_dim, p.model, p.batch_size, p.optimizer) == ([2000, 600], 2, "ae", 100, "adam")
    p = parse(combo, {})
    assert (p.dense, p.dense_feature_layers, p.batch_size, p.optimizer) == ([1000] * 3, [1000] * 3, 32, "adam")


def test_supervisor_spellings():
    p = parse(nt3, {"drop": 0.3, "rng_seed": 7, "batch_size": "32", "epochs": 4.0, "optimizer": "Adam"})
    assert (p.dropout, p.seed, p.batch_size, p.epochs, p.optimizer) == (0.3, 7, 32, 4, "adam")
    p = parse(p1b1, {"residual": 1, "reduce_lr": "0", "warmup_lr": "true", "batch_normalization": False})
    assert (p.residual, p.reduce_lr, p.warmup_lr, p.batch_normalization) == (True, False, True, False)
    # the canonical name wins over an alias
    assert parse(nt3, {"drop": 0.3, "dropout": 0.2}).dropout == 0.2


def test_unknown_keys_are_ignored():
    p = parse(nt3, {"run_id": "x", "instance_directory": "/tmp", "learning_rate": 0.01})
    assert p.learning_rate == 0.01 and "run_id" not in p


@pytest.mark.parametrize(
    "mod, key, value",
    [
        (nt3, "optimizer", "adamm"),
        (p1b1, "optimizer", 3),
        (nt3, "batch_size", 0),
        (nt3, "batch_size", 16.5),
        (nt3, "batch_size", True),
        (nt3, "epochs", "many"),
        (nt3, "dropout", 1.0),
        (nt3, "dropout", -0.1),
        (nt3, "learning_rate", 0),
        (nt3, "learning_rate", float("nan")),
        (p1b1, "activation", "swishy"),
        (p1b1, "dense", "1000 abc"),
        (p1b1, "dense", "1000 -5"),
        (p1b1, "residual", "maybe"),
        (p1b1, "model", "gan"),
        (p1b1, "latent_dim", 0),
        (combo, "beta_1", "high"),
        (nt3, "optimizer_knobs", "always"),
        (nt3, "data_size", "huge"),
        (nt3, "max_seconds", -1),
    ],
)
def test_bad_values_name_key_and_value(mod, key, value):
    with pytest.raises(ValueError) as e:
        parse(mod, {key: value})
    assert repr(key) in str(e.value) and repr(value) in str(e.value)


def test_bad_optimizer_through_run():
    with pytest.raises(ValueError, match="'optimizer'.*'adamm'"):
        nt3.run({"optimizer": "adamm", "data_size": "tiny", "epochs": 1})


def test_conv_must_be_triplets_and_fit_the_input():
    with pytest.raises(ValueError, match="'conv'"):
        nt3.run({"conv": "50 50 50 50", "data_size": "tiny"})
    with pytest.raises(ValueError, match="'conv'"):
        nt3.run({"conv": "100 100 100 100 100 1", "data_size": "tiny"})  # 256 features: 2nd kernel too long
    with pytest.raises(ValueError, match="'pool'"):
        nt3.run({"conv": "8 4 1", "pool": [1000], "data_size": "tiny"})


def test_conv_stops_at_first_nonpositive_triplet_and_missing_pools_mean_none():
    layers = nt3.conv_layers([16, 4, 1, 0, 0, 0, 8, 2, 1], [2])
    assert layers == [(16, 4, 1, 2)]
    assert nt3.conv_layers([16, 4, 1, 8, 2, 1], [2]) == [(16, 4, 1, 2), (8, 2, 1, 1)]
    # the Supervisor NT3 choices fit the 'small' synthetic size
    for conv in ["50 50 50 50 50 1", "25 25 25 25 25 1", "64 32 16 32 64 1", "100 100 100 100 100 1", "32 20 16 32 10 1"]:
        assert nt3.check_shapes(nt3.SIZES["small"][0], parse(nt3, {"conv": conv}).conv, [1, 10]) > 0


def test_device_param():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="'device'"):
        resolve_device("tpu")


def test_lr_control_warmup_reduce_and_decay():
    model = torch.nn.Linear(2, 1)
    p = parse(p1b1, {"warmup_lr": True, "learning_rate": 0.011, "reduce_lr": True, "reduce_lr_patience": 1})
    opt = torch.optim.Adam(model.parameters(), lr=1.0)
    lrc = LRControl(opt, p)
    lrs = [lrc.start_epoch(e) for e in range(7)]
    assert lrs[0] == pytest.approx(0.001) and lrs[5] == pytest.approx(0.011) and lrs[6] == pytest.approx(0.011)
    assert lrs == sorted(lrs)
    lrc.end_epoch(1.0)
    lrc.end_epoch(1.0)  # no improvement for `patience` epochs -> halve
    assert lrc.start_epoch(6) == pytest.approx(0.0055)
    # Keras defaults when learning_rate is None
    p = parse(combo, {"optimizer": "sgd"})
    assert LRControl(torch.optim.SGD(model.parameters(), lr=1.0), p).start_epoch(0) == pytest.approx(0.01)
    p = parse(nt3, {"decay": 1.0, "learning_rate": 0.1})
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    lrc = LRControl(opt, p)
    lrc.start_epoch(0)
    lrc.before_step()
    lrc.before_step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    assert not math.isnan(lrc.epoch_lr)
