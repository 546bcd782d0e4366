"""A small classifier trained on fixed features: the only part retrained per task.

``fit_head(features, labels)`` trains, full batch, a linear classifier (multinomial
logistic regression, ``hidden=0``) or a one-hidden-layer MLP on features that do not
change (a frozen extractor's ±1 bits, unpacked). Few-shot friendly: with 10 examples per
class there is no validation split to spare, so the schedule is fixed (``epochs`` Adam
steps on the whole set, L2 ``weight_decay``) and the last step's weights are kept.
``binary=True`` makes the head's weights ±1 as well (``QuantLinear`` with STE signs and a
learned per-output scale), a fully binary pipeline.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onebit.errors import ConfigError, DataError
from onebit.nn.layers import QuantLinear
from onebit.nn.modes import eval_mode
from onebit.train import set_seed

__all__ = ["cross_validate_head", "fit_head", "head_accuracy", "make_head"]


def make_head(features: int, classes: int, *, hidden: int = 0, binary: bool = False) -> nn.Module:
    """An untrained head: ``features → classes`` (``hidden=0``) or ``features → hidden → ReLU → classes``."""
    for name, value, low in (("features", features, 1), ("classes", classes, 2), ("hidden", hidden, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer ≥ {low}, got {value!r}")

    def linear(n_in: int, n_out: int) -> nn.Module:
        if not binary:
            return nn.Linear(n_in, n_out)
        return QuantLinear(n_in, n_out, input_quantizer=None, weight_quantizer="ste_sign", scaling="learned")

    if hidden == 0:
        return linear(features, classes)
    return nn.Sequential(linear(features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, classes))


def _tensors(features: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = np.asarray(features), np.asarray(labels)
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
        raise DataError(f"expected features (N, F) and labels (N,), got {x.shape} and {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"labels must be integers, got {y.dtype}")
    if not np.isfinite(x).all():
        raise DataError("features hold NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y.astype(np.int64))


def fit_head(
    features: np.ndarray, labels: np.ndarray, *, classes: int | None = None, hidden: int = 0, binary: bool = False,
    epochs: int = 300, lr: float = 1e-2, weight_decay: float = 1e-3, seed: int = 0,
) -> nn.Module:
    """Train a head on fixed ``features`` (N, F) for integer ``labels`` (N,); returns it in eval mode.

    Loss: cross-entropy, with ``weight_decay`` as Adam's L2 penalty (``λ·W`` added to each gradient);
    ``epochs`` full-batch steps with a cosine-decayed learning rate. ``classes`` defaults to
    ``max(labels) + 1``.
    """
    x, y = _tensors(features, labels)
    classes = int(y.max()) + 1 if classes is None else classes
    if int(y.min()) < 0 or int(y.max()) >= classes:
        raise DataError(f"labels must lie in [0, {classes}), got [{int(y.min())}, {int(y.max())}]")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")
    if not (isinstance(lr, int | float) and lr > 0):
        raise ConfigError(f"lr must be a positive number, got {lr!r}")
    set_seed(seed)
    head = make_head(x.shape[1], classes, hidden=hidden, binary=binary)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    head.train()
    for _ in range(epochs):
        loss = F.cross_entropy(head(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
    return head.eval()


@torch.no_grad()
def head_accuracy(head: nn.Module, features: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of rows whose argmax of ``head(features)`` is the label."""
    x, y = _tensors(features, labels)
    width = head_width(head)
    if width is not None and x.shape[1] != width:
        raise DataError(f"the head takes {width} features, got {x.shape[1]}: features from another cut or model?")
    with eval_mode(head):
        return float((head(x).argmax(1) == y).float().mean())


def head_width(head: nn.Module) -> int | None:
    """The number of features ``head`` takes (its first linear layer's inputs), None if it has none."""
    first = next((m for m in head.modules() if isinstance(m, nn.Linear)), None)
    return None if first is None else int(first.in_features)


def cross_validate_head(
    features: np.ndarray, labels: np.ndarray, *, folds: int = 5, seed: int = 0, **head_kwargs: object
) -> float:
    """Mean accuracy of :func:`fit_head` over ``folds`` stratified folds of ``(features, labels)``.

    Each class's rows are dealt round-robin (in an order drawn from ``seed``) into the folds;
    each fold is held out once while a head is trained on the rest. Uses the labelled
    examples only, so it can choose between feature sets without touching a test set.
    """
    x, y = _tensors(features, labels)
    counts = np.bincount(y.numpy())
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2 or counts[counts > 0].min() < folds:
        raise ConfigError(f"folds must be an integer from 2 to the smallest class's count "
                          f"({int(counts[counts > 0].min())}), got {folds!r}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=np.int64)
    for c in np.flatnonzero(counts):
        rows = rng.permutation(np.flatnonzero(y.numpy() == c))
        fold_of[rows] = np.arange(len(rows)) % folds
    classes = int(y.max()) + 1
    scores = []
    for k in range(folds):
        train, held = fold_of != k, fold_of == k
        head = fit_head(x[train].numpy(), y[train].numpy(), classes=classes, seed=seed, **head_kwargs)
        scores.append(head_accuracy(head, x[held].numpy(), y[held].numpy()))
    return float(np.mean(scores))
