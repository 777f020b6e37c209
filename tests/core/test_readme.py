"""The README's examples run as written."""

import re

import pytest

from emews.journal import read_journal
from helpers import ROOT, base_config, run_cli, write_config


def _block(starts_with: str) -> str:
    text = (ROOT / "README.md").read_text()
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        if block.startswith(starts_with):
            return block
    raise AssertionError(f"no python block starting with {starts_with!r} in README.md")


@pytest.mark.parametrize("name, settings", [("myopt:Perturb", {"scale": 0.05}), ("myopt:halving", {"rounds": 2})])
def test_readme_plugin_examples(tmp_path, name, settings):
    (tmp_path / "myopt.py").write_text(_block("# myopt.py"))
    cfg = base_config(tmp_path, optimizer={"name": name, "settings": settings}, max_evals=32)
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ev = read_journal(tmp_path / "runs" / "t")["evals"]
    assert len(ev) == 32 and all(e["status"] == "done" for e in ev)


def test_readme_config_reference_is_a_valid_config(tmp_path):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Config reference\n\n```yaml\n(.*?)```", text, re.S).group(1)
    import yaml

    raw = yaml.safe_load(block)
    raw["objective"] = "emews.examples:noop"
    raw["output"] = str(tmp_path)
    raw["runner"] = {k: v for k, v in raw["runner"].items() if k in ("type", "retries")}
    from emews import parse_config

    cfg = parse_config(raw, "README.md")
    assert cfg.optimizer == "mbo" and cfg.space["learning_rate"].log and cfg.gpus["gpus_per_worker"] == 1


def test_readme_command_runner_example_runs(tmp_path):
    import textwrap

    text = (ROOT / "README.md").read_text()
    block = re.search(r"  ```yaml\n(  runner:\n.*?)  ```", text, re.S).group(1)
    import yaml

    runner = yaml.safe_load(textwrap.dedent(block))["runner"]
    (tmp_path / "train.py").write_text(textwrap.dedent('''
        import argparse, json
        ap = argparse.ArgumentParser()
        ap.add_argument("--params"); ap.add_argument("--lr", type=float)
        a = ap.parse_args()
        p = json.load(open(a.params))
        assert abs(p["learning_rate"] - a.lr) <= 1e-9 * a.lr
        print("epoch 1 ...")
        print(f"loss: {(a.lr - 0.01) ** 2}")
    '''))
    cfg = base_config(tmp_path, objective=None, runner=runner, max_evals=4)
    r = run_cli([str(write_config(tmp_path, cfg)), "--out", str(tmp_path / "e")], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ev = read_journal(tmp_path / "e")["evals"]
    assert len(ev) == 4 and all(e["status"] == "done" for e in ev), ev
    assert all(abs(e["loss"] - (e["params"]["learning_rate"] - 0.01) ** 2) < 1e-12 for e in ev)
    assert (tmp_path / "e" / "tasks").is_dir()


def test_readme_plugin_passes_the_contract_suite(tmp_path, monkeypatch):
    (tmp_path / "myopt.py").write_text(_block("# myopt.py"))
    monkeypatch.syspath_prepend(str(tmp_path))
    import myopt

    from emews.testing.optimizers import check_optimizer

    assert check_optimizer(myopt.Perturb, settings={"scale": 0.05})
    assert check_optimizer(myopt.halving, settings={"rounds": 2})


def test_readme_report_example_runs(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    import emews

    res = emews.search("emews.examples:sphere", {"x0": {"type": "real", "low": -1, "high": 1}}, max_evals=6,
                       workers=2, seed=0, output=tmp_path, experiment="q")
    code = _block("res = emews.Results.load(").replace('"runs/quickstart"', repr(str(res.directory)))
    exec(compile(code, "README.md", "exec"), {"emews": emews, "ax": Figure().add_subplot()})  # noqa: S102
    assert (res.directory / "report.json").is_file() and (res.directory / "params.png").is_file()


def test_readme_images_are_checked_in_and_small():
    text = (ROOT / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {"docs/img/trajectory.png", "docs/img/load.png", "docs/img/params.png"} <= set(images)
    for name in images:
        body = (ROOT / name).read_bytes()
        assert body[:8] == b"\x89PNG\r\n\x1a\n" and 1000 < len(body) < 100_000, name
