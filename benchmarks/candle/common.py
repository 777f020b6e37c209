"""Machinery shared by the CANDLE objectives.

* parameter parsing with CANDLE Supervisor names, lists given as lists or "1000 1000" strings,
  and ``ValueError`` naming the key and value on anything bad;
* device, thread, precision and seed set-up;
* Keras-like optimizers (Keras default learning rates, ``epsilon``/``rho``/``beta_*``...),
  ``warmup_lr`` / ``reduce_lr`` / ``decay`` learning-rate control, ``clipnorm`` / ``clipvalue``;
* a training loop that keeps the data on the device, shuffles with ``torch.randperm`` there,
  accumulates the loss on the device (one host sync per epoch), supports bf16 autocast, stops
  between epochs on a time limit, reports each epoch's validation loss to the running emews task
  (early stopping: it stops when the driver says so), and falls back to gradient accumulation on CUDA OOM;
* a small per-process cache for generated / loaded data.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from emews.workers._trial import report_step

# --------------------------------------------------------------------------------------------
# Parameter parsing
# --------------------------------------------------------------------------------------------

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}
_NONE = {"", "none", "null", "nil"}


class Spec:
    """Type, default and allowed range of one parameter.

    ``kind`` is one of ``int``, ``float``, ``bool``, ``choice``, ``ints`` (a list of
    non-negative ints, e.g. layer widths), ``str``.
    """

    __slots__ = ("kind", "default", "choices", "low", "high", "low_open", "high_open", "allow_none")

    def __init__(
        self,
        kind: str,
        default: Any = None,
        *,
        choices: tuple[str, ...] | None = None,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
        allow_none: bool = False,
    ):
        self.kind = kind
        self.default = default
        self.choices = choices
        self.low = low
        self.high = high
        self.low_open = low_open
        self.high_open = high_open
        self.allow_none = allow_none


class Params(dict):
    """Parsed parameters: a dict with attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def bad_param(key: str, value: Any, why: str) -> ValueError:
    return ValueError(f"invalid value for parameter {key!r}: {value!r} ({why})")


def _as_int(key: str, v: Any, shown: Any = None) -> int:
    shown = v if shown is None else shown
    if isinstance(v, (bool, np.bool_)):
        raise bad_param(key, shown, "expected an integer, got a boolean")
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        f = float(v)
        if math.isfinite(f) and f.is_integer():
            return int(f)
        raise bad_param(key, shown, "expected an integer")
    if isinstance(v, str):
        s = v.strip()
        try:
            return int(s)
        except ValueError:
            pass
        try:
            f = float(s)
        except ValueError:
            raise bad_param(key, shown, "expected an integer") from None
        if math.isfinite(f) and f.is_integer():
            return int(f)
    raise bad_param(key, shown, "expected an integer")


def _as_float(key: str, v: Any) -> float:
    if isinstance(v, (bool, np.bool_)):
        raise bad_param(key, v, "expected a number, got a boolean")
    if isinstance(v, numbers.Real):
        f = float(v)
    elif isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            raise bad_param(key, v, "expected a number") from None
    else:
        raise bad_param(key, v, "expected a number")
    if not math.isfinite(f):
        raise bad_param(key, v, "expected a finite number")
    return f


def _as_bool(key: str, v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, numbers.Real) and float(v) in (0.0, 1.0):
        return bool(float(v))
    if isinstance(v, str):
        s = v.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
    raise bad_param(key, v, "expected true/false or 1/0")


def _as_ints(key: str, v: Any) -> list[int]:
    if isinstance(v, str):
        s = v.strip()
        while s[:1] in "[(" and s[-1:] in "])":
            s = s[1:-1].strip()
        parts = s.replace(",", " ").split()
        out = [_as_int(key, p, v) for p in parts]
    elif isinstance(v, (list, tuple, np.ndarray)):
        out = [_as_int(key, p, v) for p in list(v)]
    elif isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)):
        out = [_as_int(key, v)]
    else:
        raise bad_param(key, v, "expected a list of integers or a space-separated string")
    if any(x < 0 for x in out):
        raise bad_param(key, v, "sizes must not be negative")
    return out


def _convert(key: str, spec: Spec, v: Any) -> Any:
    if spec.allow_none and (v is None or (isinstance(v, str) and v.strip().lower() in _NONE)):
        return None
    if v is None:
        raise bad_param(key, v, "a value is required")
    k = spec.kind
    if k == "int":
        out: Any = _as_int(key, v)
    elif k == "float":
        out = _as_float(key, v)
    elif k == "bool":
        return _as_bool(key, v)
    elif k == "ints":
        return _as_ints(key, v)
    elif k == "str":
        if not isinstance(v, (str, os.PathLike)):
            raise bad_param(key, v, "expected a string")
        return os.fspath(v)
    elif k == "choice":
        if not isinstance(v, str):
            raise bad_param(key, v, f"expected one of {', '.join(spec.choices or ())}")
        s = v.strip().lower()
        if s not in (spec.choices or ()):
            raise bad_param(key, v, f"expected one of {', '.join(spec.choices or ())}")
        return s
    else:  # pragma: no cover - programming error
        raise TypeError(f"unknown spec kind {k!r}")
    if spec.low is not None and (out < spec.low or (spec.low_open and out == spec.low)):
        raise bad_param(key, v, f"must be {'>' if spec.low_open else '>='} {spec.low}")
    if spec.high is not None and (out > spec.high or (spec.high_open and out == spec.high)):
        raise bad_param(key, v, f"must be {'<' if spec.high_open else '<='} {spec.high}")
    return out


