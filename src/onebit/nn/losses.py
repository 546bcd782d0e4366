"""Multi-label losses: joint binary cross-entropy with an optional prior on label relations.

He & Xia 2018 ("Joint Binary Neural Network for Multi-label Learning with Applications to
Emotion Classification", NLPCC 2018, arXiv:1802.00891) put L sigmoid outputs on one shared
encoder and train them together with the sum of the L binary cross-entropies: the *joint
binary cross-entropy* (JBCE). With ``p_j = σ(z_j)`` the probability of label j and
``y_j ∈ {0, 1}`` its target,

    JBCE(z, y) = (1/B) Σ_b Σ_j −[ y_bj log p_bj + (1 − y_bj) log(1 − p_bj) ]

(summed over the labels, averaged over the batch; :func:`jbce_loss`). The paper adds prior
knowledge of how the labels relate (for emotions, Plutchik's wheel). Here the relations come
from the training labels themselves (:func:`label_relations`: the φ coefficient, i.e. the
Pearson correlation of two 0/1 label columns), split into positive relations ``R⁺`` and
negative relations ``R⁻`` (entries of magnitude ≤ ``min_strength`` dropped), and the loss
gets the term

    prior(p) = (1/B) Σ_b [ Σ_{j<k} R⁺_jk (p_bj − p_bk)²  +  Σ_{j<k} R⁻_jk p_bj p_bk ]

times ``prior_weight`` λ: positively related labels are pulled towards equal probabilities,
and predicting two negatively related labels together costs their joint probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from onebit.errors import ConfigError, DataError

__all__ = ["LabelRelations", "jbce_loss", "label_relations", "relation_penalty"]


@dataclass(frozen=True)
class LabelRelations:
    """Prior label relations: ``positive`` R⁺ and ``negative`` R⁻, both (L, L), ≥ 0, symmetric, zero diagonal.

    ``phi`` is the full φ-coefficient matrix they were cut from (kept for reports).
    """

    positive: np.ndarray
    negative: np.ndarray
    phi: np.ndarray

    @property
    def num_labels(self) -> int:
        return int(self.positive.shape[0])


def _label_matrix(y: np.ndarray, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 2 or y.shape[0] == 0 or y.shape[1] == 0:
        raise DataError(f"{what}: expected a non-empty 0/1 label matrix (N, L), got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise DataError(f"{what}: labels must be 0 or 1 (or booleans), got values {np.unique(y)[:5].tolist()}")
    return y.astype(np.float64)


def label_relations(y: np.ndarray, min_strength: float = 0.1) -> LabelRelations:
    """The label relations of a 0/1 label matrix ``y`` (N, L), from how often labels co-occur.

    ``φ_jk = (n·n_jk − n_j n_k) / sqrt(n_j (n − n_j) n_k (n − n_k))`` with ``n_jk`` the rows
    holding both labels and ``n_j`` the rows holding label j (the Pearson correlation of the
    two 0/1 columns; 0 for a label that is always or never present).
    ``R⁺_jk = φ_jk`` where ``φ_jk > min_strength``, ``R⁻_jk = −φ_jk`` where
    ``φ_jk < −min_strength``, 0 elsewhere and on the diagonal.
    """
    if not (isinstance(min_strength, int | float) and 0.0 <= min_strength < 1.0):
        raise ConfigError(f"min_strength must be a number in [0, 1), got {min_strength!r}")
    y = _label_matrix(y, "label_relations")
    n = float(len(y))
    counts = y.sum(0)
    joint = y.T @ y
    spread = counts * (n - counts)
    denominator = np.sqrt(np.outer(spread, spread))
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = np.where(denominator > 0, (n * joint - np.outer(counts, counts)) / np.where(denominator > 0, denominator, 1), 0.0)
    np.fill_diagonal(phi, 0.0)
    positive = np.where(phi > min_strength, phi, 0.0)
    negative = np.where(phi < -min_strength, -phi, 0.0)
    return LabelRelations(positive.astype(np.float32), negative.astype(np.float32), phi.astype(np.float32))


def relation_penalty(probabilities: Tensor, relations: LabelRelations) -> Tensor:
    """The prior term ``(1/B) Σ_b [Σ_{j<k} R⁺_jk (p_j − p_k)² + Σ_{j<k} R⁻_jk p_j p_k]`` (see the module docstring)."""
    if probabilities.dim() != 2 or probabilities.shape[1] != relations.num_labels:
        raise ConfigError(f"the relations are for {relations.num_labels} labels; the probabilities have shape "
                          f"{tuple(probabilities.shape)} (expected (N, {relations.num_labels}))")
    pos = torch.as_tensor(relations.positive, dtype=probabilities.dtype, device=probabilities.device)
    neg = torch.as_tensor(relations.negative, dtype=probabilities.dtype, device=probabilities.device)
    diff = probabilities.unsqueeze(2) - probabilities.unsqueeze(1)  # (B, L, L): p_j − p_k
    pull = (pos * diff.square()).sum((1, 2))
    push = ((probabilities @ neg) * probabilities).sum(1)
    return 0.5 * (pull + push).mean()  # each unordered pair appears twice in the symmetric sums


def jbce_loss(
    logits: Tensor, targets: Tensor, relations: LabelRelations | None = None, prior_weight: float = 0.0,
) -> Tensor:
    """Joint binary cross-entropy of ``logits`` (N, L) against 0/1 ``targets`` (N, L), plus λ·prior.

    ``JBCE = (1/N) Σ_n Σ_j BCE(σ(z_nj), y_nj)`` (computed from the logits, which is
    numerically stable); with ``relations`` and ``prior_weight`` λ > 0 the loss is
    ``JBCE + λ·relation_penalty(σ(z), relations)``. Decisions are ``p_j > 0.5``, i.e. ``z_j > 0``.
    """
    if logits.dim() != 2 or targets.shape != logits.shape:
        raise ConfigError(f"jbce_loss needs logits and targets of the same shape (N, L), got "
                          f"{tuple(logits.shape)} and {tuple(targets.shape)}")
    if not (isinstance(prior_weight, int | float) and prior_weight >= 0.0 and np.isfinite(prior_weight)):
        raise ConfigError(f"prior_weight must be a finite number ≥ 0, got {prior_weight!r}")
    if prior_weight > 0.0 and relations is None:
        raise ConfigError("prior_weight > 0 needs the label relations (label_relations(y_train))")
    loss = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="sum") / len(logits)
    if prior_weight > 0.0 and relations is not None:
        loss = loss + prior_weight * relation_penalty(torch.sigmoid(logits), relations)
    return loss
