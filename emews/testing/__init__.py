"""Contract test suites any plug-in can run with one import.

* :mod:`emews.testing.optimizers` — checks for optimizers (built-in or yours).
* :mod:`emews.testing.pools` — checks for worker pools (local, MPI).
"""
