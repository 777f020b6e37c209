"""Bad stopper settings and config entries: clear errors naming the key and the value."""

from __future__ import annotations

import pytest

from emews import stoppers
from emews.errors import ConfigError
from emews.stoppers import ASHA, BUILTIN, Hyperband, MedianStopper, from_config, resolve


@pytest.mark.parametrize("cls,settings,key,value", [
    (ASHA, {"min_resource": 30, "max_resource": 27}, "min_resource", "30"),
    (ASHA, {"reduction_factor": 1}, "reduction_factor", "1"),
    (ASHA, {"reduction_factor": 0.5}, "reduction_factor", "0.5"),
    (ASHA, {"min_resource": -1}, "min_resource", "-1"),
    (ASHA, {"min_resource": 0}, "min_resource", "0"),
    (ASHA, {"max_resource": "27"}, "max_resource", "'27'"),
    (ASHA, {"grace_trials": -2}, "grace_trials", "-2"),
    (ASHA, {"reduction_factor": True}, "reduction_factor", "True"),
    (Hyperband, {"max_resource": None}, "max_resource", "None"),
    (Hyperband, {"min_resource": 9, "max_resource": 3}, "min_resource", "9"),
    (Hyperband, {"max_resource": 27, "reduction_factor": 1}, "reduction_factor", "1"),
    (Hyperband, {"max_resource": 27, "n_brackets": 5}, "n_brackets", "5"),
    (Hyperband, {"max_resource": 27, "n_brackets": 0}, "n_brackets", "0"),
    (MedianStopper, {"warmup_steps": -1}, "warmup_steps", "-1"),
    (MedianStopper, {"min_trials": 0}, "min_trials", "0"),
    (MedianStopper, {"interval": 1.5}, "interval", "1.5"),
    (MedianStopper, {"warmup_steps": float("nan")}, "warmup_steps", "nan"),
])
def test_bad_values_name_key_and_value(cls, settings, key, value):
    with pytest.raises(ValueError) as e:
        cls(**settings)
    assert isinstance(e.value, ConfigError) and e.value.key == key
    assert f"{key}={value}" in str(e.value)


@pytest.mark.parametrize("cls,typo,meant", [
    (ASHA, "reduction_facter", "reduction_factor"),
    (ASHA, "min_resources", "min_resource"),
    (Hyperband, "brackets", "n_brackets"),
    (MedianStopper, "warmup", "warmup_steps"),
])
def test_unknown_setting_is_a_type_error_with_did_you_mean(cls, typo, meant):
    with pytest.raises(TypeError, match=f"unknown setting '{typo}' \\(value 3\\); did you mean '{meant}'"):
        cls(**{typo: 3}, **({"max_resource": 27} if cls is Hyperband else {}))


def test_from_config_builds_each_builtin():
    a = from_config({"name": "asha", "min_resource": 1, "max_resource": 27, "reduction_factor": 3})
    assert isinstance(a, ASHA) and a.rungs == [1, 3, 9]
    h = from_config({"name": "hyperband", "settings": {"max_resource": 27}})
    assert isinstance(h, Hyperband) and h.n_brackets == 4
    assert isinstance(from_config("median"), MedianStopper)
    assert from_config(None) is None
    ready = ASHA()
    assert from_config(ready) is ready
    assert isinstance(from_config(ASHA), ASHA)
    assert isinstance(from_config("emews.stoppers._asha:ASHA"), ASHA)
    assert set(BUILTIN) == {"median", "asha", "hyperband"} and resolve("asha") is ASHA


@pytest.mark.parametrize("spec,key,needle", [
    ({"name": "ashaa"}, "stopper.name", "did you mean 'asha'"),
    ("medain", "stopper", "did you mean 'median'"),
    ({"name": "asha", "reduction_facter": 3}, "stopper.reduction_facter",
     "unknown setting 'reduction_facter' (value 3) for stopper ASHA; did you mean 'reduction_factor'"),
    ({"name": "asha", "min_resource": 30, "max_resource": 27}, "stopper.min_resource",
     "min_resource=30 > max_resource=27"),
    ({"name": "hyperband"}, "stopper.max_resource", "max_resource=None"),
    ({"min_resource": 1}, "stopper", "needs a 'name'"),
    ({"name": "asha", "settings": [1]}, "stopper.settings", "must be a mapping"),
    ({"name": "no_such_module_xyz:Cls"}, "stopper.name", "no_such_module_xyz"),
    ({"name": "emews.stoppers:NoSuchClass"}, "stopper.name", "NoSuchClass"),
    ({"name": "collections:OrderedDict"}, "stopper.name", "not a stopper"),
])
def test_from_config_errors_name_file_key_and_value(spec, key, needle):
    with pytest.raises(ConfigError) as e:
        from_config(spec, source="exp.yaml")
    assert e.value.source == "exp.yaml" and e.value.key == key, (e.value.source, e.value.key, str(e.value))
    assert str(e.value).startswith(f"exp.yaml: {key}: ")
    assert needle in str(e.value)


def test_from_config_checks_plugin_setting_names():
    class Patience(stoppers.Stopper):
        def __init__(self, patience=3):
            self.patience = patience

        def report(self, task_id, step, loss):
            return False

        def finished(self, task_id, status, step, loss):
            pass

    assert from_config({"name": Patience, "patience": 2}).patience == 2
    with pytest.raises(ConfigError, match="unknown setting 'patiense' \\(value 2\\).*did you mean 'patience'") as e:
        from_config({"name": Patience, "patiense": 2}, "c.yaml")
    assert e.value.key == "stopper.patiense"


def test_importing_stoppers_stays_light():
    """emews.stoppers and its contract suite import nothing beyond what ``import emews`` does
    (and the standard library)."""
    import subprocess
    import sys

    code = ("import sys, emews; before = set(sys.modules); import emews.stoppers, emews.testing.stoppers; "
            "print(sorted({m.split('.')[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "['emews']", out.stdout  # only emews' own modules and the standard library
