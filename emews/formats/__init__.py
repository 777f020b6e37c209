"""CANDLE Supervisor's input formats, read at the edge into emews objects.

* :func:`read_r_params` -- an mlrMBO parameter set (``*.R``, ParamHelpers ``makeParamSet``)
  into a :class:`~emews.space.Space`, parsed and never run;
* :func:`read_upf`, :func:`upf_space`, :func:`check_upf` -- an unrolled parameter file (one
  JSON object a line) into parameter sets, and the space they span;
* Supervisor's GA JSON files are read by :meth:`emews.space.Space.from_supervisor_json`.
"""

from __future__ import annotations

from ._rparams import parse_r_params, read_r_params
from ._upf import UPFLine, check_upf, read_upf, upf_space

__all__ = ["UPFLine", "check_upf", "parse_r_params", "read_r_params", "read_upf", "upf_space"]
