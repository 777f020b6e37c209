"""python -m emews.report EXPERIMENT_DIR [--out DIR] [--plots | --no-plots] [--top K] [--json]

Prints the summary, writes report.json, report.txt and the PNGs (in the experiment directory
or --out), and lists what it wrote. Exit status: 0 done; 2 bad input (not an experiment
directory, a foreign or damaged journal, --plots without matplotlib); 1 the files could not
be written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..journal import JournalError
from . import PLOTS, require_matplotlib, summary_text, write_report


def _error(msg: str, code: int = 2) -> int:
    print(f"emews.report: error: {msg}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m emews.report",
        description="Summarize an emews experiment directory: prints a summary and writes report.json, report.txt "
                    f"and the plots ({', '.join(PLOTS)}; they need matplotlib).")
    ap.add_argument("directory", help="the experiment directory (the one holding journal.sqlite)")
    ap.add_argument("--out", metavar="DIR", help="write the files here instead of the experiment directory")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--plots", dest="plots", action="store_true", default=None,
                   help="draw the plots, an error without matplotlib (default: draw them when matplotlib is installed)")
    g.add_argument("--no-plots", dest="plots", action="store_false", help="no plots: report.json and report.txt only")
    ap.add_argument("--top", type=int, default=10, metavar="K", help="trials highlighted in params.png (default 10)")
    ap.add_argument("--json", action="store_true", help="print report.json instead of the text summary")
    ap.add_argument("--plot", metavar="FILE.png", help=argparse.SUPPRESS)  # replaced by --out
    a = ap.parse_args(argv)
    if a.plot:
        return _error(f"--plot was replaced: the report writes {', '.join(PLOTS)} into the experiment "
                      "directory, or into --out DIR")
    if a.top < 1:
        return _error(f"--top must be at least 1, got {a.top}")
    plots, note = a.plots, None
    try:
        require_matplotlib()
    except ImportError as e:
        if plots:
            return _error(str(e))
        if plots is None:
            note = f"note: no plots: {e}"
        plots = False
    else:
        plots = plots is not False
    try:
        data = write_report(a.directory, a.out, plots=plots, top=a.top)
    except JournalError as e:
        return _error(str(e))
    except OSError as e:
        return _error(f"cannot write the report: {e}", 1)
    out = Path(a.out) if a.out else Path(data["directory"] or ".")
    written = ["report.json", "report.txt", *data["plots"]]
    if a.json:
        print(json.dumps(data, indent=2))
        lines = sys.stderr
    else:
        print(summary_text(data))
        lines = sys.stdout
    print("wrote " + ", ".join(str(out / f) for f in written), file=lines)
    if note:
        print(note, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
