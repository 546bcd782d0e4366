"""The paper's structuring elements, as boolean ``k × k`` masks (the reference's
``general/structuring_elements.py``; the disk is ``skimage.morphology.disk(r)``)."""

from __future__ import annotations

import numpy as np

from onebit.errors import ConfigError, unknown_choice

__all__ = ["SELEMS", "dcross", "disk", "hstick", "structuring_element"]


def disk(radius: int) -> np.ndarray:
    """``{(i, j): i² + j² ≤ r²}`` in a ``(2r+1) × (2r+1)`` window (radius 3: the 7×7 disk, 29 pixels)."""
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius ** 2


def hstick(size: int) -> np.ndarray:
    """The middle row of a ``size × size`` window (a horizontal segment of ``size`` pixels)."""
    S = np.zeros((size, size), bool)
    S[size // 2, :] = True
    return S


def dcross(size: int) -> np.ndarray:
    """Both diagonals of a ``size × size`` window (the diagonal cross, ``2·size − 1`` pixels)."""
    S = np.eye(size, dtype=bool)
    return S | S[:, ::-1]


SELEMS = {"disk": lambda k: disk(k // 2), "hstick": hstick, "dcross": dcross}


def structuring_element(name: str, size: int = 7) -> np.ndarray:
    """``disk``, ``hstick`` or ``dcross`` in a ``size × size`` window (size odd)."""
    if name not in SELEMS:
        raise unknown_choice("structuring element", name, SELEMS)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ConfigError(f"structuring element size must be an odd positive integer, got {size!r}")
    return SELEMS[name](size)
