"""GPU binding: which device(s) a worker sees through ``CUDA_VISIBLE_DEVICES``."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence

from ..errors import ConfigError


def node_devices() -> list[str] | None:
    """The GPUs this process may use, without importing a GPU library.

    ``CUDA_VISIBLE_DEVICES`` when the launcher or scheduler set it (Slurm's ``--gpus-per-task``
    does, per rank), else the ``/dev/nvidiaN`` device files, else ``None`` (unknown).
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None and env.strip() not in ("", "-1"):
        return [d.strip() for d in env.split(",") if d.strip()]
    found = sorted(int(m.group(1)) for p in glob.glob("/dev/nvidia*") if (m := re.fullmatch(r"/dev/nvidia(\d+)", p)))
    return [str(i) for i in found] or None


def gpu_for(local_index: int, gpus_per_worker: int = 1, workers_per_gpu: int = 1,
            devices: Sequence[int | str] | None = None) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` value for the ``local_index``-th worker on a node.

    ``gpus_per_worker`` consecutive devices per worker, or, with ``workers_per_gpu > 1``,
    that many workers sharing one device. ``devices`` lists the node's devices (default:
    :func:`node_devices`, or ``0, 1, ...`` when those are unknown); with more workers than
    devices the assignment wraps round.

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
    if devices is None:
        devices = node_devices()
    if devices is not None:
        devs = [str(d) for d in devices]
        if not devs:
            raise ConfigError("must list at least one device", key="gpus.devices")
        return ",".join(devs[i % len(devs)] for i in ids)
    return ",".join(str(i) for i in ids)
