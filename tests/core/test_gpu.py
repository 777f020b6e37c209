import pytest

from emews import ConfigError
from emews.workers import gpu_for


def test_gpu_binding_defaults_to_devices_the_process_may_use(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert [gpu_for(i) for i in range(3)] == ["4", "5", "4"]  # wraps round, never a device that isn't there
    assert gpu_for(0, gpus_per_worker=2) == "4,5"
    assert [gpu_for(i, workers_per_gpu=2) for i in range(4)] == ["4", "4", "5", "5"]


def test_gpu_binding_with_explicit_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert [gpu_for(i, devices=[0, 1, 2, 3]) for i in range(4)] == ["0", "1", "2", "3"]
    assert gpu_for(1, gpus_per_worker=2, devices=[0, 1, 2, 3]) == "2,3"
    with pytest.raises(ConfigError, match="gpus.gpus_per_worker: must be at least 1, got 0"):
        gpu_for(0, gpus_per_worker=0)
