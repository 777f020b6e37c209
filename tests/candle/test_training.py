"""The shared training loop: micro-batching, out-of-memory fallback, optimizers, cache."""

import json
import time

import pytest

torch = pytest.importorskip("torch")

from benchmarks.candle import common, nt3, p1b1  # noqa: E402
from benchmarks.candle.common import LRControl, Trainer, build_optimizer, parse_params  # noqa: E402

NO_DROP = {"data_size": "tiny", "conv": "16 8 4 16 4 1", "pool": "1 2", "optimizer": "adam",
           "learning_rate": 1e-3, "batch_size": 32, "dropout": 0.0, "device": "cpu", "epochs": 3}


def test_micro_batches_accumulate_to_the_same_step():
    whole = nt3.run(NO_DROP)
    micro = nt3.run({**NO_DROP, "micro_batch": 8})
    a, b = json.loads(whole["history"])["val_loss"], json.loads(micro["history"])["val_loss"]
    assert a == pytest.approx(b, rel=1e-4, abs=1e-5)


def _toy_trainer(p, fail_above):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(64, 4), torch.randn(64)
    opt = build_optimizer(p, model.parameters(), 1.0, torch.device("cpu"))
    seen = []

    def loss_fn(idx):
        seen.append(idx.numel())
        if idx.numel() > fail_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
        return torch.mean((model(x[idx]).squeeze(1) - y[idx]) ** 2)

    def val_fn():
        return torch.mean((model(x).squeeze(1) - y) ** 2)

    t = Trainer(model, opt, LRControl(opt, p), p, torch.device("cpu"), n_train=64, loss_fn=loss_fn,
                val_fn=val_fn, t_start=time.perf_counter())
    return t, seen


def test_out_of_memory_halves_the_micro_batch_and_retries():
    p = parse_params({"batch_size": 32, "epochs": 2, "optimizer": "sgd", "learning_rate": 0.1}, p1b1.SCHEMA, p1b1.ALIASES)
    t, seen = _toy_trainer(p, fail_above=10)
    t.fit()
    assert t.micro == 8 and t.oom_retries == 2
    assert max(n for n in seen if n <= 10) == 8
    assert len(t.val_loss) == 2 and t.val_loss[-1] < t.val_loss[0] + 1.0

    t, _ = _toy_trainer(p, fail_above=0)  # even one row does not fit: give up with the error
    with pytest.raises(torch.cuda.OutOfMemoryError):
        t.fit()


@pytest.mark.parametrize("name", ["adam", "sgd", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "adamw"])
def test_every_optimizer_trains(name):
    r = nt3.run({**NO_DROP, "optimizer": name, "learning_rate": None, "epochs": 2, "momentum": 0.5, "nesterov": True,
                 "clipnorm": 1.0, "clipvalue": 0.5, "decay": 1e-4, "optimizer_knobs": "apply"})
    assert r["final_lr"] == pytest.approx(common.KERAS_DEFAULT_LR[name])
    assert r["diverged"] is False


def test_data_are_generated_once_per_process(monkeypatch):
    calls = []
    real = nt3.synthetic

    def counting(*a, **k):
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(nt3, "synthetic", counting)
    args = {**NO_DROP, "n_features": 200, "n_train": 40, "n_test": 20, "epochs": 1}
    nt3.run(args)
    nt3.run({**args, "seed": 5, "learning_rate": 0.01})
    assert len(calls) == 1
    nt3.run({**args, "data_seed": 7})
    assert len(calls) == 2


def test_threads_param_sets_torch_threads():
    before = torch.get_num_threads()
    try:
        nt3.run({**NO_DROP, "epochs": 1, "threads": 1})
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


class _StopAt:
    """A report channel whose driver decided to stop after step ``k`` (seen at report k + 1)."""

    def __init__(self, k):
        self.k, self.steps = k, []

    def send(self, step, loss, metrics):
        if step > self.k:
            return True
        self.steps.append((step, loss, metrics))
        return False

    def stop_requested(self):
        return False


@pytest.mark.parametrize("module", ["nt3", "p1b1"])
def test_candle_objectives_report_per_epoch_and_honour_a_stop(module):
    from emews.task import Task
    from emews.workers._runners import PythonRunner

    params = NO_DROP if module == "nt3" else {"data_size": "tiny", "device": "cpu", "epochs": 4}
    params = {**params, "epochs": 4}
    runner = PythonRunner({"objective": f"benchmarks.candle.{module}:run"})
    chan = _StopAt(2)
    outcome = runner.run(Task(0, params), chan)
    status, loss, metrics, error = outcome.status, outcome.loss, outcome.metrics, outcome.error
    assert status == "stopped" and metrics["step"] == 2, error
    assert [s for s, _, _ in chan.steps] == [1, 2]
    assert loss == pytest.approx(chan.steps[-1][1]) and "train_loss" in chan.steps[0][2]
    # without a driver the same objective runs all its epochs
    out = getattr(__import__("benchmarks.candle", fromlist=[module]), module).run(params)
    assert out["epochs_completed"] == 4 and not out["stopped_by_driver"]
