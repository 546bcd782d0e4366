"""Analytic kernels: arc-cosine kernels, the infinite-width ReLU NTK, Gaussian and Laplace kernels.

- Arc-cosine kernels (Cho & Saul 2009): ``k_n(x, y) = (1/π)·‖x‖ⁿ‖y‖ⁿ·J_n(θ)`` with θ the
  angle between x and y, ``J_0 = π − θ``, ``J_1 = sin θ + (π − θ)·cos θ``; equivalently
  ``k_n(x, y) = 2·E_{w~N(0,I)}[1(w·x > 0)·1(w·y > 0)·(w·x)ⁿ(w·y)ⁿ]``.
- The NTK of an infinitely wide ReLU MLP in NTK parameterization (Jacot et al. 2018;
  the recursion neural-tangents implements in ``stax.Dense``/``stax.Relu``, Novak et al.
  2020): :func:`relu_ntk`.
- Gaussian ``exp(−‖x − y‖²/(2ℓ²))`` and Laplace ``exp(−‖x − y‖/ℓ)`` kernels, and
  :class:`KernelRidgeClassifier` on them. Zhang, Yin & Wang (arXiv:2206.05916) compare the
  binary-weight network to the Gaussian kernel (eigenvalues decaying about exponentially)
  and the real-weight ReLU network to the Laplace kernel (power-law decay; Geifman et al.
  2020, Chen & Xu 2021 show the ReLU NTK and the Laplace kernel share their RKHS on the sphere).

All functions take arrays shaped (N, ...) (flattened to (N, d)) and compute in float64.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from onebit.errors import ConfigError, DataError, unknown_choice

__all__ = ["KERNELS", "KernelRidgeClassifier", "arccos_kernel", "gaussian_kernel", "kernel_matrix",
           "laplace_kernel", "median_distance", "relu_ntk"]

KERNELS = ("gaussian", "laplace", "relu_ntk")


def _rows(x: Any, what: str) -> np.ndarray:
    """``x`` as a float64 (N, d) array: (N, ...) flattened; a DataError for anything else."""
    try:
        a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be a numeric array shaped (N, features), got {type(x).__name__} "
                        f"({exc})") from None
    if a.ndim < 2 or a.shape[0] < 1:
        raise DataError(f"{what} must be shaped (N, features) with N ≥ 1, got shape {a.shape}")
    a = a.reshape(a.shape[0], -1)
    if not np.isfinite(a).all():
        raise DataError(f"{what} holds NaN or infinite values")
    return a


def _pair(x1: Any, x2: Any) -> tuple[np.ndarray, np.ndarray]:
    a = _rows(x1, "x1")
    b = a if x2 is None else _rows(x2, "x2")
    if a.shape[1] != b.shape[1]:
        raise DataError(f"x1 has {a.shape[1]} features per sample, x2 {b.shape[1]}")
    return a, b


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d2, 0.0)


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def arccos_kernel(x1: Any, x2: Any = None, order: int = 1) -> np.ndarray:
    """Cho & Saul's arc-cosine kernel of order 0 or 1: ``(1/π)‖x‖ⁿ‖y‖ⁿ J_n(θ)``, shape (N1, N2).

    ``order=0``: ``1 − θ/π`` (the kernel of step units); ``order=1``:
    ``‖x‖‖y‖(sin θ + (π − θ) cos θ)/π`` (ReLU units; E[ReLU(w·x)ReLU(w·y)] is half of it).
    Reference: Y. Cho, L. Saul, "Kernel Methods for Deep Learning", NeurIPS 2009.
    """
    if order not in (0, 1):
        raise ConfigError(f"arc-cosine kernel order must be 0 or 1, got {order!r}")
    a, b = _pair(x1, x2)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    norms = np.outer(na, nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, (a @ b.T) / np.where(norms > 0, norms, 1.0), 0.0)
    theta = np.arccos(np.clip(cos, -1.0, 1.0))
    if order == 0:
        return (math.pi - theta) / math.pi
    return norms * (np.sin(theta) + (math.pi - theta) * np.cos(theta)) / math.pi


def _relu_expectations(k12: np.ndarray, k11: np.ndarray, k22: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E[ReLU(u)ReLU(v)] and E[ReLU'(u)ReLU'(v)] for (u, v) centred Gaussian with covariance
    [[k11, k12], [k12, k22]]: ``√(k11 k22)(sin θ + (π − θ)cos θ)/(2π)`` and ``(π − θ)/(2π)``."""
    norms = np.sqrt(np.outer(k11, k22))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, k12 / np.where(norms > 0, norms, 1.0), 0.0)
    theta = np.arccos(np.clip(cos, -1.0, 1.0))
    nngp = norms * (np.sin(theta) + (math.pi - theta) * np.cos(theta)) / (2.0 * math.pi)
    return nngp, (math.pi - theta) / (2.0 * math.pi)


