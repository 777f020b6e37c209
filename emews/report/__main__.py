"""python -m emews.report EXPERIMENT_DIR [--plot FILE.png]"""

from __future__ import annotations

import argparse
import sys

from ..journal import JournalError
from . import plot, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emews.report", description="Summarize an emews experiment directory.")
    ap.add_argument("directory")
    ap.add_argument("--plot", metavar="FILE.png", help="also draw load over time and best loss (needs matplotlib)")
    a = ap.parse_args(argv)
    try:
        print(summary(a.directory))
        if a.plot:
            print(f"wrote {plot(a.directory, a.plot)}")
    except JournalError as e:
        print(f"emews.report: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"emews.report: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
