"""The baselines of He & Xia 2018's JBNN: binary relevance (BR) and a thresholded softmax network (TDNN).

- **BR** (:class:`BinaryRelevance`): L independent networks, network j trained alone on
  label j with binary cross-entropy; label j is predicted when its network's ``p > 0.5``.
  It sees the same data as JBNN but shares nothing, so it trains L networks where JBNN
  trains one.
- **TDNN** (:class:`ThresholdedSoftmax`): one network whose L outputs go through a softmax,
  trained with cross-entropy against the normalized label set ``t_j = y_j / Σ_k y_k``; label j
  is predicted when ``softmax(z)_j ≥ τ``, and the top label always (every sample gets a set).
  τ is tuned on a validation split: the value of a grid that maximizes micro-F1 there.
  A softmax makes the labels compete for one unit of probability, which is what JBNN's
  independent sigmoids avoid.
- **TDNN with a threshold function** (:meth:`ThresholdedSoftmax.predict_function`): the same
  trained softmax network, decided by a per-sample threshold ``t(x) = wᵀ c(x) + b`` on its
  probabilities ``c(x)``, the "threshold function" of Elisseeff & Weston (NIPS 2001, "A
  kernel method for multi-labelled classification") that BP-MLL (Zhang & Zhou 2006, IEEE
  TKDE 18(10)) put on a neural network: for each training sample (as BP-MLL) the target ``t_i`` is the
  cut between its sorted probabilities that misclassifies fewest of its labels (midpoints of
  the sorted probabilities with 0 and 1 at the ends; ties: the lowest), and ``w`` is the
  least-squares fit of ``t_i`` on ``c(x_i)`` (no separate intercept: ``Σ_j c_j = 1`` already
  makes ``wᵀc`` affine, and an intercept beside it would be collinear); label j is predicted
  when ``c_j(x) > t(x)``. He & Xia describe TDNN as needing "an additional
  threshold function mechanism"; this is that mechanism, not tuned for any metric.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from onebit.errors import ConfigError, DataError
from onebit.multilabel.metrics import micro_f1
from onebit.multilabel.training import (
    as_label_tensors,
    predict_logits,
    train_multilabel,
)

__all__ = ["THRESHOLD_GRID", "BinaryRelevance", "ThresholdedSoftmax", "instance_thresholds",
           "soft_target_cross_entropy"]

THRESHOLD_GRID = tuple(float(t) for t in np.round(np.arange(0.01, 0.51, 0.01), 2))


class BinaryRelevance:
    """L independent one-output networks, ``build()`` making each (a fresh module with 1 logit)."""

    def __init__(self, build: Callable[[], nn.Module]) -> None:
        if not callable(build):
            raise ConfigError(f"build must be a function returning a fresh model, got {type(build).__name__}")
        self.build = build
        self.models: list[nn.Module] = []
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def fit(self, x: np.ndarray, y: np.ndarray, *, seed: int = 0, **train: Any) -> BinaryRelevance:
        """Train network j on column j of ``y`` (N, L), seed ``seed·1000 + j``; ``train``: :func:`train_multilabel`'s options."""
        y = np.asarray(y)
        if y.ndim != 2:
            raise DataError(f"expected a label matrix (N, L), got shape {y.shape}")
        self.models, self.seconds, self.cpu_seconds = [], 0.0, 0.0
        for j in range(y.shape[1]):
            torch.manual_seed(seed * 1000 + j)
            model = self.build()
            log = train_multilabel(model, x, y[:, j:j + 1], seed=seed * 1000 + j, **train)
            self.seconds += log.seconds
            self.cpu_seconds += log.cpu_seconds
            self.models.append(model)
        return self

    def decision_scores(self, x: np.ndarray) -> np.ndarray:
        """The L logits (N, L), network j's in column j."""
        if not self.models:
            raise ConfigError("BinaryRelevance is not trained: call fit first")
        return np.concatenate([predict_logits(m, x) for m in self.models], axis=1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Label sets (N, L) booleans: ``p_j > 0.5``."""
        return self.decision_scores(x) > 0


def soft_target_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """``(1/N) Σ_n −Σ_j t_nj log softmax(z_n)_j`` with ``t = y / Σ y`` (a row with no label adds 0)."""
    t = targets / targets.sum(1, keepdim=True).clamp_min(1.0)
    return -(t * F.log_softmax(logits, dim=1)).sum(1).mean()


class ThresholdedSoftmax:
    """TDNN: a softmax network plus one probability threshold τ tuned on validation data."""

    def __init__(self, model: nn.Module, grid: tuple[float, ...] = THRESHOLD_GRID) -> None:
        if not grid or any(not 0.0 < t < 1.0 for t in grid):
            raise ConfigError(f"grid must hold thresholds in (0, 1), got {grid!r}")
        self.model = model
        self.grid = tuple(grid)
        self.threshold: float | None = None
        self.threshold_weights: np.ndarray | None = None  # (L,): the threshold function t(x) = wᵀc(x)
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, *, seed: int = 0,
            **train: Any) -> ThresholdedSoftmax:
        """Train with :func:`soft_target_cross_entropy`, then pick τ maximizing micro-F1 on ``(x_val, y_val)``
        and fit the threshold function on the training rows (:meth:`predict_function`)."""
        as_label_tensors(x_val, y_val, "validation data")
        log = train_multilabel(self.model, x, y, loss=soft_target_cross_entropy, seed=seed, **train)
        self.seconds, self.cpu_seconds = log.seconds, log.cpu_seconds
        probabilities = self.probabilities(x_val)
        scores = [micro_f1(y_val, self._decide(probabilities, t)) for t in self.grid]
        self.threshold = self.grid[int(np.argmax(scores))]  # ties: the lowest threshold
        seen = self.probabilities(x)
        targets = instance_thresholds(seen, np.asarray(y))
        self.threshold_weights = np.linalg.lstsq(seen.astype(np.float64), targets, rcond=None)[0]
        return self

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """``softmax(z)`` (N, L)."""
        z = predict_logits(self.model, x)
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    @staticmethod
    def _decide(probabilities: np.ndarray, threshold: float) -> np.ndarray:
        chosen = probabilities >= threshold
        chosen[np.arange(len(probabilities)), probabilities.argmax(1)] = True
        return chosen

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Label sets (N, L) booleans: ``softmax(z)_j ≥ τ``, plus the top label."""
        if self.threshold is None:
            raise ConfigError("ThresholdedSoftmax is not trained: call fit first")
        return self._decide(self.probabilities(x), self.threshold)

    def predict_function(self, x: np.ndarray) -> np.ndarray:
        """Label sets (N, L) booleans by the threshold function: ``softmax(z)_j > wᵀ softmax(z)``."""
        if self.threshold_weights is None:
            raise ConfigError("ThresholdedSoftmax is not trained: call fit first")
        c = self.probabilities(x).astype(np.float64)
        return c > (c @ self.threshold_weights)[:, None]


def instance_thresholds(scores: np.ndarray, y: np.ndarray, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Per row of ``scores`` (N, L) in ``[low, high]``, the threshold that misclassifies fewest of its labels
    ``y`` (N, L): ``argmin_t |{j ∈ Y : s_j ≤ t}| + |{j ∉ Y : s_j > t}|`` over the midpoints of the sorted
    scores with ``low`` and ``high`` at the ends (ties: the lowest). Elisseeff & Weston 2001; BP-MLL's targets."""
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y).astype(bool)
    if scores.ndim != 2 or scores.shape != y.shape:
        raise DataError(f"scores and labels must both be (N, L), got {scores.shape} and {y.shape}")
    s = np.sort(scores, axis=1)
    if (s[:, 0] < low).any() or (s[:, -1] > high).any():
        raise DataError(f"scores must lie in [{low}, {high}]")
    s = np.concatenate([np.full((len(s), 1), low), s, np.full((len(s), 1), high)], axis=1)
    candidates = (s[:, 1:] + s[:, :-1]) / 2  # (N, L+1)
    above = scores[:, None, :] > candidates[:, :, None]  # (N, L+1, L): predicted at each candidate
    errors = (y[:, None, :] & ~above).sum(2) + (~y[:, None, :] & above).sum(2)
    return candidates[np.arange(len(s)), errors.argmin(1)]
