"""Storing ±1 (or multi-level) patterns in a feedback network: the Hebbian and the delta rule.

A pattern is a row ``x`` of length N; ``k`` patterns form ``X`` of shape ``(k, N)``.

- Hebbian (outer-product) rule: ``T = Σ_m x_m x_mᵀ`` with a zero diagonal (Hopfield 1982;
  the interconnection matrix of Kak's B-matrix approach, arXiv:0906.0798).
- Delta (Widrow–Hoff) rule: ``W ← W + η (x − W x) xᵀ``, then ``W_ii = 0``, for each pattern
  in order, epoch after epoch (Lingashetty 2010, arXiv:1007.0417). It descends the squared
  error ``½‖x − W x‖²`` of each pattern; for ``0 < η < 2/‖x‖²`` it converges to a ``W`` with
  ``W x_m = x_m`` (the projection onto the patterns, diagonal held at 0) when one exists.
  Stopping: after the epoch in which ``max_m ‖x_m − W x_m‖_∞ < tol``, or after ``epochs``.

Both matrices are read as ``W[u, v]`` = weight of the input from neuron ``v`` into neuron
``u`` (row = receiving neuron), so the field of neuron ``u`` is ``(W f)_u``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onebit.errors import ConfigError

__all__ = ["DeltaResult", "check_patterns", "delta_rule", "hebbian", "quantize_weights"]


def check_patterns(patterns: object, levels: int = 2) -> np.ndarray:
    """``patterns`` as float64 ``(k, N)``, checked: 2-D, ``N ≥ 1``, ``k ≥ 1``, finite, every value
    one of the ``levels`` levels of :func:`onebit.memory.multilevel.level_values` (``{−1, +1}`` for
    ``levels=2``). Raises :class:`~onebit.errors.ConfigError` naming the first bad value."""
    from onebit.memory.multilevel import level_values

    x = np.asarray(patterns)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ConfigError(f"patterns must be a (k, N) array of ±1 rows, got shape {x.shape}")
    if x.shape[1] == 0 or x.shape[0] == 0:
        raise ConfigError(f"patterns need k ≥ 1 rows of N ≥ 1 neurons, got shape {x.shape}")
    if x.dtype == bool or not np.issubdtype(x.dtype, np.number):
        raise ConfigError(f"patterns must be numbers in {{±1}}, got dtype {x.dtype}")
    x = x.astype(np.float64)
    valid = level_values(levels)
    ok = np.isin(x, valid)
    if not ok.all():
        m, n = np.argwhere(~ok)[0]
        allowed = "{-1, +1}" if levels == 2 else "{" + ", ".join(f"{v:g}" for v in valid) + "}"
        raise ConfigError(f"patterns must hold only {allowed} ({levels} levels), got {float(x[m, n])!r} at row {m}, "
                          f"neuron {n}")
    return x


def hebbian(patterns: object, levels: int = 2) -> np.ndarray:
    """The Hebbian interconnection matrix ``T = Σ_m x_m x_mᵀ`` with ``T_ii = 0``, float64 ``(N, N)``.

    For ±1 patterns every entry is an integer in ``[−k, k]`` (of the parity of k off the diagonal).
    """
    x = check_patterns(patterns, levels)
    t = x.T @ x
    np.fill_diagonal(t, 0.0)
    return t


@dataclass(frozen=True)
class DeltaResult:
    """The delta rule's matrix and how training went.

    ``weights``: ``W`` (N, N) float64, zero diagonal; ``epochs``: epochs run; ``converged``:
    whether ``residual < tol`` stopped it; ``residual``: ``max_m ‖x_m − W x_m‖_∞`` after the last
    epoch; ``eta``: the learning rate used.
    """

    weights: np.ndarray
    epochs: int
    converged: bool
    residual: float
    eta: float


def delta_rule(patterns: object, eta: float | None = None, epochs: int = 200, tol: float = 1e-6,
               init: np.ndarray | None = None, levels: int = 2) -> DeltaResult:
    """Train ``W`` by the delta (Widrow–Hoff) rule ``W ← W + η (x − W x) xᵀ``, ``W_ii = 0``.

    Args:
        patterns: ``(k, N)`` stored patterns (±1, or ``levels`` levels).
        eta: learning rate; default ``0.5 / max_m ‖x_m‖²`` (stable: ``η ‖x‖² < 2``).
        epochs: the most passes over the patterns (in order, one update per pattern).
        tol: stop after the first epoch with ``max_m ‖x_m − W x_m‖_∞ < tol``.
        init: starting matrix (default zeros; e.g. the Hebbian ``T`` scaled); its diagonal is zeroed.
        levels: the number of levels of the patterns (2: ±1).
    """
    x = check_patterns(patterns, levels)
    n = x.shape[1]
    energy = float((x * x).sum(axis=1).max())
    if eta is None:
        eta = 0.5 / energy if energy > 0 else 1.0
    if not (isinstance(eta, (int, float)) and np.isfinite(eta) and eta > 0):
        raise ConfigError(f"eta must be a positive finite number, got {eta!r}")
    if type(epochs) is not int or epochs < 1:
        raise ConfigError(f"epochs must be an integer ≥ 1, got {epochs!r}")
    if init is None:
        w = np.zeros((n, n))
    else:
        w = np.array(init, dtype=np.float64)
        if w.shape != (n, n) or not np.isfinite(w).all():
            raise ConfigError(f"init must be a finite ({n}, {n}) matrix for N={n} neurons, got shape {w.shape}")
    np.fill_diagonal(w, 0.0)
    diag = np.arange(n)
    residual, done = float("inf"), 0
    for done in range(1, epochs + 1):
        for p in x:
            w += eta * np.outer(p - w @ p, p)
            w[diag, diag] = 0.0
        residual = float(np.abs(x - x @ w.T).max())
        if residual < tol:
            break
    return DeltaResult(weights=w, epochs=done, converged=residual < tol, residual=residual, eta=float(eta))


def quantize_weights(weights: np.ndarray, bits: int = 8) -> tuple[np.ndarray, float]:
    """Round ``W`` onto a symmetric integer grid: ``(Q, s)`` with ``Q = round(W / s)`` integer-valued
    float64 in ``[−(2^(bits−1) − 1), 2^(bits−1) − 1]`` and ``s = max|W| / (2^(bits−1) − 1)``.

    ``sgn(Q f)`` is what the float-input engine path computes exactly (integer sums below 2²⁴);
    ``Q s ≈ W``. Zero matrix: ``(0, 1.0)``.
    """
    w = np.asarray(weights, dtype=np.float64)
    if type(bits) is not int or not 2 <= bits <= 16:
        raise ConfigError(f"bits must be an integer in [2, 16], got {bits!r}")
    if w.ndim != 2 or w.shape[0] != w.shape[1] or not np.isfinite(w).all():
        raise ConfigError(f"weights must be a finite square (N, N) matrix, got shape {w.shape}")
    top = float(np.abs(w).max()) if w.size else 0.0
    if top == 0.0:
        return np.zeros_like(w), 1.0
    scale = top / (2 ** (bits - 1) - 1)
    return np.round(w / scale), scale
