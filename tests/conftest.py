import os
import sys
from pathlib import Path

# test helpers (tests/helpers.py) importable as `helpers` from every test directory
sys.path.insert(0, str(Path(__file__).resolve().parent))

# a suite run inside a batch job behaves as on a laptop: no run asks the scheduler for a deadline
# (tests/slurm gives its jobs their own environment)
for _var in ("SLURM_JOB_END_TIME", "SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "FLUX_JOB_ID", "EMEWS_CHAIN_DEPTH"):
    os.environ.pop(_var, None)
