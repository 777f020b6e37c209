"""The import structure follows the pipeline: no circle, and no import from a lower layer to a higher one.

Layers, bottom up (a module may import its own layer and the ones below)::

    records      errors, task, space, formats (Supervisor files -> Space), and small helpers (_pickling, _imports, _childsig, _clock, _progress), examples,
                 the checkpoint place's file layout (_checkpoints), Pareto fronts and hypervolume (_pareto),
                 the objectives and constraints a result is judged by (_objectives)
    journal      the SQLite journal
    results      Results and the report built from them (one layer: Results extends the report's
                 JournalView and its plot methods call the report; the report never imports results),
                 the failure summary and exit status (_failures)
    resume       resume planning and replay
    queues       the optimizer's queue pair and the wire protocol
    optimizers   bases, the optimizer host (its process), built-ins; the early-stopping rules (stoppers)
    driver       the loop between the queues and a pool, its ledger (budget, retries), the session meta and outputs,
                 the best k models kept (_models), tasks started from checkpoints (_starts)
    pools        emews.workers: local and MPI pools, runners
    inputs       config parsing and config-time checks, experiment directories, the script guard (_guard),
                 the batch scheduler
    launch       the one function that starts a search
    entry        the CLI (run), emews.search (api), the package face, the contract suites

The circle check is over imports that run at import time (module level, not under
``TYPE_CHECKING``); the layer check is over every import, also those inside functions.
The graph comes from the source (``ast``), so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "emews"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("records", ("emews.errors", "emews.task", "emews.space", "emews._pickling", "emews._imports", "emews._childsig", "emews._clock",
                 "emews._progress", "emews.examples", "emews.formats", "emews._checkpoints", "emews._pareto",
                 "emews._objectives")),
    ("journal", ("emews.journal",)),
    ("results", ("emews.results", "emews.report", "emews._failures")),
    ("resume", ("emews.resume",)),
    ("queues", ("emews.queues",)),
    ("optimizers", ("emews.optimizers", "emews.stoppers", "emews.eqpy")),
    ("driver", ("emews.driver", "emews._ledger", "emews._session", "emews._models", "emews._starts")),
    ("pools", ("emews.workers",)),
    ("inputs", ("emews.config", "emews.experiment", "emews._guard", "emews.scheduler")),
    ("launch", ("emews.launch",)),
    ("entry", ("emews.run", "emews.api", "emews.__main__", "emews.report.__main__", "emews.testing", "emews")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    best, found = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or (p != "emews" and module.startswith(p + "."))) and len(p) > best:
                best, found = len(p), i
    assert found is not None, f"{module} has no layer: add it to LAYERS in {__file__}"
    return found


def _exists(module: str) -> bool:
    rel = Path(*module.split("."))
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports(path: Path) -> list[tuple[str, bool, int]]:
    """``(imported emews module, at import time?, line)`` for every import in ``path``."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: list[tuple[str, bool, int]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue  # types only: never imported at run time
            if isinstance(child, ast.Import):
                for a in child.names:
                    if a.name == "emews" or a.name.startswith("emews."):
                        out.append((a.name, top, child.lineno))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if not (target == "emews" or target.startswith("emews.")):
                    continue
                subs = [f"{target}.{a.name}" for a in child.names if _exists(f"{target}.{a.name}")]
                if len(subs) < len(child.names):  # names defined in the module itself
                    out.append((target, top, child.lineno))
                out.extend((sub, top, child.lineno) for sub in subs)  # "from . import _data" names a module
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            else:
                visit(child, top)

    visit(ast.parse(path.read_text(), str(path)), True)
    return out


def graph() -> dict[str, list[tuple[str, bool, int]]]:
    return {module_name(p): imports(p) for p in sorted(PKG.rglob("*.py"))}


def test_every_module_has_a_layer():
    for module in graph():
        layer_of(module)


def test_no_import_from_a_lower_layer_to_a_higher_one():
    bad = []
    for module, edges in graph().items():
        mine = layer_of(module)
        for target, _, line in edges:
            theirs = layer_of(target)
            if theirs > mine:
                bad.append(f"{module}:{line} ({LAYERS[mine][0]}) imports {target} ({LAYERS[theirs][0]})")
    assert not bad, "imports that run back up the layers:\n" + "\n".join(bad)


def test_no_import_circle():
    g = graph()
    edges = {m: sorted({t for t, top, _ in es if top and t != m and t in g}) for m, es in g.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def walk(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in edges[m]:
            if state.get(t) == 1:
                circles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                walk(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            walk(m)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_results_and_report_do_not_import_each_other():
    """Issue 19 item 5: ``emews.results`` builds on the report's JournalView; the report never
    imports ``emews.results`` (not even inside a function), so the two form no circle."""
    back = [f"{m}:{line} imports {t}" for m, es in graph().items() if m == "emews.report" or m.startswith("emews.report.")
            for t, _, line in es if t == "emews.results" or t.startswith("emews.results.")]
    assert not back, "the report imports emews.results:\n" + "\n".join(back)


def test_the_check_sees_a_circle_and_an_upward_import(tmp_path):
    """The checker itself: a made-up package with a circle and an upward import is caught."""
    pkg = tmp_path / "emews"
    (pkg / "queues").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "task.py").write_text("from .journal import x\n")
    (pkg / "journal.py").write_text("from .task import y\n")
    (pkg / "queues" / "__init__.py").write_text("def f():\n    from ..driver import z\n")
    (pkg / "driver.py").write_text("")
    globals_ = globals()
    old_root, old_pkg = globals_["ROOT"], globals_["PKG"]
    globals_["ROOT"], globals_["PKG"] = tmp_path, pkg
    try:
        g = graph()
        assert ("emews.journal", True, 1) in g["emews.task"] and ("emews.task", True, 1) in g["emews.journal"]
        assert ("emews.driver", False, 2) in g["emews.queues"]
        try:
            test_no_import_circle()
        except AssertionError as e:
            assert "emews.journal -> emews.task -> emews.journal" in str(e) or "emews.task -> emews.journal" in str(e)
        else:
            raise AssertionError("the circle was not seen")
        try:
            test_no_import_from_a_lower_layer_to_a_higher_one()
        except AssertionError as e:
            assert "emews.queues:2 (queues) imports emews.driver (driver)" in str(e)
        else:
            raise AssertionError("the upward import was not seen")
    finally:
        globals_["ROOT"], globals_["PKG"] = old_root, old_pkg
