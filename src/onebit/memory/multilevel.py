"""The multi-level (non-binary) neuron of Lingashetty 2010 (arXiv:1007.0417, section on
non-binary networks): a neuron takes one of ``L`` levels instead of ±1.

Levels: ``L`` equally spaced values in ``[−1, 1]``, ``v_j = −1 + 2j/(L − 1)``, ``j = 0 … L−1``
(``L = 2``: ``{−1, +1}``; ``L = 3``: ``{−1, 0, 1}``; ``L = 4``: ``{−1, −⅓, ⅓, 1}``).
Quantizer: ``Q_L(y)`` = the level nearest to ``y`` (``y`` clipped to ``[−1, 1]``), a tie going to
the upper level, so ``Q_2 = sgn`` with ``sgn(0) = +1`` as everywhere in onebit:
``j = clip(⌊(y + 1)(L − 1)/2 + ½⌋, 0, L − 1)``.
The paper's own level set and thresholds could not be read (its text was not available to
this reproduction); these are the natural symmetric choice and reduce exactly to the binary
network at ``L = 2``.
"""

from __future__ import annotations

import numpy as np

from onebit.errors import ConfigError

__all__ = ["level_values", "quantize_levels", "random_patterns"]


def _check_levels(levels: object) -> int:
    if type(levels) is not int or not 2 <= levels <= 256:
        raise ConfigError(f"levels must be an integer in [2, 256] (2: binary ±1), got {levels!r}")
    return levels


def level_values(levels: int) -> np.ndarray:
    """The ``L`` levels ``−1 + 2j/(L − 1)``, float64, ascending."""
    n = _check_levels(levels)
    return -1.0 + 2.0 * np.arange(n) / (n - 1)


def quantize_levels(y: np.ndarray, levels: int) -> np.ndarray:
    """``Q_L(y)``: the nearest level to each value of ``y`` (ties upward; ``Q_2 = sgn``, sgn(0) = +1)."""
    n = _check_levels(levels)
    y = np.asarray(y, dtype=np.float64)
    j = np.clip(np.floor((np.clip(y, -1.0, 1.0) + 1.0) * (n - 1) / 2.0 + 0.5), 0, n - 1)
    return level_values(n)[j.astype(np.int64)]


def random_patterns(k: int, n: int, levels: int = 2, rng: np.random.Generator | None = None) -> np.ndarray:
    """``k`` random patterns of ``n`` neurons, each value uniform over the ``levels`` levels, float64 ``(k, n)``."""
    if type(k) is not int or type(n) is not int or k < 1 or n < 1:
        raise ConfigError(f"k and N must be integers ≥ 1, got k={k!r}, N={n!r}")
    rng = np.random.default_rng(0) if rng is None else rng
    return level_values(levels)[rng.integers(0, _check_levels(levels), size=(k, n))]
