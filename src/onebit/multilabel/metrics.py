"""Multi-label metrics (the usual set; Zhang & Zhou 2014, "A Review on Multi-Label Learning Algorithms").

For N samples, L labels, true sets ``Y_i``, predicted sets ``Ŷ_i`` and real scores ``s_ij``
(higher = more likely; logits or probabilities):

- **Hamming loss** ``(1/NL) Σ_i |Y_i Δ Ŷ_i|`` (lower is better; scikit-learn's ``hamming_loss``);
- **micro-F1**: F1 of the pooled (i, j) decisions; **macro-F1**: the mean over labels of each
  label's F1 (a label never true nor predicted counts 0; scikit-learn's ``f1_score``);
- **one-error** ``(1/N) Σ_i [argmax_j s_ij ∉ Y_i]`` (lower is better);
- **average precision**: for each sample, the mean over its true labels of the fraction of the
  labels ranked at or above that one that are true (scikit-learn's
  ``label_ranking_average_precision_score``);
- **subset accuracy** ``(1/N) Σ_i [Ŷ_i = Y_i]`` (scikit-learn's ``accuracy_score``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onebit.errors import DataError

__all__ = [
    "METRICS", "average_precision", "hamming_loss", "macro_f1", "micro_f1", "multilabel_metrics", "one_error",
    "subset_accuracy",
]

# name → True where higher is better
METRICS = {"hamming_loss": False, "micro_f1": True, "macro_f1": True, "one_error": False,
           "average_precision": True, "subset_accuracy": True}


def _labels(y: Any, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 2 or y.size == 0:
        raise DataError(f"{what}: expected a non-empty (N, L) label matrix, got shape {y.shape}")
    if y.dtype != bool and not np.isin(y, (0, 1)).all():
        raise DataError(f"{what}: labels must be 0/1 or booleans")
    return y.astype(np.uint8)


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise DataError(f"y_true and y_pred must have the same shape, got {t.shape} and {p.shape}")
    return t, p


def _scores(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    t = _labels(y_true, "y_true")
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != t.shape:
        raise DataError(f"y_true and scores must have the same shape, got {t.shape} and {s.shape}")
    if not np.isfinite(s).all():
        raise DataError("scores hold NaN or infinite values")
    return t, s


def hamming_loss(y_true: Any, y_pred: Any) -> float:
    """The fraction of (sample, label) decisions that are wrong."""
    from sklearn.metrics import hamming_loss as sk

    return float(sk(*_pair(y_true, y_pred)))


def micro_f1(y_true: Any, y_pred: Any) -> float:
    """F1 over all (sample, label) decisions pooled (0 where nothing is true or predicted)."""
    from sklearn.metrics import f1_score

    return float(f1_score(*_pair(y_true, y_pred), average="micro", zero_division=0))


def macro_f1(y_true: Any, y_pred: Any) -> float:
    """The unweighted mean over labels of each label's F1."""
    from sklearn.metrics import f1_score

    return float(f1_score(*_pair(y_true, y_pred), average="macro", zero_division=0))


def subset_accuracy(y_true: Any, y_pred: Any) -> float:
    """The fraction of samples whose predicted label set is exactly the true one."""
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(*_pair(y_true, y_pred)))


def one_error(y_true: Any, scores: Any) -> float:
    """The fraction of samples whose top-scored label is not one of theirs (ties: the first label)."""
    t, s = _scores(y_true, scores)
    return float(np.mean(t[np.arange(len(t)), s.argmax(1)] == 0))


def average_precision(y_true: Any, scores: Any) -> float:
    """Label-ranking average precision (samples with no true label count 1, as in scikit-learn)."""
    from sklearn.metrics import label_ranking_average_precision_score

    return float(label_ranking_average_precision_score(*_scores(y_true, scores)))


def multilabel_metrics(y_true: Any, y_pred: Any, scores: Any) -> dict[str, float]:
    """Every metric of :data:`METRICS`: the set metrics from ``y_pred``, the ranking ones from ``scores``."""
    return {"hamming_loss": hamming_loss(y_true, y_pred), "micro_f1": micro_f1(y_true, y_pred),
            "macro_f1": macro_f1(y_true, y_pred), "one_error": one_error(y_true, scores),
            "average_precision": average_precision(y_true, scores),
            "subset_accuracy": subset_accuracy(y_true, y_pred)}