def relu_ntk(x1: Any, x2: Any = None, depth: int = 1, *, weight_std: float = 1.0, bias_std: float = 0.0,
             return_nngp: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The infinite-width NTK Θ(x1, x2) of a ReLU MLP with ``depth`` hidden layers, shape (N1, N2).

    The network (NTK parameterization, what :class:`onebit.analysis.ntk.NTKReLUNet` builds):
    ``z¹ = σ_w W¹x/√d + σ_b b¹``, ``zˡ⁺¹ = σ_w Wˡ⁺¹ReLU(zˡ)/√n + σ_b bˡ⁺¹``, all W, b ~ N(0, 1).
    Recursion (Jacot et al. 2018; neural-tangents' Dense/Relu): ``K¹ = Θ¹ = σ_w² x·x'/d + σ_b²``;
    per hidden layer ``Kˡ⁺¹ = σ_w² E[ReLU(u)ReLU(u')] + σ_b²`` and
    ``Θˡ⁺¹ = Kˡ⁺¹ + σ_w² Θˡ E[ReLU'(u)ReLU'(u')]``, with (u, u') ~ N(0, Kˡ) (arc-cosine
    kernels of order 1 and 0, halved). ``return_nngp=True`` also returns the NNGP kernel K.
    One hidden layer, σ_w = 1, σ_b = 0: ``Θ(x, x') = E[ReLU(u)ReLU(u')] + (x·x'/d)·(π − θ)/(2π)``.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ConfigError(f"depth (hidden layers) must be a positive integer, got {depth!r}")
    w2 = _positive("weight_std", weight_std) ** 2
    if isinstance(bias_std, bool) or not isinstance(bias_std, int | float) or not (
            bias_std >= 0 and math.isfinite(bias_std)):
        raise ConfigError(f"bias_std must be a number ≥ 0, got {bias_std!r}")
    b2 = float(bias_std) ** 2
    a, b = _pair(x1, x2)
    d = a.shape[1]
    k12 = w2 * (a @ b.T) / d + b2
    k11 = w2 * (a * a).sum(1) / d + b2
    k22 = w2 * (b * b).sum(1) / d + b2
    ntk = k12.copy()
    for _ in range(depth):
        nngp, dot = _relu_expectations(k12, k11, k22)
        k12 = w2 * nngp + b2
        ntk = k12 + w2 * ntk * dot
        # the diagonal: θ = 0, so E[ReLU(u)²] = k/2 and E[ReLU'(u)²] = 1/2
        k11, k22 = w2 * k11 / 2.0 + b2, w2 * k22 / 2.0 + b2
    return (ntk, k12) if return_nngp else ntk


def gaussian_kernel(x1: Any, x2: Any = None, bandwidth: float = 1.0) -> np.ndarray:
    """``exp(−‖x − y‖²/(2ℓ²))`` with ℓ = ``bandwidth``, shape (N1, N2)."""
    ell = _positive("bandwidth", bandwidth)
    a, b = _pair(x1, x2)
    return np.exp(-_sq_distances(a, b) / (2.0 * ell * ell))


def laplace_kernel(x1: Any, x2: Any = None, bandwidth: float = 1.0) -> np.ndarray:
    """``exp(−‖x − y‖/ℓ)`` with ℓ = ``bandwidth``, shape (N1, N2)."""
    ell = _positive("bandwidth", bandwidth)
    a, b = _pair(x1, x2)
    return np.exp(-np.sqrt(_sq_distances(a, b)) / ell)


def median_distance(x: Any) -> float:
    """The median Euclidean distance between distinct rows of ``x`` (the usual bandwidth heuristic)."""
    a = _rows(x, "x")
    if a.shape[0] < 2:
        raise DataError(f"the median distance needs at least 2 samples, got {a.shape[0]}")
    d = np.sqrt(_sq_distances(a, a))[np.triu_indices(a.shape[0], k=1)]
    med = float(np.median(d))
    if med <= 0:
        raise DataError("all samples are identical: no median distance to set a bandwidth from")
    return med


def kernel_matrix(kernel: str, x1: Any, x2: Any = None, *, bandwidth: float = 1.0, depth: int = 1) -> np.ndarray:
    """The kernel named ``kernel`` (one of :data:`KERNELS`) between the rows of x1 and x2."""
    if kernel == "gaussian":
        return gaussian_kernel(x1, x2, bandwidth)
    if kernel == "laplace":
        return laplace_kernel(x1, x2, bandwidth)
    if kernel == "relu_ntk":
        return relu_ntk(x1, x2, depth)  # type: ignore[return-value]
    raise unknown_choice("kernel", kernel, KERNELS)


class KernelRidgeClassifier:
    """Kernel ridge regression on one-hot labels; the class is the argmax of the prediction.

    ``fit``: ``α = (K + λI)⁻¹ Y`` with K the training kernel matrix and Y the one-hot labels;
    ``predict``: ``argmax_c K(x, X)α``. ``bandwidth=None`` takes the median distance of the
    training rows (Gaussian and Laplace kernels); ``ridge`` is λ. With a small λ the
    training accuracy is about 100 %, so the generalization gap is 1 − test accuracy.
    """

    def __init__(self, kernel: str = "gaussian", *, bandwidth: float | None = None, ridge: float = 1e-3,
                 depth: int = 1) -> None:
        if kernel not in KERNELS:
            raise unknown_choice("kernel", kernel, KERNELS)
        if bandwidth is not None:
            _positive("bandwidth", bandwidth)
        self.kernel, self.bandwidth, self.ridge = kernel, bandwidth, _positive("ridge", ridge)
        self.depth = depth
        self.x_: np.ndarray | None = None
        self.alpha_: np.ndarray | None = None
        self.classes_: np.ndarray | None = None

    def fit(self, x: Any, y: Any) -> KernelRidgeClassifier:
        """Solve for the dual coefficients on training rows ``x`` and integer labels ``y``."""
        a = _rows(x, "x")
        labels = np.asarray(y)
        if labels.shape != (a.shape[0],):
            raise DataError(f"y must hold one label per row of x ({a.shape[0]}), got shape {labels.shape}")
        self.classes_, index = np.unique(labels, return_inverse=True)
        if self.bandwidth is None and self.kernel != "relu_ntk":
            self.bandwidth = median_distance(a)
        k = kernel_matrix(self.kernel, a, bandwidth=self.bandwidth or 1.0, depth=self.depth)
        targets = np.eye(len(self.classes_))[index]
        self.x_, self.alpha_ = a, np.linalg.solve(k + self.ridge * np.eye(len(a)), targets)
        return self

    def decision_function(self, x: Any) -> np.ndarray:
        """``K(x, X)α``: one score per class, shape (N, classes)."""
        if self.x_ is None or self.alpha_ is None:
            raise ConfigError("the classifier is not fitted yet: call fit(x, y) first")
        k = kernel_matrix(self.kernel, x, self.x_, bandwidth=self.bandwidth or 1.0, depth=self.depth)
        return k @ self.alpha_

    def predict(self, x: Any) -> np.ndarray:
        """The predicted labels."""
        scores = self.decision_function(x)
        assert self.classes_ is not None  # set by fit, which decision_function checked
        return self.classes_[scores.argmax(1)]

    def score(self, x: Any, y: Any) -> float:
        """Accuracy on ``(x, y)``."""
        return float((self.predict(x) == np.asarray(y)).mean())