def parse_params(params: Mapping[str, Any] | None, schema: Mapping[str, Spec], aliases: Mapping[str, str]) -> Params:
    """Validate ``params`` against ``schema``; keys not in the schema are ignored.

    ``aliases`` maps alternative names (``drop``, ``rng_seed``...) to schema names; the schema
    name wins when both are given.
    """
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping, got {type(params).__name__}")
    given: dict[str, tuple[str, Any]] = {}
    for k, v in params.items():
        if k in aliases and aliases[k] not in params:
            given[aliases[k]] = (k, v)
        elif k in schema:
            given[k] = (k, v)
    out = Params()
    for name, spec in schema.items():
        if name in given:
            key, v = given[name]
            out[name] = _convert(key, spec, v)
        else:
            out[name] = spec.default
    return out


def parse_run_params(params: Mapping[str, Any] | None, schema: Mapping[str, Spec], aliases: Mapping[str, str],
                     model: str, baseline: str, prepare: Callable[[dict], dict] | None = None) -> Params:
    """What every objective's ``run`` starts with: the default model file (if any) under the
    proposal (:func:`benchmarks.candle.default_model.with_default_model`), the parsing, and the
    optimizer knobs resolved as the model's Keras ``baseline`` did (:func:`resolve_optimizer_knobs`).
    ``prepare`` rewrites the merged dict before parsing."""
    from .default_model import with_default_model

    merged = with_default_model(params, model, schema, aliases)
    if prepare is not None:
        merged = prepare(merged)
    ignored = merged.pop("_default_model_ignored", None)
    p = parse_params(merged, schema, aliases)
    if ignored is not None:
        p["default_model_ignored"] = ignored
    resolve_optimizer_knobs(p, baseline)
    return p


ACTIVATIONS = (
    "relu", "elu", "selu", "tanh", "sigmoid", "hard_sigmoid", "softplus", "softsign",
    "softmax", "linear", "gelu", "swish", "silu", "leaky_relu",
)
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "adamw")
INITIALIZATIONS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal", "torch")
DATA_SIZES = ("full", "small", "tiny")


def common_schema(
    *,
    batch_size: int,
    epochs: int,
    learning_rate: float | None,
    optimizer: str,
    dropout: float,
    activation: str,
    reduce_lr: bool = False,
    reduce_lr_factor: float = 0.5,
    reduce_lr_patience: int = 5,
    min_lr: float = 1e-5,
    eval_batch_size: int = 0,
    seed: int = 2017,
) -> dict[str, Spec]:
    """The parameters every objective accepts (model modules add their own)."""
    return {
        "epochs": Spec("int", epochs, low=1),
        "batch_size": Spec("int", batch_size, low=1),
        "learning_rate": Spec("float", learning_rate, low=0, low_open=True, allow_none=True),
        "base_lr": Spec("float", None, low=0, low_open=True, allow_none=True),
        "optimizer": Spec("choice", optimizer, choices=OPTIMIZERS),
        "dropout": Spec("float", dropout, low=0, high=1, high_open=True),
        "activation": Spec("choice", activation, choices=ACTIVATIONS),
        "initialization": Spec("choice", "glorot_uniform", choices=INITIALIZATIONS),
        # the nine optimizer knobs of Supervisor's GA files (Keras names). None: not given.
        # Any finite number is taken here; resolve_optimizer_knobs() decides what they do
        # (by default nothing, as in the Keras baselines) and checks them when applied.
        "epsilon": Spec("float", None, allow_none=True),
        "rho": Spec("float", None, allow_none=True),
        "momentum": Spec("float", None, allow_none=True),
        "nesterov": Spec("bool", None, allow_none=True),
        "beta_1": Spec("float", None, allow_none=True),
        "beta_2": Spec("float", None, allow_none=True),
        "decay": Spec("float", None, allow_none=True),
        "clipnorm": Spec("float", None, allow_none=True),
        "clipvalue": Spec("float", None, allow_none=True),
        "optimizer_knobs": Spec("choice", "baseline", choices=("baseline", "apply")),
        "weight_decay": Spec("float", 0.0, low=0),
        # learning-rate schedules (Keras callbacks of the baselines)
        "warmup_lr": Spec("bool", False),
        "reduce_lr": Spec("bool", reduce_lr),
        "reduce_lr_factor": Spec("float", reduce_lr_factor, low=0, high=1, low_open=True, high_open=True),
        "reduce_lr_patience": Spec("int", reduce_lr_patience, low=0),
        "min_lr": Spec("float", min_lr, low=0),
        # framework / run control
        "seed": Spec("int", seed),
        "data_seed": Spec("int", 2017),
        "data_size": Spec("choice", "full", choices=DATA_SIZES),
        "data_source": Spec("choice", "auto", choices=("auto", "synthetic", "real")),
        "data_dir": Spec("str", None, allow_none=True),
        "device": Spec("str", "auto"),
        "bf16": Spec("bool", False),
        "tf32": Spec("bool", True),
        "threads": Spec("int", 0, low=0),
        "max_seconds": Spec("float", None, low=0, allow_none=True),
        "eval_batch_size": Spec("int", eval_batch_size, low=0),
        "micro_batch": Spec("int", 0, low=0),
        "deterministic": Spec("bool", False),
        "verbose": Spec("bool", False),
    }


