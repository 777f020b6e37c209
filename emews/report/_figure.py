"""The Figure class of the report's plots (imported only when a plot is drawn: it needs matplotlib)."""

from __future__ import annotations

import io

from matplotlib.figure import Figure

__all__ = ["ReportFigure"]


class ReportFigure(Figure):
    """A matplotlib Figure that shows itself as a PNG in Jupyter/IPython.

    The report's figures are built without pyplot (no global backend is chosen), so IPython
    has no image formatter for them until ``%matplotlib inline`` or a pyplot import; this
    ``_repr_png_`` makes a returned figure (a cell's value, or ``display(fig)``) an image in
    every kernel, exactly once.
    """

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=self.dpi)
        return buf.getvalue()
