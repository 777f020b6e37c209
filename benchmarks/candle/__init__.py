"""CANDLE Pilot1 benchmark objectives (NT3, P1B1, Combo) in PyTorch.

Each module exposes ``run(params: dict) -> dict`` taking CANDLE Supervisor's parameter names
(``learning_rate``, ``batch_size``, ``epochs``, ``optimizer``, ``dropout``/``drop``, ``dense``,
``conv``, ...) and returning plain Python scalars with at least ``loss`` (the final epoch's
validation loss) and ``runtime`` (seconds).

* ``benchmarks.candle.nt3:run``  -- 1D CNN, normal vs tumor RNA-seq classification.
* ``benchmarks.candle.p1b1:run`` -- dense (variational) autoencoder of RNA-seq profiles.
* ``benchmarks.candle.combo:run`` -- drug-pair growth regression (shared drug sub-network).

Data are synthetic (real shapes, deterministic by ``data_seed``, with a learnable signal;
``data_size`` = ``full`` | ``small`` | ``tiny``) unless ``data_dir`` (or the environment
variable ``CANDLE_DATA_DIR``) points at the original CANDLE files. Generated or loaded data are
cached per process, so a long-lived worker builds them once.

Modules import torch lazily only through their own imports; importing this package is cheap.
"""

__all__ = ["nt3", "p1b1", "combo"]
