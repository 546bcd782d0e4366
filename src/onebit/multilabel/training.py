"""A small training loop for multi-label models (0/1 label matrices, any loss on the logits).

:func:`onebit.train.fit` is a classification loop (integer targets, accuracy, cross-entropy
validation), so multi-label training has this loop of its own, built on the same pieces:
:func:`onebit.train.set_seed`, :func:`onebit.train.torch_threads` and
:func:`onebit.optim.make_optimizer` (Adam with binary latent weights clipped to [−1, 1]).
Mini-batches in a seeded order, a cosine learning-rate decay per step, a fixed number of
epochs; the default loss is :func:`onebit.nn.losses.jbce_loss` (with the prior-relation
term when ``prior_weight`` > 0). With a fixed seed and one thread a CPU run repeats exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from onebit.errors import ConfigError, DataError
from onebit.nn.losses import LabelRelations, jbce_loss
from onebit.optim import make_optimizer
from onebit.train import set_seed, torch_threads

__all__ = ["TrainLog", "as_label_tensors", "predict_logits", "train_multilabel"]

Loss = Callable[[Tensor, Tensor], Tensor]


@dataclass
class TrainLog:
    """What :func:`train_multilabel` did: the mean training loss per epoch, and the wall-clock and
    CPU seconds it took (this process's CPU time: on a shared machine it counts only this run's work)."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def as_label_tensors(x: np.ndarray, y: np.ndarray, what: str = "training data") -> tuple[Tensor, Tensor]:
    """Check ``x`` (N, ...) finite and ``y`` (N, L) 0/1; return them as float32 tensors."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 2 or y.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise DataError(f"{what}: expected x of shape (N, ...) and a label matrix y of shape (N, L), "
                        f"got {x.shape} and {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise DataError(f"{what}: labels must be 0 or 1")
    if not np.isfinite(x).all():
        raise DataError(f"{what}: inputs hold NaN or infinite values")
    return (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)))


def train_multilabel(
    model: nn.Module, x: np.ndarray, y: np.ndarray, *, loss: Loss | None = None,
    relations: LabelRelations | None = None, prior_weight: float = 0.0, epochs: int = 60, batch_size: int = 64,
    lr: float = 3e-3, weight_decay: float = 0.0, seed: int = 0, threads: int | None = 1,
) -> TrainLog:
    """Train ``model`` (logits (N, L)) on ``x`` and the 0/1 labels ``y`` (N, L); it ends in eval mode.

    ``loss(logits, targets)`` defaults to ``jbce_loss(logits, targets, relations, prior_weight)``.
    ``threads``: torch CPU threads during training (1: reproducible and fair on a shared machine).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ConfigError(f"batch_size must be an integer ≥ 2 (BatchNorm needs two samples), got {batch_size!r}")
    if not (isinstance(lr, int | float) and lr > 0 and math.isfinite(lr)):
        raise ConfigError(f"lr must be a positive number, got {lr!r}")
    if loss is not None and (relations is not None or prior_weight):
        raise ConfigError("relations and prior_weight belong to the default jbce_loss; fold them into your own loss")
    xt, yt = as_label_tensors(x, y)
    if batch_size > len(xt):
        raise ConfigError(f"batch_size {batch_size} is larger than the {len(xt)} training samples")
    if loss is None:
        def loss(z: Tensor, t: Tensor) -> Tensor:
            return jbce_loss(z, t, relations, prior_weight)
    log = TrainLog()
    with torch_threads(threads):
        width = _output_width(model, xt)
        if width != yt.shape[1]:
            raise ConfigError(f"the model outputs {width} logits but the labels have {yt.shape[1]} columns")
        start, cpu_start = time.perf_counter(), time.process_time()
        set_seed(seed)
        opt = make_optimizer(model, "adam", lr=lr, weight_decay=weight_decay)
        steps = epochs * math.ceil(len(xt) / batch_size)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for epoch in range(epochs):
            total, seen = 0.0, 0
            for idx in torch.randperm(len(xt), generator=generator).split(batch_size):
                if len(idx) < 2:
                    continue  # BatchNorm cannot train on one sample
                batch_loss = loss(model(xt[idx]), yt[idx])
                if not torch.isfinite(batch_loss):
                    raise ConfigError(f"training diverged: loss {batch_loss.item()} at epoch {epoch + 1}; lower the lr")
                opt.zero_grad(set_to_none=True)
                batch_loss.backward()
                opt.step()
                schedule.step()
                total += batch_loss.item() * len(idx)
                seen += len(idx)
            log.losses.append(total / seen)
        log.seconds = time.perf_counter() - start
        log.cpu_seconds = time.process_time() - cpu_start
    model.eval()
    return log


def _output_width(model: nn.Module, x: Tensor) -> int:
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            out = model(x[:2])
        model.train(was_training)
    except (RuntimeError, ValueError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"the model cannot take inputs of shape {tuple(x.shape[1:])}: {first}") from None
    if out.dim() != 2:
        raise ConfigError(f"the model must output logits of shape (N, labels), got shape {tuple(out.shape)}")
    return int(out.shape[1])


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The model's logits (N, L) on ``x`` in eval mode, as float32 numpy."""
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    model.eval()
    return torch.cat([model(xt[i:i + batch_size]) for i in range(0, len(xt), batch_size)]).numpy()