COMMON_ALIASES = {
    "drop": "dropout",
    "rng_seed": "seed",
    "timeout": "max_seconds",
    "lr": "learning_rate",
    "batch_norm": "batch_normalization",
    "bn": "batch_normalization",
}

# --------------------------------------------------------------------------------------------
# Device, threads, precision, seeds
# --------------------------------------------------------------------------------------------


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> the current CUDA device (``cuda:0`` under ``CUDA_VISIBLE_DEVICES``) or CPU."""
    s = str(spec).strip().lower()
    if s in ("auto", ""):
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    try:
        dev = torch.device(s)
    except (RuntimeError, ValueError):
        raise bad_param("device", spec, "expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise bad_param("device", spec, "CUDA is not available here")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        elif dev.index >= torch.cuda.device_count():
            raise bad_param("device", spec, f"only {torch.cuda.device_count()} CUDA device(s) visible")
    elif dev.type != "cpu":
        raise bad_param("device", spec, "expected auto, cpu, cuda or cuda:N")
    return dev


def setup_backend(p: Params, device: torch.device) -> None:
    """Thread count (only when asked), cuDNN autotuning, TF32, determinism."""
    if p.threads:
        torch.set_num_threads(int(p.threads))
    if device.type == "cuda":
        if p.deterministic:
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        else:
            torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = bool(p.tf32)
        torch.backends.cudnn.allow_tf32 = bool(p.tf32)
        torch.cuda.set_device(device)


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bool(bf16))


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------


class Activation(nn.Module):
    """Keras activation by name (softmax over the channel/feature axis, Keras hard_sigmoid)."""

    def __init__(self, name: str):
        super().__init__()
        if name not in ACTIVATIONS:
            raise bad_param("activation", name, f"expected one of {', '.join(ACTIVATIONS)}")
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.name
        if n == "relu":
            return F.relu(x)
        if n == "elu":
            return F.elu(x)
        if n == "selu":
            return F.selu(x)
        if n == "tanh":
            return torch.tanh(x)
        if n == "sigmoid":
            return torch.sigmoid(x)
        if n == "hard_sigmoid":
            return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)
        if n == "softplus":
            return F.softplus(x)
        if n == "softsign":
            return F.softsign(x)
        if n == "softmax":
            return torch.softmax(x, dim=1)
        if n == "gelu":
            return F.gelu(x)
        if n in ("swish", "silu"):
            return F.silu(x)
        if n == "leaky_relu":
            return F.leaky_relu(x, 0.3)  # Keras default alpha
        return x  # linear

    def extra_repr(self) -> str:
        return self.name


def init_weights(module: nn.Module, scheme: str) -> None:
    """Keras-style initialization of Linear/Conv kernels (zero biases); ``torch`` keeps PyTorch's."""
    if scheme == "torch":
        return
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            w = m.weight
            if scheme == "glorot_uniform":
                nn.init.xavier_uniform_(w)
            elif scheme == "glorot_normal":
                nn.init.xavier_normal_(w)
            elif scheme == "he_uniform":
                nn.init.kaiming_uniform_(w, nonlinearity="relu")
            elif scheme == "he_normal":
                nn.init.kaiming_normal_(w, nonlinearity="relu")
            elif scheme in ("lecun_uniform", "lecun_normal"):
                fan_in = w[0].numel()
                if scheme == "lecun_uniform":
                    b = math.sqrt(3.0 / fan_in)
                    nn.init.uniform_(w, -b, b)
                else:
                    nn.init.normal_(w, 0.0, math.sqrt(1.0 / fan_in))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class DenseBlock(nn.Module):
    """Dense -> activation -> (+ input if ``residual`` and shapes match) -> BatchNorm -> Dropout.

    The order follows the Keras P1B1/Combo baselines.
    """

    def __init__(
        self, n_in: int, n_out: int, activation: str, *, residual: bool, batch_norm: bool, dropout: float, alpha_dropout: bool = False
    ):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.act = Activation(activation)
        self.residual = bool(residual) and n_in == n_out
        self.bn = nn.BatchNorm1d(n_out, momentum=0.01, eps=1e-3) if batch_norm else None  # Keras defaults
        drop_cls = nn.AlphaDropout if alpha_dropout else nn.Dropout
        self.drop = drop_cls(dropout) if dropout > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.linear(x))
        if self.residual:
            h = h + x
        if self.bn is not None:
            h = self.bn(h)
        if self.drop is not None:
            h = self.drop(h)
        return h


