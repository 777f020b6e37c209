"""Population-based training (Jaderberg et al. 2017; CANDLE Supervisor ``workflows/pbt``,
Ray Tune's ``PopulationBasedTraining``): a population of members trains together; each member
trains ``interval`` steps (epochs) per task, and a member that ends a step in the bottom
``quantile`` of the population copies a top member's checkpoint and a perturbed copy of its
hyperparameters (exploit, then explore) before its next step. Asynchronous: a member whose step
ends is judged against the population as it is then and goes on at once, on any pool.

::

    member m's step ends (result of task t, trained to step s)
      ├─ bottom quantile? ── yes: donor d drawn from the top quantile
      │                          next task: params = perturb(d.params), starts from d's last task
      │                          (its final checkpoint, step s_d) and trains to s_d + interval
      └─ no: next task: params = m.params, starts from t, trains to s + interval
    queues.put([params], starts=[{"from": task, "until": step, "release": [...]}])
    queues.log({"optimizer": "pbt", "member", "task", "from_task", "from_member", "step", "until",
                "exploit", "params", ...})     # the lineage, journaled in optimizer_log

Each step is one emews task; the objective reads its starting point through the checkpoint
calls (see :mod:`emews.workers._trial`): ``trial.load()`` returns the checkpoint to start from
(the member's own last one, or the donor's), ``trial.resumed_from`` its step, ``trial.until``
the step to train to. The driver reads the source in place (no copy) and deletes a member's
superseded checkpoints once no task starts from them (:mod:`emews._starts`).

Explore (as Ray's PBT): each listed hyperparameter is resampled from its dimension with
probability ``resample_probability``; else a real or integer one is multiplied by 0.8 or 1.2
(clipped to its bounds, integers rounded), an ordinal one moves one value down or up, and a
categorical or bool one stays.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import StopSearch
from ..space import Int, Ordinal, Real, Space
from ._base import ResidentOptimizer

if TYPE_CHECKING:  # pragma: no cover
    from ..queues import OptimizerQueues
    from ..task import Result

__all__ = ["PBT"]

log = logging.getLogger("emews")


@dataclass
class _Member:
    index: int
    params: dict
    task: int | None = None  # the task of its last finished step (its checkpoint: the next one's start)
    step: float = 0  # the step that checkpoint reached
    loss: float | None = None  # the loss of its last finished step
    steps: int = 0
    history: list = field(default_factory=list)


class PBT(ResidentOptimizer):
    """Population-based training (see the module docstring).

    Settings:
        population: members training at once (default: the worker slots, at least 2).
        interval: steps (epochs) a member trains per task. Default 5.
        max_step: a member whose checkpoint reaches this step is finished (default: members
            train until the budget, ``max_evals`` tasks, is spent).
        quantile: the bottom fraction that copies the top fraction. Default 0.25 (Ray's
            ``quantile_fraction``; at most 0.5).
        resample_probability: the chance that a perturbed hyperparameter is drawn anew from its
            dimension instead. Default 0.25.
        factors: the multipliers of a perturbed real or integer hyperparameter. Default [0.8, 1.2].
        hyperparams: the dimensions perturbed (default: every searchable one).

    Example:
        >>> emews.search("mymodel:train", space, optimizer="pbt", max_evals=64, workers=8,
        ...              settings={"population": 8, "interval": 4, "hyperparams": ["lr"]})
    """

    def __init__(self, space: Space, seed: int | None = None, *, population: int | None = None,
                 interval: float = 5, max_step: float | None = None, quantile: float = 0.25,
                 resample_probability: float = 0.25, factors: Sequence[float] = (0.8, 1.2),
                 hyperparams: Sequence[str] | None = None):
        super().__init__(space, seed)
        if population is not None and (isinstance(population, bool) or not isinstance(population, int)
                                       or population < 2):
            raise ValueError(f"pbt setting population={population!r}: must be an integer >= 2")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
            raise ValueError(f"pbt setting interval={interval!r}: must be a number of steps > 0")
        if max_step is not None and (isinstance(max_step, bool) or not isinstance(max_step, (int, float))
                                     or not max_step > 0):
            raise ValueError(f"pbt setting max_step={max_step!r}: must be a step > 0")
        if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0 < quantile <= 0.5:
            raise ValueError(f"pbt setting quantile={quantile!r}: must be in (0, 0.5]")
        if isinstance(resample_probability, bool) or not isinstance(resample_probability, (int, float)) \
                or not 0 <= resample_probability <= 1:
            raise ValueError(f"pbt setting resample_probability={resample_probability!r}: must be in [0, 1]")
        if isinstance(factors, (str, bytes)) or not isinstance(factors, Sequence) or not factors or \
                not all(isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 for f in factors):
            raise ValueError(f"pbt setting factors={factors!r}: must be a list of positive numbers")
        names = [d.name for d in space.searchable]
        if hyperparams is None:
            hyperparams = names
        if isinstance(hyperparams, str) or not isinstance(hyperparams, Sequence):
            raise ValueError(f"pbt setting hyperparams={hyperparams!r}: must be a list of dimension names")
        unknown = [h for h in hyperparams if h not in names]
        if unknown:
            raise ValueError(f"pbt setting hyperparams={list(hyperparams)!r}: {unknown[0]!r} is not a searchable "
                             f"dimension (searchable: {names})")
        self.population = population
        self.interval = interval
        self.max_step = max_step
        self.quantile = float(quantile)
        self.resample_probability = float(resample_probability)
        self.factors = [float(f) for f in factors]
        self.hyperparams = list(hyperparams)
        self.members: list[_Member] = []
        self._open: dict[int, _Member] = {}  # task id -> the member whose step it is
        self._release: list[int] = []  # tasks whose checkpoints no step will start from
        self.exploits = 0
        self._warned_no_checkpoint = False

    # -- the loop ----------------------------------------------------------------------------
    def run(self, queues: OptimizerQueues) -> None:
        n = self.population or max(2, queues.capacity)
        self.members = [_Member(i, p) for i, p in enumerate(self.space.sample(n, self.rng))]
        try:
            for m in self.members:
                if queues.remaining <= 0:
                    break
                self._put(queues, m, m.params, None, 0, None)
            while self._open:
                for r in queues.get():
                    m = self._open.pop(r.task_id, None)
                    if m is not None:
                        self._ended(queues, m, r)
        except StopSearch:
            return

    def _ended(self, queues: OptimizerQueues, m: _Member, r: Result) -> None:
        """Member ``m``'s step (task ``r.task_id``) ended: judge it, then start its next step."""
        if r.ok:
            if m.task is not None:
                self._release.append(m.task)
            if not r.metrics.get("checkpoint") and not self._warned_no_checkpoint:
                self._warned_no_checkpoint = True
                log.warning("pbt: task %d saved no checkpoint (trial.save): its member's next step starts from "
                            "scratch", r.task_id)
            m.task = r.task_id if r.metrics.get("checkpoint") is not None else None
            m.step = r.metrics.get("checkpoint") or 0
            m.loss = float(r.loss)
        else:
            self._release.append(r.task_id)  # a failed step: the member goes on from its last checkpoint
        m.steps += 1
        if queues.remaining <= 0 or queues.stopped:
            return
        if self.max_step is not None and m.step >= self.max_step:
            return  # this member is finished
        donor = self._donor(m)
        if donor is None:
            self._put(queues, m, m.params, m.task, m.step, None)
        else:
            self.exploits += 1
            self._put(queues, m, self._perturb(donor.params), donor.task, donor.step, donor)

    def _donor(self, m: _Member) -> _Member | None:
        """A top-quantile member for ``m`` to copy when ``m`` is in the bottom quantile (or has
        no finished step: its only step failed); None: ``m`` goes on as it is."""
        ranked = sorted((x for x in self.members if x.loss is not None and x.task is not None),
                        key=lambda x: (x.loss, x.index))
        k = int(math.ceil(len(ranked) * self.quantile))
        k = min(k, len(ranked) // 2)
        if k < 1:
            return None
        top, bottom = ranked[:k], ranked[-k:]
        if m in top or (m.loss is not None and m not in bottom):
            return None
        return top[int(self.rng.integers(len(top)))]

    def _perturb(self, params: dict) -> dict:
        """Explore: a perturbed copy of a donor's hyperparameters (see the module docstring)."""
        new = dict(params)
        for d in self.space.searchable:
            if d.name not in self.hyperparams:
                continue
            if self.rng.random() < self.resample_probability:
                new[d.name] = d.sample(self.rng, 1)[0]
            elif isinstance(d, (Real, Int)):
                f = self.factors[int(self.rng.integers(len(self.factors)))]
                v = min(d.high, max(d.low, params[d.name] * f))
                new[d.name] = int(round(v)) if isinstance(d, Int) else float(v)
            elif isinstance(d, Ordinal):
                i = d.index(params[d.name]) + (1 if self.rng.random() < 0.5 else -1)
                new[d.name] = d.values[min(len(d.values) - 1, max(0, i))]
        return self.space.validate(new)

    def _put(self, queues: OptimizerQueues, m: _Member, params: dict, source: int | None, step: float,
             donor: _Member | None) -> None:
        until = step + self.interval
        if self.max_step is not None:
            until = min(until, self.max_step)
        start = {"from": source, "until": until, "release": self._release}
        self._release = []
        (tid,) = queues.put([params], starts=[start])
        self._open[tid] = m
        if queues.earlier(tid):  # a resumed search retracing: the earlier session journaled this step
            if donor is not None:
                m.params = params
            return
        rec = {"optimizer": "pbt", "member": m.index, "task": tid, "from_task": source,
               "from_member": donor.index if donor is not None else m.index, "step": step, "until": until,
               "exploit": donor is not None, "params": params}
        if donor is not None:
            rec.update(loss_before=m.loss, donor_loss=donor.loss, old_params=m.params)
            m.params = params
        queues.log(rec)
