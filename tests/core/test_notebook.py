"""The README's notebook plot cells, run in a real Jupyter kernel (nbclient + ipykernel)."""

import pytest

from helpers import ROOT

nbformat = pytest.importorskip("nbformat")  # the dev extra brings nbclient, nbformat and ipykernel
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")


def _images(cell) -> int:
    return sum(1 for out in cell.outputs if "image/png" in out.get("data", {}))


@pytest.mark.slow
def test_plots_show_as_one_image_per_cell_in_a_fresh_kernel(tmp_path):
    import emews

    emews.search(lambda p: (p["x"] - 0.3) ** 2, {"x": {"type": "real", "low": 0, "high": 1},
                                                 "c": {"type": "categorical", "values": ["a", "b", "c"]}},
                 max_evals=8, workers=2, seed=1, output=str(tmp_path / "runs"), report=False)
    cells = [
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\nimport emews\n"
        f"res = emews.Results.load({str(tmp_path / 'runs' / 'search')!r})",
        "res.plot_trajectory()",          # a cell's value, with no pyplot and no %matplotlib
        "res.plot_load()",
        "res.plot_params(top=5)",
        "fig = res.plot_load()\ndisplay(fig)",
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nres.plot_trajectory(ax=ax, x='time')",  # your axes
        "res.plot_params()",              # after pyplot is imported (the inline backend is active)
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert [_images(c) for c in nb.cells] == [0, 1, 1, 1, 1, 1, 1], [c.outputs for c in nb.cells]