def dense_stack(n_in: int, widths: list[int], p: Params, *, residual: bool = False, batch_norm: bool = False) -> tuple[nn.Sequential, int]:
    """A stack of :class:`DenseBlock` (zero widths skipped, as in Keras); returns it and its output width."""
    blocks = []
    for w in widths:
        if w <= 0:
            continue
        blocks.append(
            DenseBlock(n_in, w, p.activation, residual=residual, batch_norm=batch_norm, dropout=p.dropout,
                       alpha_dropout=bool(p.get("alpha_dropout", False)))
        )
        n_in = w
    return nn.Sequential(*blocks), n_in


def count_params(model: nn.Module) -> int:
    return int(sum(t.numel() for t in model.parameters() if t.requires_grad))


# --------------------------------------------------------------------------------------------
# Optimizers and learning-rate control
# --------------------------------------------------------------------------------------------

#: Keras default learning rates (used when ``learning_rate`` is None, as CANDLE does)
KERAS_DEFAULT_LR = {
    "adam": 1e-3, "sgd": 1e-2, "rmsprop": 1e-3, "adagrad": 1e-2, "adadelta": 1.0,
    "adamax": 2e-3, "nadam": 2e-3, "adamw": 1e-3,
}
_KERAS_EPS = 1e-7


#: The nine optimizer knobs of Supervisor's GA parameter files.
KNOBS = ("momentum", "nesterov", "rho", "epsilon", "beta_1", "beta_2", "decay", "clipnorm", "clipvalue")

#: What each Keras baseline built its optimizer with, whatever the knobs said (they were inert):
#:
#: * ``candle`` -- NT3 (``Pilot1/NT3/nt3_baseline_keras2.py``) calls
#:   ``candle.build_optimizer(optimizer, learning_rate, candle.keras_default_config())``
#:   (Benchmarks ``common/keras_utils.py``, the same in ``candle_lib``): momentum 0, no
#:   Nesterov, rho 0.9 (RMSprop *and* Adadelta), epsilon 1e-8, beta 0.9/0.999, decay 0, and the
#:   clipnorm/clipvalue arguments commented out.
#: * ``keras`` -- P1B1 and Combo (``p1b1_baseline_keras2.py``, ``combo_baseline_keras2.py``)
#:   build ``optimizers.deserialize({"class_name": optimizer, "config": {}})`` and only set its
#:   learning rate: the ``tf.keras`` class defaults (epsilon 1e-7, rho 0.9 for RMSprop and 0.95
#:   for Adadelta, momentum 0, beta 0.9/0.999, no decay, no clipping).
BASELINE_KNOBS: dict[str, dict[str, Any]] = {
    "candle": {"momentum": 0.0, "nesterov": False, "rho": 0.9, "epsilon": 1e-8, "beta_1": 0.9, "beta_2": 0.999,
               "decay": 0.0, "clipnorm": None, "clipvalue": None},
    "keras": {"momentum": 0.0, "nesterov": False, "rho": None, "epsilon": _KERAS_EPS, "beta_1": 0.9, "beta_2": 0.999,
              "decay": 0.0, "clipnorm": None, "clipvalue": None},
}

_ADAMS = {"adam", "adamw", "adamax", "nadam"}
#: optimizers each knob acts on when applied (decay and clipping act on every one)
_KNOB_USERS: dict[str, set[str]] = {
    "momentum": {"sgd", "rmsprop"}, "nesterov": {"sgd"}, "rho": {"rmsprop", "adadelta"},
    "epsilon": set(OPTIMIZERS) - {"sgd"}, "beta_1": _ADAMS, "beta_2": _ADAMS,
    "decay": set(OPTIMIZERS), "clipnorm": set(OPTIMIZERS), "clipvalue": set(OPTIMIZERS),
}
#: (low, high, low_open, high_open, why) of each applied knob: values outside make the update
#: undefined (a negative second-moment estimate, a momentum or beta that never forgets) or
#: are rejected by the optimizer itself
_KNOB_RANGES: dict[str, tuple[float, float, bool, bool, str]] = {
    "momentum": (0.0, 1.0, False, True, "a momentum must be in [0, 1)"),
    "rho": (0.0, 1.0, False, True, "rho is a decay rate: it must be in [0, 1)"),
    "beta_1": (0.0, 1.0, False, True, "beta_1 must be in [0, 1)"),
    "beta_2": (0.0, 1.0, False, True, "beta_2 must be in [0, 1)"),
    "epsilon": (0.0, math.inf, True, False, "epsilon must be > 0"),
    "decay": (0.0, math.inf, False, False, "decay must be >= 0"),
    "clipnorm": (0.0, math.inf, True, False, "clipnorm must be > 0"),
    "clipvalue": (0.0, math.inf, True, False, "clipvalue must be > 0"),
}


