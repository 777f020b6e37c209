"""GPU binding: which device(s) a worker sees through ``CUDA_VISIBLE_DEVICES``."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError


def gpu_for(local_index: int, gpus_per_worker: int = 1, workers_per_gpu: int = 1,
            devices: Sequence[int | str] | None = None) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` value for the ``local_index``-th worker on a node.

    ``gpus_per_worker`` consecutive devices per worker, or, with ``workers_per_gpu > 1``,
    that many workers sharing one device. ``devices`` lists the node's devices (default
    ``0..``, wrapping round when there are more workers than GPUs).

    >>> [gpu_for(i) for i in range(3)]
    ['0', '1', '2']
    >>> [gpu_for(i, workers_per_gpu=2, devices=[0, 1]) for i in range(4)]
    ['0', '0', '1', '1']
    >>> gpu_for(1, gpus_per_worker=2)
    '2,3'
    """
    if gpus_per_worker < 1:
        raise ConfigError(f"must be at least 1, got {gpus_per_worker!r}", key="gpus.gpus_per_worker")
    if workers_per_gpu < 1:
        raise ConfigError(f"must be at least 1, got {workers_per_gpu!r}", key="gpus.workers_per_gpu")
    if gpus_per_worker > 1 and workers_per_gpu > 1:
        raise ConfigError("set gpus_per_worker or workers_per_gpu, not both above 1", key="gpus")
    slot = local_index // workers_per_gpu
    first = slot * gpus_per_worker
    ids = [first + k for k in range(gpus_per_worker)]
    if devices is not None:
        devs = [str(d) for d in devices]
        if not devs:
            raise ConfigError("must list at least one device", key="gpus.devices")
        return ",".join(devs[i % len(devs)] for i in ids)
    return ",".join(str(i) for i in ids)
