"""The ``if __name__ == "__main__":`` guard: a script that calls :func:`emews.search` without it.

emews starts its optimizer and workers with the *spawn* method, which imports the script again
in every new process; unguarded, each would start a search of its own.

* :func:`refuse_unguarded_call`: in the script's own process, before anything is created, when
  the call sits outside the guard (the script's source says so);
* :func:`refuse_spawn_reimport`: in a spawned child re-importing such a script: leave a marker
  for the parent and end at once;
* :func:`explain_unguarded`: in the parent, the pool's "worker died while loading" replaced by
  one paragraph, when a child left the marker (a script the first check could not read).
"""

from __future__ import annotations

import os
import sys
import tempfile

from .errors import ConfigError

__all__ = ["GUARD_HELP", "in_spawn_bootstrap", "called_unguarded", "refuse_unguarded_call", "refuse_spawn_reimport",
           "explain_unguarded"]

GUARD_HELP = (
    "this script calls emews.search() at import time, without the guard "
    "`if __name__ == \"__main__\":`. emews starts its workers and optimizer with the 'spawn' "
    "method, which imports the script again in every new process, so each of them would start "
    "a search of its own. Put the call under the guard, as with any multiprocessing code:\n\n"
    "    if __name__ == \"__main__\":\n"
    "        res = emews.search(...)\n\n"
    "(In a notebook nothing needs to change: objectives defined there are shipped to the "
    "workers by value.)"
)


def in_spawn_bootstrap() -> bool:
    """True while a process started with 'spawn' re-imports its parent's main module."""
    mp = sys.modules.get("multiprocessing.process")
    return bool(mp is not None and getattr(mp.current_process(), "_inheriting", False))


def _marker(parent_pid: int) -> str:
    return os.path.join(tempfile.gettempdir(), f"emews-unguarded-{parent_pid}")


def refuse_spawn_reimport() -> None:
    """In a spawned child re-importing a script that calls :func:`emews.search` unguarded:
    leave a marker for the parent (see :func:`explain_unguarded`) and end the child at once,
    before it creates an experiment directory or starts a search of its own."""
    if not in_spawn_bootstrap():
        try:  # a stale one, from an earlier process of the same pid
            os.unlink(_marker(os.getpid()))
        except OSError:
            pass
        return
    try:
        os.close(os.open(_marker(os.getppid()), os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError:
        pass
    os._exit(1)


def _guarded_lines(path: str) -> list[tuple[int, int]] | None:
    """Line ranges of the ``if __name__ == "__main__":`` blocks of a script (None: unreadable)."""
    import ast

    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return None
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            names = {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
            texts = {n.value for n in ast.walk(node.test) if isinstance(n, ast.Constant)}
            if "__name__" in names and "__main__" in texts:
                out.append((node.body[0].lineno, node.body[-1].end_lineno or node.body[-1].lineno))
    return out


def called_unguarded() -> bool:
    """True when the running script calls this at import time outside an ``if __name__ ==
    "__main__":`` block: every process spawned later (the optimizer's, the workers') would
    import the script again and run its call a second time. A notebook, the REPL and
    ``python -c`` have no script file and are never unguarded."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path or in_spawn_bootstrap():
        return False
    frame = sys._getframe(1)
    while frame is not None:  # the script's own module-level frame, if the call comes from there
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__main__":
            break
        frame = frame.f_back
    if frame is None or os.path.abspath(frame.f_code.co_filename) != os.path.abspath(path):
        return False
    guarded = _guarded_lines(path)
    if guarded is None:
        return False
    line = frame.f_lineno
    return not any(lo <= line <= hi for lo, hi in guarded)


def refuse_unguarded_call() -> None:
    """Raise :class:`~emews.errors.ConfigError` (:data:`GUARD_HELP`) when the script calls
    :func:`emews.search` unguarded (:func:`called_unguarded`), before any directory exists."""
    if called_unguarded():
        raise ConfigError(GUARD_HELP, key="search()")


def explain_unguarded(error: BaseException) -> BaseException:
    """In the parent: ``error`` (the pool's "worker died while loading") replaced by one
    paragraph saying what to do, when a child left the unguarded-script marker."""
    marker = _marker(os.getpid())
    if not os.path.exists(marker):
        return error
    try:
        os.unlink(marker)
    except OSError:
        pass
    from .errors import ObjectiveError

    return ObjectiveError(GUARD_HELP)