def resolve_optimizer_knobs(p: Params, baseline: str) -> list[str]:
    """Decide what the nine optimizer knobs do; returns the knobs given but inert.

    ``optimizer_knobs: baseline`` (the default): every knob is replaced by what the model's
    Keras baseline used (:data:`BASELINE_KNOBS`), so a Supervisor GA file trains the same
    model the baseline trained, whatever values it proposes. ``optimizer_knobs: apply``:
    the knobs the chosen optimizer has are applied (PyTorch with Keras semantics) and a value
    it cannot use is a ``ValueError`` naming the key and value; the others are inert.

    Sets the effective values in ``p`` and ``p["inert_params"]`` (comma-separated names).
    """
    defaults = BASELINE_KNOBS[baseline]
    given = [k for k in KNOBS if p.get(k) is not None]
    inert: list[str] = []
    for k in KNOBS:
        v = p.get(k)
        if v is None:
            p[k] = defaults[k]
        elif p.optimizer_knobs == "baseline" or p.optimizer not in _KNOB_USERS[k]:
            inert.append(k)
            p[k] = defaults[k]
        elif k in _KNOB_RANGES:
            lo, hi, lo_open, hi_open, why = _KNOB_RANGES[k]
            if v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi):
                raise bad_param(k, v, f"{why} for optimizer {p.optimizer!r}; optimizer_knobs: apply")
    p["inert_params"] = ",".join(inert)
    if inert and given:
        _note_inert(p.optimizer_knobs, inert)
    return inert


_NOTED: set[tuple] = set()


def _note_inert(mode: str, inert: list[str]) -> None:
    key = (mode, tuple(inert))
    if key in _NOTED:
        return
    _NOTED.add(key)
    import logging

    why = ("as in the Keras baselines (optimizer_knobs: baseline)" if mode == "baseline"
           else "the chosen optimizer has no such setting")
    logging.getLogger("benchmarks.candle").info("optimizer knobs %s are inert: %s", ", ".join(inert), why)


def build_optimizer(p: Params, parameters, lr: float, device: torch.device) -> torch.optim.Optimizer:
    name = p.optimizer
    eps = p.epsilon if p.epsilon is not None else _KERAS_EPS
    params = list(parameters)
    wd = p.weight_decay
    momentum = p.momentum or 0.0
    beta_1 = 0.9 if p.beta_1 is None else p.beta_1
    beta_2 = 0.999 if p.beta_2 is None else p.beta_2
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=bool(p.nesterov and momentum > 0), weight_decay=wd)
    if name in ("adam", "adamw"):
        # the fused kernels are the fastest path on CUDA and on CPU (4x over the default on CPU)
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        kw = {"lr": lr, "betas": (beta_1, beta_2), "eps": eps, "weight_decay": wd}
        try:
            return cls(params, fused=True, **kw)
        except (RuntimeError, ValueError, TypeError):  # older torch / unsupported device
            return cls(params, **kw)
    if name == "rmsprop":
        rho = p.rho if p.rho is not None else 0.9
        return torch.optim.RMSprop(params, lr=lr, alpha=rho, eps=eps, momentum=momentum, weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, initial_accumulator_value=0.1, eps=eps, weight_decay=wd)
    if name == "adadelta":
        rho = p.rho if p.rho is not None else 0.95
        return torch.optim.Adadelta(params, lr=lr, rho=rho, eps=eps, weight_decay=wd)
    if name == "adamax":
        return torch.optim.Adamax(params, lr=lr, betas=(beta_1, beta_2), eps=eps, weight_decay=wd)
    if name == "nadam":
        return torch.optim.NAdam(params, lr=lr, betas=(beta_1, beta_2), eps=eps, weight_decay=wd)
    raise bad_param("optimizer", name, f"expected one of {', '.join(OPTIMIZERS)}")  # pragma: no cover


