"""Folding what follows a binary layer into its output stage.

A dense layer's output is ``z = alpha ⊙ y + beta`` per output channel, where ``y`` is
the raw product (an exact integer ``K − 2·popcount`` for a binary input) and alpha,
beta collect the weight scale α, a learned scale γ, the bias and an eval-mode
BatchNorm: ``BN(v) = (v − μ)·w/√(σ² + ε) + b``. When the next layer binarizes ``z``
(sign(0) = +1), the float stage becomes one integer compare per channel:

    alpha > 0:  +1 ⇔ y ≥ T,  T = ⌈−beta/alpha⌉           (flip = +1)
    alpha < 0:  +1 ⇔ y ≤ T,  T = ⌊−beta/alpha⌋           (flip = −1)
    alpha = 0:  +1 always (beta ≥ 0: T = −K) or never (T = K + 1)

the engine's rule being ``+1 ⇔ flip·(y − T) ≥ 0``.
"""

from __future__ import annotations

import numpy as np
from torch import nn


def bn_affine(bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with ``bn(v) = a·v + b`` in eval mode, in float64."""
    var = bn.running_var.detach().double().numpy()
    mean = bn.running_mean.detach().double().numpy()
    a = 1.0 / np.sqrt(var + bn.eps)
    if bn.weight is not None:
        a = a * bn.weight.detach().double().numpy()
    b = -mean * a
    if bn.bias is not None:
        b = b + bn.bias.detach().double().numpy()
    return a, b


def thresholds(alpha: np.ndarray, beta: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer thresholds and flips (int32, int8) for ``+1 ⇔ alpha·y + beta ≥ 0``, y ∈ [−k, k]."""
    alpha = np.asarray(alpha, np.float64)
    beta = np.asarray(beta, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -beta / alpha
    pos, neg = alpha > 0, alpha < 0
    out = np.where(beta >= 0, -k, k + 1).astype(np.float64)  # alpha == 0
    out[pos] = np.ceil(t[pos])
    out[neg] = np.floor(t[neg])
    out = np.clip(out, -k - 1, k + 1)  # beyond ±k every y falls on one side
    flip = np.where(neg, -1, 1).astype(np.int8)
    return out.astype(np.int32), flip
