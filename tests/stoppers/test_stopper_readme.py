"""The README's stopper example works and passes the contract suite."""

from __future__ import annotations

import logging
import re

from helpers import ROOT


def _block(starts_with: str) -> str:
    text = (ROOT / "README.md").read_text()
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        if block.startswith(starts_with):
            return block
    raise AssertionError(f"no python block starting with {starts_with!r} in README.md")


def test_readme_stopper_example(tmp_path, monkeypatch):
    (tmp_path / "mystopper.py").write_text(_block("# mystopper.py"))
    monkeypatch.syspath_prepend(str(tmp_path))
    import mystopper

    p = mystopper.Patience(patience=3)
    # best 0.8 at step 2; steps 3, 4 do not improve; step 5 is 3 steps later: stop
    assert [p.report(1, s, v) for s, v in enumerate([1.0, 0.8, 0.9, 0.85, 0.81], 1)] == [False] * 4 + [True]
    p.finished(1, "stopped", 5, 0.81)
    assert p.report(1, 9, 5.0) is False

    from emews.stoppers import from_config
    from emews.testing.stoppers import check_stopper, stopper_checks

    logging.getLogger("emews.stoppers").setLevel(logging.ERROR)
    try:
        assert check_stopper(mystopper.Patience, settings={"patience": 3}) == [c.__name__ for c in stopper_checks()]
    finally:
        logging.getLogger("emews.stoppers").setLevel(logging.NOTSET)
    assert from_config({"name": "mystopper:Patience", "patience": 2}).patience == 2


def test_readme_stopper_yaml_example_builds():
    import yaml

    from emews.stoppers import ASHA, from_config

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Early stopping (stoppers)"):]
    raw = yaml.safe_load(re.search(r"```yaml\n(stopper:.*?)```", section, re.S).group(1))
    s = from_config(raw["stopper"], "README.md")
    assert isinstance(s, ASHA) and s.rungs == [1, 3, 9]