class LRControl:
    """Keras-like learning-rate control of the CANDLE baselines.

    * ``warmup_lr``: epochs 0..5 ramp linearly from the optimizer's default (``base_lr``) to the
      target (``learning_rate`` or ``base_lr * batch_size / 100``), as the baselines' scheduler.
    * ``reduce_lr``: ReduceLROnPlateau on the validation loss (``factor``, ``patience``,
      ``min_lr``; Keras ``min_delta`` 1e-4).
    * ``decay``: Keras' legacy per-iteration decay ``lr / (1 + decay * iterations)``.
    """

    WARMUP_EPOCHS = 5

    def __init__(self, opt: torch.optim.Optimizer, p: Params):
        self.opt = opt
        self.base = p.base_lr or KERAS_DEFAULT_LR[p.optimizer]
        if p.learning_rate is not None:
            self.target = p.learning_rate
        elif p.warmup_lr:
            self.target = self.base * p.batch_size / 100.0
        else:
            self.target = self.base
        self.warmup = bool(p.warmup_lr)
        self.reduce = bool(p.reduce_lr)
        self.factor = p.reduce_lr_factor
        self.patience = p.reduce_lr_patience
        self.min_lr = p.min_lr
        self.decay = p.decay or 0.0
        self.scale = 1.0
        self.best = math.inf
        self.wait = 0
        self.iterations = 0
        self.epoch_lr = self.initial_lr()

    def initial_lr(self) -> float:
        return self.base if self.warmup else self.target

    def _set(self, lr: float) -> None:
        for g in self.opt.param_groups:
            g["lr"] = lr

    def start_epoch(self, epoch: int) -> float:
        lr = self.target * self.scale
        if self.warmup and epoch <= self.WARMUP_EPOCHS:
            w = self.WARMUP_EPOCHS
            lr = (self.base * (w - epoch) + self.target * epoch) / w
        self.epoch_lr = lr
        self._set(lr)
        return lr

    def before_step(self) -> None:
        if self.decay > 0:
            self._set(self.epoch_lr / (1.0 + self.decay * self.iterations))
        self.iterations += 1

    def end_epoch(self, val_loss: float) -> None:
        if not self.reduce:
            return
        if val_loss < self.best - 1e-4:
            self.best = val_loss
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            current = self.target * self.scale
            new = max(current * self.factor, self.min_lr)
            if new < current:
                self.scale = new / self.target
            self.wait = 0


# --------------------------------------------------------------------------------------------
# Training loop
# --------------------------------------------------------------------------------------------


def _is_oom(e: BaseException) -> bool:
    oom_cls = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_cls is not None and isinstance(e, oom_cls):
        return True
    return isinstance(e, RuntimeError) and "out of memory" in str(e).lower()


