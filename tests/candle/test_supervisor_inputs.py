"""The CANDLE objectives take what the real Supervisor and Benchmarks files give them: the nine
optimizer knobs of the GA files (inert, as in the Keras baselines, unless applied), and the
Benchmarks ``*_default_model.txt`` files as base parameters (tests/data/candle, byte copies)."""

import json
import logging

import pytest

torch = pytest.importorskip("torch")

from benchmarks.candle import combo, common, nt3, p1b1  # noqa: E402
from benchmarks.candle.default_model import ENV, read_default_model  # noqa: E402
from helpers import ROOT  # noqa: E402

CANDLE = ROOT / "tests" / "data" / "candle" / "Pilot1"
TINY = {"data_size": "tiny", "epochs": 1, "device": "cpu", "threads": 1}
NT3_TINY = {**TINY, "conv": "16 8 4 16 4 1", "pool": "1 2"}
# the largest values the real GA files (workflows/GA/data/nt3_param_space_ga.json) allow
WILD = {"momentum": 10.0, "rho": 10.0, "beta_1": 10.0, "beta_2": 10.0, "decay": 10.0, "clipnorm": 1e-4,
        "clipvalue": 1e-4, "epsilon": 1e-14, "nesterov": True}


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adam", "adadelta"])
def test_knobs_are_inert_by_default_as_in_the_keras_baselines(optimizer):
    plain = nt3.run({**NT3_TINY, "optimizer": optimizer, "epochs": 2})
    wild = nt3.run({**NT3_TINY, "optimizer": optimizer, "epochs": 2, **WILD})
    assert wild["inert_params"].split(",") == list(common.KNOBS)
    assert plain["inert_params"] == ""
    # the same model, trained the same way: the knobs changed nothing
    assert json.loads(wild["history"])["val_loss"] == json.loads(plain["history"])["val_loss"]


def test_baseline_constants_are_those_of_each_baseline():
    p = common.parse_params({"optimizer": "adadelta", "rho": 0.5}, nt3.SCHEMA, nt3.ALIASES)
    common.resolve_optimizer_knobs(p, "candle")  # NT3: candle.build_optimizer + keras_default_config()
    assert (p.rho, p.epsilon, p.momentum, p.decay, p.clipnorm) == (0.9, 1e-8, 0.0, 0.0, None)
    opt = common.build_optimizer(p, torch.nn.Linear(2, 1).parameters(), 1.0, torch.device("cpu"))
    assert opt.defaults["rho"] == 0.9 and opt.defaults["eps"] == 1e-8
    p = common.parse_params({"optimizer": "adadelta", "rho": 0.5}, p1b1.SCHEMA, p1b1.ALIASES)
    common.resolve_optimizer_knobs(p, "keras")  # P1B1/Combo: the tf.keras class defaults
    opt = common.build_optimizer(p, torch.nn.Linear(2, 1).parameters(), 1.0, torch.device("cpu"))
    assert opt.defaults["rho"] == 0.95 and opt.defaults["eps"] == 1e-7


def test_applied_knobs_act_and_bad_values_fail_naming_key_and_value():
    base = {**NT3_TINY, "optimizer": "sgd", "epochs": 2, "optimizer_knobs": "apply"}
    a = nt3.run({**base, "momentum": 0.9, "nesterov": True})
    b = nt3.run(base)
    assert a["inert_params"] == "" and a["history"] != b["history"]
    # rho is not an SGD setting: inert (not an error) even when applied
    assert nt3.run({**base, "rho": 7.0})["inert_params"] == "rho"
    for key, value, opt in [("momentum", 1.5, "sgd"), ("rho", 7.3, "rmsprop"), ("beta_1", 2.0, "adam"),
                            ("beta_2", 1.0, "nadam"), ("epsilon", 0.0, "adam"), ("decay", -1.0, "sgd"),
                            ("clipnorm", 0.0, "adam")]:
        with pytest.raises(ValueError) as e:
            nt3.run({**base, "optimizer": opt, key: value})
        assert repr(key) in str(e.value) and repr(value) in str(e.value)


def test_default_model_files_are_read_without_executing_them():
    d = read_default_model(CANDLE / "NT3" / "nt3_default_model.txt")
    assert d["conv"] == [128, 20, 1, 128, 10, 1] and d["learning_rate"] == 0.001 and d["add_noise"] is False
    d = read_default_model(CANDLE / "P1B1" / "p1b1_default_model.txt")
    assert d["learning_rate"] is None and d["timeout"] == 3600  # [Monitor_Params] merged


@pytest.mark.parametrize("mod, path, n_ignored", [
    (nt3, "NT3/nt3_default_model.txt", 9), (p1b1, "P1B1/p1b1_default_model.txt", 0),
    (combo, "Combo/combo_default_model.txt", 2)])
def test_default_model_files_are_base_parameters(mod, path, n_ignored, caplog, monkeypatch):
    file = str(CANDLE / path)
    extra = {"conv": "16 8 4 16 4 1", "pool": "1 2"} if mod is nt3 else {}
    with caplog.at_level(logging.WARNING, logger="benchmarks.candle"):
        r = mod.run({**TINY, **extra, "default_model": file, "batch_size": 16})
        mod.run({**TINY, **extra, "default_model": file, "batch_size": 16})
    ignored = [k for k in r["default_model_ignored"].split(",") if k]
    assert len(ignored) == n_ignored
    warned = [m for m in caplog.messages if file in m]
    assert len(warned) == (1 if n_ignored else 0)  # once per process
    if n_ignored:
        assert all(k in warned[0] for k in ignored)
    assert r["epochs_completed"] == 1  # the proposal wins over the file (epochs 400 / 100 / 10)
    # the file's values are the base: NT3's learning_rate 0.001 with its SGD
    if mod is nt3:
        assert r["final_lr"] == pytest.approx(0.001)
        monkeypatch.setenv(ENV, file)  # the same through the environment (runner: {env: ...})
        assert nt3.run({**TINY, **extra})["default_model_ignored"] == r["default_model_ignored"]


@pytest.mark.parametrize("mod, path, message", [
    (nt3, "NT3/nt3_noise_model.txt", r"nt3_noise_model.txt.*'alpha'.*abstention.*does not implement"),
    (nt3, "TC1/tc1_default_model.txt", r"tc1_default_model.txt.*'model_name': 'tc1'"),
    (p1b1, "NT3/nt3_default_model.txt", r"'model_name': 'nt3'"),
    (combo, "P1B1/p1b1_default_model.txt", r"'model_name': 'p1b1'"),
])
def test_a_file_of_another_model_is_refused(mod, path, message):
    with pytest.raises(ValueError, match=message):
        mod.run({**TINY, "default_model": str(CANDLE / path)})


def test_parameter_sets_for_another_model_or_mode_are_refused():
    with pytest.raises(ValueError, match=r"'model_name': 'nn_reg0'"):
        nt3.run({**NT3_TINY, "model_name": "nn_reg0"})
    with pytest.raises(ValueError, match=r"'add_noise': True"):
        nt3.run({**NT3_TINY, "add_noise": True})
    with pytest.raises(ValueError, match=r"'cv': 5"):
        combo.run({**TINY, "cv": 5})
    assert nt3.run({**NT3_TINY, "model_name": "nt3"})["epochs_completed"] == 1
