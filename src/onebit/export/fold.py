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

XNOR-Net's block order puts a ReLU (and a max-pool) *before* the BatchNorm that feeds
the next sign: ``s = sign(a·relu(z) + b)``, ``z = alpha·y + beta``, (a, b) the BatchNorm.
Since ``a·relu(z) + b`` equals ``a·z + b`` for z ≥ 0 and ``b`` for z < 0, per channel:

    a > 0, b ≥ 0:  s = +1 for every y            (a·relu(z) + b ≥ b ≥ 0)
    a < 0, b < 0:  s = −1 for every y            (a·relu(z) + b ≤ b < 0)
    a = 0:         s = sign(b)
    otherwise:     s = sign(a·alpha·y + a·beta + b)   (for z < 0 both sides have b's sign)

so :func:`relu_bn_sign` returns the affine map ``(a·alpha, a·beta + b)`` — or ``(0, ±1)``
for a constant channel — that :func:`thresholds` turns into integers (a float input
uses it as the scale and bias of its sign). A max-pool between the ReLU and the
BatchNorm runs on ``y`` first when every ``alpha > 0``: ``relu(alpha·y + beta)`` then
rises with y, so its maximum over a window is taken where y is largest.
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


def relu_bn_sign(alpha: np.ndarray, beta: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(alpha', beta') with ``sign(a·relu(alpha·y + beta) + b) = sign(alpha'·y + beta')`` for every real y.

    Constant channels get ``alpha' = 0`` and ``beta' = ±1`` (see the module docstring).
    """
    alpha, beta, a, b = (np.asarray(v, np.float64) for v in (alpha, beta, a, b))
    scale, bias = a * alpha, a * beta + b
    plus, minus = (a >= 0) & (b >= 0), (a <= 0) & (b < 0)
    scale = np.where(plus | minus, 0.0, scale)
    bias = np.where(plus, 1.0, np.where(minus, -1.0, bias))
    return scale, bias