class Trainer:
    """Epoch loop over device-resident data.

    ``loss_fn(idx)`` returns the mean training loss (a 0-d tensor) of the rows ``idx`` (a device
    index tensor); ``val_fn()`` returns the mean validation loss as a 0-d device tensor. Neither
    may synchronize with the host; the loop syncs once per epoch.
    """

    def __init__(
        self,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        lrc: LRControl,
        p: Params,
        device: torch.device,
        *,
        n_train: int,
        loss_fn: Callable[[torch.Tensor], torch.Tensor],
        val_fn: Callable[[], torch.Tensor],
        t_start: float,
        log: Callable[[str], None] | None = None,
    ):
        self.model = model
        self.opt = opt
        self.lrc = lrc
        self.p = p
        self.device = device
        self.n_train = int(n_train)
        self.loss_fn = loss_fn
        self.val_fn = val_fn
        self.t_start = t_start
        self.log = log
        self.micro = int(p.micro_batch) if p.micro_batch else 0
        self.params = [t for t in model.parameters() if t.requires_grad]
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(int(p.seed) & 0x7FFF_FFFF_FFFF_FFFF)
        self.train_loss: list[float] = []
        self.val_loss: list[float] = []
        self.lrs: list[float] = []
        self.epoch_times: list[float] = []
        self.stopped_early = False
        self.stopped_by_driver = False  # an emews stopper stopped the task (its result is "stopped")
        self.diverged = False
        self.oom_retries = 0

    # -- one optimizer step over the rows idx; returns the summed (not mean) loss on device ----
    def _step(self, idx: torch.Tensor, n: int) -> torch.Tensor:
        while True:
            try:
                return self._step_once(idx, n)
            except Exception as e:  # noqa: BLE001 - only out-of-memory is handled
                if not _is_oom(e):
                    raise
                cur = self.micro if self.micro and self.micro < n else n
                if cur <= 1:
                    raise
                # nothing was applied (the step comes last): drop the partial gradients, then
                # redo this batch as gradient accumulation over halved micro-batches
                self.opt.zero_grad(set_to_none=True)
                del e
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                self.micro = max(1, (cur + 1) // 2)
                self.oom_retries += 1

    def _step_once(self, idx: torch.Tensor, n: int) -> torch.Tensor:
        p = self.p
        self.opt.zero_grad(set_to_none=True)
        chunks = [idx] if not self.micro or self.micro >= n else list(idx.split(self.micro))
        total = None
        for c in chunks:
            m = c.numel()
            with autocast(self.device, p.bf16):
                loss = self.loss_fn(c)
            (loss * (m / n) if len(chunks) > 1 else loss).backward()
            part = loss.detach().float() * m
            total = part if total is None else total + part
        if p.clipvalue is not None:
            torch.nn.utils.clip_grad_value_(self.params, p.clipvalue)
        if p.clipnorm is not None:  # Keras clipnorm: each gradient tensor clipped on its own
            for t in self.params:
                if t.grad is not None:
                    t.grad.mul_(torch.clamp(p.clipnorm / (t.grad.norm() + 1e-7), max=1.0))
        self.lrc.before_step()
        self.opt.step()
        return total

    def fit(self) -> None:
        p = self.p
        n, bs = self.n_train, int(p.batch_size)
        for epoch in range(int(p.epochs)):
            t0 = time.perf_counter()
            lr = self.lrc.start_epoch(epoch)
            self.model.train()
            perm = torch.randperm(n, device=self.device, generator=self.gen)
            total = torch.zeros((), device=self.device, dtype=torch.float32)
            for start in range(0, n, bs):
                m = min(bs, n - start)
                total += self._step(perm[start : start + m], m)
            self.model.eval()
            with torch.no_grad(), autocast(self.device, p.bf16):
                vl = self.val_fn().float()
            tl_v, vl_v = torch.stack([total / n, vl]).tolist()  # the one host sync of the epoch
            dt = time.perf_counter() - t0
            self.train_loss.append(float(tl_v))
            self.val_loss.append(float(vl_v))
            self.lrs.append(float(lr))
            self.epoch_times.append(dt)
            if self.log is not None:
                self.log(f"epoch {epoch + 1}/{p.epochs}: loss {tl_v:.5g} val_loss {vl_v:.5g} lr {lr:.3g} ({dt:.2f}s)")
            if not (math.isfinite(tl_v) and math.isfinite(vl_v)):
                self.diverged = True
                break
            self.lrc.end_epoch(vl_v)
            # early stopping (emews issue 15): report the epoch's validation loss to the running
            # emews task, if any (a no-op outside one); True means the driver stopped the task
            if report_step(epoch + 1, vl_v, train_loss=tl_v, lr=lr):
                self.stopped_by_driver = True
                break
            if p.max_seconds and epoch + 1 < p.epochs:
                elapsed = time.perf_counter() - self.t_start
                if elapsed + dt > p.max_seconds:
                    self.stopped_early = True
                    break

    def summary(self) -> dict[str, Any]:
        et = self.epoch_times
        steady = et[1:] if len(et) > 1 else et
        final = self.val_loss[-1] if self.val_loss else math.nan
        finite = [v for v in self.val_loss if math.isfinite(v)]
        return {
            "loss": final if math.isfinite(final) else math.inf,
            "val_loss": final,
            "best_val_loss": min(finite) if finite else math.inf,
            "train_loss": self.train_loss[-1] if self.train_loss else math.nan,
            "epochs_completed": len(self.val_loss),
            "stopped_early": bool(self.stopped_early),
            "stopped_by_driver": bool(self.stopped_by_driver),
            "diverged": bool(self.diverged),
            "train_seconds": float(sum(et)),
            "seconds_per_epoch": float(sorted(steady)[len(steady) // 2]) if steady else math.nan,
            "first_epoch_seconds": float(et[0]) if et else math.nan,
            "final_lr": self.lrs[-1] if self.lrs else math.nan,
            "history": json.dumps(
                {
                    "val_loss": [_round(v) for v in self.val_loss],
                    "train_loss": [_round(v) for v in self.train_loss],
                    "lr": [_round(v) for v in self.lrs],
                    "epoch_seconds": [round(v, 4) for v in et],
                }
            ),
        }


def _round(v: float) -> float | None:
    return float(f"{v:.6g}") if math.isfinite(v) else None


def batched(n: int, size: int):
    """(start, stop) pairs covering range(n) in chunks of ``size``."""
    for s in range(0, n, size):
        yield s, min(n, s + size)


# --------------------------------------------------------------------------------------------
# Metrics (host side, once per run)
# --------------------------------------------------------------------------------------------


def regression_metrics(y_true: torch.Tensor, y_pred: torch.Tensor) -> dict[str, float]:
    """MSE, MAE, R^2 and Pearson correlation over all entries (float64, computed on device)."""
    t = y_true.double().reshape(-1)
    q = y_pred.double().reshape(-1)
    err = q - t
    mse = (err * err).mean()
    mae = err.abs().mean()
    ss_tot = ((t - t.mean()) ** 2).sum()
    r2 = 1.0 - (err * err).sum() / ss_tot.clamp_min(1e-12)
    tc, qc = t - t.mean(), q - q.mean()
    corr = (tc * qc).sum() / ((tc * tc).sum().sqrt() * (qc * qc).sum().sqrt()).clamp_min(1e-12)
    vals = torch.stack([mse, mae, r2, corr]).tolist()
    return {"mse": vals[0], "mae": vals[1], "r2": vals[2], "corr": vals[3]}


def finish(out: dict[str, Any], trainer: Trainer, t_start: float, t_data: float, source: str,
           **metrics: Any) -> dict[str, Any]:
    """The result every CANDLE objective returns: the trainer's summary (``out``), the model's
    own ``metrics``, then the run's bookkeeping (runtime, data time, size, device, data source)."""
    out.update(metrics)
    for k in ("inert_params", "default_model_ignored"):  # see parse_run_params
        if k in trainer.p:
            out[k] = trainer.p[k]
    out.update(
        {
            "runtime": time.perf_counter() - t_start,
            "data_seconds": t_data,
            "n_params": count_params(trainer.model),
            "device": str(trainer.device),
            "data_source": source,
            "oom_retries": trainer.oom_retries,
        }
    )
    return plain_result(out)


def plain_result(d: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python scalars/strings only (numpy/torch scalars converted)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, torch.Tensor):
            v = v.item()
        elif isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, bool) or v is None or isinstance(v, str):
            out[k] = v
        elif isinstance(v, numbers.Integral):
            out[k] = int(v)
        elif isinstance(v, numbers.Real):
            out[k] = float(v)
        else:
            out[k] = str(v)
    return out


# --------------------------------------------------------------------------------------------
# Per-process data cache
# --------------------------------------------------------------------------------------------

_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_CACHE_LOCK = threading.RLock()
CACHE_SIZE = 6


def cached(key: tuple, build: Callable[[], Any]) -> Any:
    """Memoize ``build()`` under ``key`` (LRU of :data:`CACHE_SIZE` entries, thread-safe)."""
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        value = build()
        _CACHE[key] = value
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
        return value


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def to_device(key: tuple, arrays: Mapping[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """Device copies of host arrays, cached per (data key, device)."""

    def build() -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.ascontiguousarray(a)).to(device) for k, a in arrays.items()}

    return cached(key + ("device", str(device)), build)


# --------------------------------------------------------------------------------------------
# Real-data location
# --------------------------------------------------------------------------------------------


def find_data_dir(p: Params, required: list[str], subdirs: list[str]) -> Path | None:
    """Directory holding all of ``required`` (tried: data_dir, then data_dir/<subdir>...).

    ``data_dir`` comes from the parameter or the ``CANDLE_DATA_DIR`` environment variable.
    Returns None for synthetic data. A ``data_dir`` given as a parameter (or
    ``data_source: real``) makes missing files an error; the environment variable alone falls
    back to synthetic data when the files are not there.
    """
    if p.data_source == "synthetic":
        return None
    root = p.data_dir or os.environ.get("CANDLE_DATA_DIR") or None
    strict = p.data_dir is not None or p.data_source == "real"
    if root is None:
        if strict:
            raise bad_param("data_source", p.data_source, "real data requested but no data_dir / CANDLE_DATA_DIR given")
        return None
    base = Path(root).expanduser()
    for cand in [base] + [base / s for s in subdirs]:
        if all((cand / f).is_file() for f in required):
            return cand
    if strict:
        raise FileNotFoundError(
            f"CANDLE data files {required} not found in {base} (nor in subdirectories {subdirs})"
        )
    return None


def file_key(paths: list[Path]) -> tuple:
    """Cache key that changes when a file changes."""
    out = []
    for f in paths:
        st = f.stat()
        out.append((str(f.resolve()), st.st_size, st.st_mtime_ns))
    return tuple(out)


def maxabs_scale(x: np.ndarray) -> np.ndarray:
    m = np.abs(x).max(axis=0)
    m[m == 0] = 1.0
    return (x / m).astype(np.float32, copy=False)


def minmax_scale(x: np.ndarray) -> np.ndarray:
    lo = x.min(axis=0)
    rng = x.max(axis=0) - lo
    rng[rng == 0] = 1.0
    return ((x - lo) / rng).astype(np.float32, copy=False)


def std_scale(x: np.ndarray) -> np.ndarray:
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    return ((x - mu) / sd).astype(np.float32, copy=False)


def impute_mean(x: np.ndarray) -> np.ndarray:
    """Column-mean imputation; all-NaN columns become 0."""
    x = np.asarray(x, dtype=np.float64)
    if not np.isnan(x).any():
        return x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        mu = np.nanmean(x, axis=0)
    mu = np.where(np.isnan(mu), 0.0, mu)
    r, c = np.nonzero(np.isnan(x))
    x = x.copy()
    x[r, c] = mu[c]
    return x


def make_logger(p: Params, name: str) -> Callable[[str], None] | None:
    if not p.verbose:
        return None

    def log(msg: str) -> None:
        print(f"[{name}] {msg}", flush=True)

    return log
