"""Dispatch throughput of the local pool against concurrent.futures.ProcessPoolExecutor.

    python benchmarks/perf/dispatch.py [--evals 5000] [--workers 2] [--repeat 3]

A no-op objective, the random optimizer and journaling on (the whole emews path: optimizer
process -> driver -> worker -> driver -> journal -> optimizer). The baseline maps the same
function over the same number of items with ``ProcessPoolExecutor(workers).map`` (spawn
context, like emews; the default chunksize=1, i.e. one task per message, like emews).
Prints evaluations/s for both and the ratios: end to end (goal: >= 0.5) and steady state
(issue 19: >= 0.9), the span from the first task's start to the last one's end for emews,
the ``map`` alone for the executor, once every one of its workers has started (with the
spawn context it starts them one by one as tasks wait, so a warm-up of one task would leave
the second worker's start inside the measured span).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import emews  # noqa: E402
from emews.examples import noop  # noqa: E402

SPACE = {"x0": {"type": "real", "low": -1.0, "high": 1.0}, "x1": {"type": "int", "low": 0, "high": 100},
         "opt": {"type": "categorical", "values": ["a", "b", "c"]}}


def run_emews(evals: int, workers: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = emews.search("emews.examples:noop", SPACE, "random", max_evals=evals, workers=workers, seed=0, output=d,
                           report=False)  # the plots are post-processing, not dispatch
        total = time.perf_counter() - t0
        assert len(res) == evals and res.count("done") == evals, res
        # the span the workers were fed (first start to last end), excluding process start-up
        starts = [r["start"] for r in res.rows]
        ends = [r["end"] for r in res.rows]
        return total, max(ends) - min(starts)


#: each warm-up task sleeps this long, so the tasks of one round need more than one worker
WARM_SLEEP = 0.05


def _pid_after(delay: float) -> int:
    time.sleep(delay)
    return os.getpid()


def run_ppe(evals: int, workers: int) -> tuple[float, float]:
    params = emews.Space.from_dict(SPACE).sample(evals, seed=0)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
        ex.submit(noop, params[0]).result()  # count pool start-up separately, as for emews
        pids: set[int] = set()
        slept = 0.0  # the warm-up's sleeps, not counted end to end
        while len(pids) < workers:  # every worker started and has run a task (as emews's, before its span)
            pids.update(ex.map(_pid_after, [WARM_SLEEP] * workers))
            slept += WARM_SLEEP
        t2 = time.perf_counter()
        out = list(ex.map(noop, params))
        t3 = time.perf_counter()
    assert len(out) == evals
    return time.perf_counter() - t0 - slept, t3 - t2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evals", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    e_tot, e_span, p_tot, p_span = [], [], [], []
    for _ in range(a.repeat):
        t, s = run_emews(a.evals, a.workers)
        e_tot.append(t)
        e_span.append(s)
        t, s = run_ppe(a.evals, a.workers)
        p_tot.append(t)
        p_span.append(s)
    et, es, pt, ps = (statistics.median(x) for x in (e_tot, e_span, p_tot, p_span))
    print(f"dispatch: {a.evals} no-op evaluations, {a.workers} local workers, median of {a.repeat}")
    print(f"  emews (incl. start-up, journal, outputs): {a.evals / et:9.0f} evals/s  ({et:.2f} s)")
    print(f"  ProcessPoolExecutor.map (incl. start-up): {a.evals / pt:9.0f} evals/s  ({pt:.2f} s)")
    print(f"  ratio emews / ProcessPoolExecutor (end to end): {pt / et:.2f}   (goal >= 0.5)")
    print(f"  steady state: emews {a.evals / es:.0f} evals/s vs PPE {a.evals / ps:.0f} evals/s -> ratio {ps / es:.2f}"
          "   (goal >= 0.9)")


if __name__ == "__main__":
    main()
