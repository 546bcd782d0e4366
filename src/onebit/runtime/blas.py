"""numpy's BLAS thread count, held to the model's while the runtime calls it.

The runtime's float products of many rows (a float classifier at a large batch) call
numpy's BLAS, whose OpenBLAS threads spin-wait after each call; left at their default they
occupy the cores the binary kernels' own thread pool then needs (oversubscription: a
2-thread model ran no faster than 1 thread). :func:`limit` sets OpenBLAS to the model's
thread count for the duration of such a product and restores it. The library is found among the process's loaded
objects (Linux); where there is none (another BLAS, another OS), limiting is a no-op.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

_SET = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
        "scipy_openblas_set_num_threads")
_GET = ("openblas_get_num_threads", "scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
        "scipy_openblas_get_num_threads")
_LOCK = threading.Lock()


@cache
def _openblas() -> tuple[Callable[[int], None], Callable[[], int]] | None:
    import numpy  # noqa: F401  (numpy loads its BLAS)

    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, s) for s in _SET if hasattr(lib, s)), None)
        getter = next((getattr(lib, s) for s in _GET if hasattr(lib, s)), None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
            return setter, getter
    return None


@contextmanager
def limit(num_threads: int) -> Iterator[None]:
    """OpenBLAS runs on at most ``num_threads`` threads inside the block (restored after)."""
    found = _openblas()
    if found is None:
        yield
        return
    setter, getter = found
    with _LOCK:
        previous = getter()
        if previous > num_threads:
            setter(num_threads)
    try:
        yield
    finally:
        if previous > num_threads:
            with _LOCK:
                setter(previous)
