"""The Slurm cluster the tests in this directory submit their jobs to (one per test session).

Where Slurm cannot start (not installed, not root) the tests skip with the reason; under CI
(the ``CI`` environment variable set, as ``.ci/run`` runs) that is a failure instead, so CI
cannot pass without having run them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import ClusterUnavailable, start_cluster  # noqa: E402


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slurm)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """munged, slurmctld and slurmd for the session (stopped at its end)."""
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm-cluster"))
    except ClusterUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Slurm tests, but Slurm cannot start: {e}", pytrace=False)
        pytest.skip(f"Slurm cannot start here: {e}")
    try:
        yield cluster
    finally:
        cluster.stop()
