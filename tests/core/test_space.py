import json

import numpy as np
import pytest

from emews.formats import read_supervisor_json
from emews import Bool, Categorical, Constant, Int, Ordinal, Real, Space, SpaceError

SPEC = {
    "lr": {"type": "real", "low": 1e-5, "high": 0.1, "log": True},
    "dropout": {"type": "real", "low": 0.0, "high": 0.9},
    "layers": {"type": "int", "low": 1, "high": 8},
    "units": {"type": "int", "low": 16, "high": 4096, "log": True},
    "batch": {"type": "ordinal", "values": [16, 32, 64, 128, 256, 512]},
    "opt": {"type": "categorical", "values": ["adam", "sgd", "rmsprop"]},
    "residual": {"type": "bool"},
    "data": {"type": "constant", "value": "small"},
}


def test_sample_gives_plain_python_values_in_range():
    space = Space.from_dict(SPEC)
    pts = space.sample(200, np.random.default_rng(0))
    for p in pts:
        assert space.validate(p) == p
        assert type(p["lr"]) is float and type(p["layers"]) is int and type(p["units"]) is int
        assert type(p["batch"]) is int and type(p["opt"]) is str and type(p["residual"]) is bool
        assert p["data"] == "small"
    lrs = np.array([p["lr"] for p in pts])
    # log-uniform: about half the samples below the geometric midpoint 1e-3
    assert 0.4 < np.mean(lrs < 1e-3) < 0.6
    assert {p["opt"] for p in pts} == {"adam", "sgd", "rmsprop"}
    assert {p["residual"] for p in pts} == {True, False}


def test_sampling_is_seeded():
    space = Space.from_dict(SPEC)
    assert space.sample(5, seed=7) == space.sample(5, seed=7)
    assert space.sample(5, seed=7) != space.sample(5, seed=8)


def test_encode_decode_round_trip():
    space = Space.from_dict(SPEC)
    pts = space.sample(50, seed=1)
    X = space.encode(pts)
    assert X.shape == (50, 2 + 2 + 1 + 3 + 1)  # constant dropped, categorical one-hot
    assert X.min() >= 0 and X.max() <= 1
    back = space.decode(X)
    for a, b in zip(pts, back):
        for k in a:
            if isinstance(a[k], float):
                assert b[k] == pytest.approx(a[k], rel=1e-9)
            else:
                assert a[k] == b[k]
    U = space.to_unit(pts)
    assert U.shape == (50, 7)
    assert space.from_unit(U)[0]["batch"] == pts[0]["batch"]


def test_int_unit_cells_reach_every_integer():
    d = Int("n", 1, 4)
    assert sorted({d.from_unit(u) for u in np.linspace(0, 0.9999, 101)}) == [1, 2, 3, 4]
    assert all(d.from_unit(d.to_unit(v)) == v for v in range(1, 5))


def test_python_objects_and_validation_errors():
    space = Space([Real("x", -1, 1), Ordinal("b", [16, 32]), Categorical("c", ["a"]), Bool("f"), Constant("k", 3)])
    assert space.validate({"x": 0, "b": 32.0, "c": "a", "f": 1}) == {"x": 0.0, "b": 32, "c": "a", "f": True, "k": 3}
    with pytest.raises(SpaceError, match=r"x: value 2 is outside \[-1.0, 1.0\]"):
        space.validate({"x": 2, "b": 16, "c": "a", "f": True})
    with pytest.raises(SpaceError, match=r"b: value 48 is not one of \[16, 32\]"):
        space.validate({"x": 0, "b": 48, "c": "a", "f": True})
    with pytest.raises(SpaceError, match="zz: not a dimension"):
        space.validate({"x": 0, "b": 16, "c": "a", "f": True, "zz": 1})
    with pytest.raises(SpaceError, match="f: missing"):
        space.validate({"x": 0, "b": 16, "c": "a"})


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"x": {"type": "real", "low": 2, "high": 1}}, r"src.yaml: space.x: low must not exceed high, got low=2, high=1"),
        ({"x": {"type": "real", "low": 0, "high": 1, "log": True}}, r"src.yaml: space.x.low: a log-scale dimension needs low > 0, got low=0"),
        ({"x": {"type": "int", "low": -3, "high": 9, "log": True}}, r"space.x.low: a log-scale dimension needs low > 0, got low=-3"),
        ({"x": {"type": "categorical", "values": []}}, r"src.yaml: space.x.values: must list at least one value, got \[\]"),
        ({"x": {"type": "ordinal", "values": [1, 1]}}, r"space.x.values: has repeated values"),
        ({"x": {"type": "real", "low": "a", "high": 1}}, r"space.x.low: must be a number, got 'a'"),
        ({"x": {"type": "reel", "low": 0, "high": 1}}, r"space.x.type: unknown type 'reel'"),
        ({"x": {"type": "real", "low": 0, "hihg": 1}}, r"space.x: missing required key 'high'"),
        ({"x": {"type": "real", "low": 0, "high": 1, "lgo": True}}, r"space.x.lgo: unknown key 'lgo'"),
        ({"x": {"low": 0, "high": 1}}, r"space.x: missing required key 'type'"),
        ({"x": 5}, r"space.x: must be a mapping"),
        ({}, r"space: must define at least one dimension"),
    ],
)
def test_bad_space_definitions_name_file_key_and_value(spec, message):
    with pytest.raises(SpaceError, match=message):
        Space.from_dict(spec, "src.yaml")


def test_supervisor_json(tmp_path):
    items = [
        {"name": "activation", "type": "categorical", "element_type": "string", "values": ["softmax", "elu", "relu"]},
        {"name": "batch_size", "type": "ordered", "element_type": "int", "values": [16, 32, 64], "sigma": 1},
        {"name": "epochs", "type": "int", "lower": 2, "upper": 5, "sigma": 1},
        {"name": "dropout", "type": "float", "lower": 0.0, "upper": 0.9, "sigma": 0.045},
        {"name": "residual", "type": "logical"},
        {"name": "data", "type": "constant", "value": "small"},
    ]
    p = tmp_path / "ga.json"
    p.write_text(json.dumps(items))
    space = read_supervisor_json(p)
    assert space.names == ["activation", "batch_size", "epochs", "dropout", "residual", "data"]
    assert space["dropout"].sigma == 0.045 and space["batch_size"].sigma == 1
    assert isinstance(space["residual"], Bool)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "e", "type": "int", "lower": 5, "upper": 2}]))
    with pytest.raises(SpaceError, match=r"bad.json: \[0\] \(e\): low must not exceed high"):
        read_supervisor_json(bad)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"name": "e",\n "type": }]')
    with pytest.raises(SpaceError, match=r"broken.json: invalid JSON at line 2"):
        read_supervisor_json(broken)
