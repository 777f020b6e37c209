"""``import eqpy`` for EQ/Py algorithms: this is :mod:`emews.eqpy` itself (the same module
object, so its queues and state are shared with the emews host)."""

import sys

import emews.eqpy

sys.modules[__name__] = emews.eqpy
