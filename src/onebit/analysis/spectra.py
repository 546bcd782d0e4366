"""Kernel spectra and their decay laws: exponential (Gaussian-like) against power law (Laplace-like).

Zhang, Yin & Wang (arXiv:2206.05916) show that the NTK of the quasi network of a
binary-weight net has eigenvalues decaying about exponentially, ``λ_k ≈ C·e^{−b k}`` like a
Gaussian kernel's, where the NTK of a real-weight ReLU net decays like a power law,
``λ_k ≈ C·k^{−p}``, like a Laplace kernel's. :func:`fit_spectrum` fits both laws to the
sorted eigenvalues by least squares on ``log λ_k`` against ``k`` (exponential) and against
``log k`` (power law), and reports each fit's coefficient of determination R²; the law
with the higher R² describes the decay better.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from onebit.errors import ConfigError, DataError, unknown_choice

__all__ = ["NORMALIZATIONS", "SpectrumFit", "fit_spectrum", "kernel_spectrum"]

NORMALIZATIONS = ("trace", "top", "none")


def kernel_spectrum(kernel: Any, normalize: str = "trace") -> np.ndarray:
    """Eigenvalues of a symmetric kernel matrix, largest first (float64).

    The matrix is symmetrized, ``(K + Kᵀ)/2``, against rounding. ``normalize``: ``"trace"``
    divides by the trace (the eigenvalues sum to 1, so kernels of different scale compare),
    ``"top"`` by the largest eigenvalue, ``"none"`` leaves them.
    """
    if normalize not in NORMALIZATIONS:
        raise unknown_choice("normalization", normalize, NORMALIZATIONS)
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] < 1:
        raise DataError(f"a kernel matrix must be square (N, N) with N ≥ 1, got shape {k.shape}")
    if not np.isfinite(k).all():
        raise DataError("the kernel matrix holds NaN or infinite values")
    eig = np.linalg.eigvalsh((k + k.T) / 2.0)[::-1].copy()
    if normalize == "trace":
        total = eig.sum()
        if total <= 0:
            raise DataError("the kernel matrix has a non-positive trace: not a kernel matrix")
        eig /= total
    elif normalize == "top":
        if eig[0] <= 0:
            raise DataError("the kernel matrix's largest eigenvalue is not positive")
        eig /= eig[0]
    return eig


@dataclass(frozen=True)
class SpectrumFit:
    """Both decay fits over ranks ``k_min … k_max`` (1-based) of a spectrum.

    ``exponential_rate`` b of ``log λ ≈ a − b·k`` with its ``exponential_r2``;
    ``power_exponent`` p of ``log λ ≈ a − p·log k`` with its ``power_r2``.
    """

    k_min: int
    k_max: int
    exponential_rate: float
    exponential_r2: float
    power_exponent: float
    power_r2: float

    @property
    def better(self) -> str:
        """``"exponential"`` or ``"power"``: the law with the higher R²."""
        return "exponential" if self.exponential_r2 > self.power_r2 else "power"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "better": self.better}


def _line_fit(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of y on t, and R² = 1 − SS_res/SS_tot."""
    slope, intercept = np.polyfit(t, y, 1)
    residual = y - (slope * t + intercept)
    total = ((y - y.mean()) ** 2).sum()
    r2 = 1.0 - (residual ** 2).sum() / total if total > 0 else 1.0
    return float(slope), float(r2)


def fit_spectrum(eigenvalues: Any, k_min: int = 1, k_max: int | None = None, *, floor: float = 1e-12) -> SpectrumFit:
    """Fit the exponential and the power law to eigenvalues ranked ``k_min … k_max``.

    ``eigenvalues``: sorted largest first (as :func:`kernel_spectrum` returns them).
    ``k_max=None``: up to the last eigenvalue above ``floor`` × the largest (below it,
    float64 rounding dominates). Every eigenvalue in the range must be positive.
    """
    eig = np.asarray(eigenvalues, dtype=np.float64).reshape(-1)
    if eig.size < 3 or not np.isfinite(eig).all():
        raise DataError(f"a spectrum fit needs at least 3 finite eigenvalues, got {eig.size}")
    if np.any(np.diff(eig) > 1e-12 * max(abs(eig[0]), 1e-300)):
        raise DataError("eigenvalues must be sorted largest first (as kernel_spectrum returns them)")
    if eig[0] <= 0:
        raise DataError("the largest eigenvalue is not positive: nothing decays")
    if isinstance(k_min, bool) or not isinstance(k_min, int) or k_min < 1:
        raise ConfigError(f"k_min must be a positive integer (ranks count from 1), got {k_min!r}")
    if k_max is None:
        k_max = int(np.sum(eig > floor * eig[0]))
    if isinstance(k_max, bool) or not isinstance(k_max, int) or not k_min + 2 <= k_max <= eig.size:
        raise ConfigError(f"k_max must be an integer in [k_min + 2, {eig.size}] = [{k_min + 2}, {eig.size}], "
                          f"got {k_max!r}")
    part = eig[k_min - 1:k_max]
    if np.any(part <= 0):
        bad = k_min + int(np.argmax(part <= 0))
        raise DataError(f"eigenvalue of rank {bad} is not positive; fit a range that ends before it (k_max < {bad})")
    k = np.arange(k_min, k_max + 1, dtype=np.float64)
    logs = np.log(part)
    exp_slope, exp_r2 = _line_fit(k, logs)
    pow_slope, pow_r2 = _line_fit(np.log(k), logs)
    if not (math.isfinite(exp_r2) and math.isfinite(pow_r2)):
        raise DataError("the spectrum fit is not finite")
    return SpectrumFit(k_min, k_max, -exp_slope, exp_r2, -pow_slope, pow_r2)
