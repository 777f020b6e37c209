"""CANDLE Supervisor's input formats, read at the edge into emews objects.

* :func:`read_r_params` -- an mlrMBO parameter set (``*.R``, ParamHelpers ``makeParamSet``)
  into a :class:`~emews.space.Space`, parsed and never run;
* :func:`read_upf`, :func:`upf_space`, :func:`check_upf` -- an unrolled parameter file (one
  JSON object a line) into parameter sets, and the space they span;
* :func:`read_warm_start` -- earlier evaluations (an emews experiment or its ``results.csv``, an
  mlrMBO ``restart.file`` CSV) into results an optimizer starts from (``warm_start:``);
* Supervisor's GA JSON files are read by :meth:`emews.space.Space.from_supervisor_json`.
"""

from __future__ import annotations

from ._rparams import parse_r_params, read_r_params
from ._upf import UPFLine, check_upf, read_upf, upf_space
from ._warm import WarmStart, read_warm_start

__all__ = ["UPFLine", "WarmStart", "check_upf", "parse_r_params", "read_r_params", "read_upf", "read_warm_start",
           "upf_space"]
