"""The parent-death signal, asked for first thing in emews's spawned children.

A spawned worker or optimizer process spends its first second importing (the parent's main
module again, then numpy, emews, the objective). A driver SIGKILLed during that second used to
leave them running for 1-3 s, because they asked for ``PR_SET_PDEATHSIG`` only after their
imports. Now the parent starts them inside :func:`emews_children`, which marks their
environment, and ``emews/__init__.py`` imports this module before anything else: a child
that is still bootstrapping with the mark set asks for the signal at once. This module
imports nothing beyond the standard library's ``os``, ``sys`` and ``ctypes``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator

__all__ = ["ENV", "emews_children", "set_parent_death_signal", "die_with_parent"]

#: set in the environment of the children emews spawns (removed again in each child)
ENV = "EMEWS_DIE_WITH_PARENT"


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """Linux ``prctl(PR_SET_PDEATHSIG, sig)``: the kernel sends ``sig`` when the parent dies
    (and at once when it died already); a no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        parent = os.getppid()
        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        if os.getppid() != parent:  # it died before we asked (a driver may be pid 1 in a container)
            os.kill(os.getpid(), sig)
    except (OSError, AttributeError):  # pragma: no cover - no libc prctl
        pass


#: the name the workers and the optimizer process call it by, after their imports too
die_with_parent = set_parent_death_signal


@contextlib.contextmanager
def emews_children() -> Iterator[None]:
    """Processes started inside this block ask for SIGTERM on their parent's death before
    their imports (see the module docstring)."""
    old = os.environ.get(ENV)
    os.environ[ENV] = str(int(signal.SIGTERM))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old


def _bootstrapping_child() -> bool:
    """True in a process started with 'spawn' that has not finished its bootstrap."""
    mp = sys.modules.get("multiprocessing.process")
    return bool(mp is not None and getattr(mp.current_process(), "_inheriting", False))


def _early() -> None:
    sig = os.environ.get(ENV)
    if sig and _bootstrapping_child():
        os.environ.pop(ENV, None)  # the child's own children are its business
        set_parent_death_signal(int(sig) if sig.isdigit() else signal.SIGTERM)


_early()
