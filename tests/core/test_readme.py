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
