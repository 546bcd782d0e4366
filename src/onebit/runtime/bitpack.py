"""Packing ±1 tensors into 64-bit words along the last axis, and back.

Bit 0 = +1, bit 1 = -1; a value packs as -1 iff it is < 0 (so sign(0) = +1). The last
axis of length C becomes ceil(C / 64) uint64 words; the unused tail bits are 0.
"""

from __future__ import annotations

import math

import numpy as np

from onebit import _core
from onebit.errors import ConfigError


def pack_bits(x: np.ndarray) -> np.ndarray:
    """Pack ``x[..., C]`` (float32, any values) into ``uint64[..., ceil(C/64)]``."""
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise ConfigError(f"pack_bits expects float32, got {x.dtype}")
    if x.ndim == 0:
        raise ConfigError("pack_bits expects at least one axis, got a scalar")
    lead, channels = x.shape[:-1], x.shape[-1]
    flat = np.ascontiguousarray(x.reshape(math.prod(lead), channels))
    return _core.pack_rows(flat).reshape(*lead, (channels + 63) // 64)


def unpack_bits(packed: np.ndarray, channels: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``uint64[..., W]`` -> float32 ±1 ``[..., channels]``."""
    packed = np.asarray(packed)
    if packed.dtype != np.uint64:
        raise ConfigError(f"unpack_bits expects uint64, got {packed.dtype}")
    if packed.ndim == 0 or packed.shape[-1] != (channels + 63) // 64:
        raise ConfigError(
            f"unpack_bits: {channels} channels need {(channels + 63) // 64} words "
            f"in the last axis, got shape {packed.shape}"
        )
    lead = packed.shape[:-1]
    flat = np.ascontiguousarray(packed.reshape(math.prod(lead), packed.shape[-1]))
    return _core.unpack_rows(flat, channels).reshape(*lead, channels)
