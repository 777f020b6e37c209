"""CANDLE Supervisor's input formats, read at the edge into emews objects.

* :func:`read_r_params` -- an mlrMBO parameter set (``*.R``, ParamHelpers ``makeParamSet``)
  into a :class:`~emews.space.Space`, parsed and never run;
* :func:`read_upf`, :func:`upf_space`, :func:`check_upf` -- an unrolled parameter file (one
  JSON object a line) into parameter sets, and the space they span;
* :func:`read_supervisor_json`, :func:`supervisor_space` -- Supervisor's GA parameter-space
  JSON into a :class:`~emews.space.Space`;
* :func:`read_population_csv` -- parameter sets from a CSV file with a column per dimension
  (the GA's ``initial_population``);
* :func:`read_warm_start` -- earlier evaluations (an emews experiment or its ``results.csv``, an
  mlrMBO ``restart.file`` CSV) into results an optimizer starts from (``warm_start:``).
"""

from __future__ import annotations

from ._population import read_population_csv
from ._rparams import parse_r_params, read_r_params
from ._supervisor import read_supervisor_json, supervisor_space
from ._upf import UPFLine, check_upf, read_upf, upf_space
from ._warm import WarmStart, read_warm_start

__all__ = ["UPFLine", "WarmStart", "check_upf", "parse_r_params", "read_population_csv", "read_r_params",
           "read_supervisor_json", "read_upf", "read_warm_start", "supervisor_space", "upf_space"]
