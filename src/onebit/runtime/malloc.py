"""glibc's malloc kept from handing large activations back to the kernel after every call.

A network's activations are many MB (a BinaryDenseNet block at 56×56×448 floats is 5.6 MB).
numpy allocates them per call; glibc serves blocks above its mmap threshold with fresh
``mmap`` pages and trims the heap top back to the kernel once more than its trim threshold
is free, so every forward pass page-faults its activations in again: measured on
BinaryDenseNet-28 at 224×224, 20.5 ms per image with the defaults, 9.9 ms without the
faults. On first :func:`onebit.runtime.load` the runtime sets ``M_MMAP_THRESHOLD`` to 32 MiB
(glibc's maximum) and ``M_TRIM_THRESHOLD`` to 256 MiB: freed activations stay in the heap
for the next call; the process keeps up to 256 MiB of freed memory mapped. Process-wide, so
``ONEBIT_MALLOC_TUNING=0`` leaves malloc alone. No effect off glibc (musl, macOS, Windows).
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_state: dict[str, bool] = {}


def keep_freed_memory() -> bool:
    """Set the thresholds once per process; True where they are set (glibc, not disabled)."""
    if "set" not in _state:
        _state["set"] = _set()
    return _state["set"]


def _set() -> bool:
    if os.environ.get("ONEBIT_MALLOC_TUNING", "").strip() == "0":
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: other C libraries have other mallopt parameters
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
