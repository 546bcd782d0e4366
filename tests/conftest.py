"""Shared fixtures: the ../shared folder beside the checkout, deterministic torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MNIST_T10K = SHARED / "data" / "mnist-t10k"


@pytest.fixture
def mnist_t10k_dir() -> Path:
    """The real MNIST test set (IDX, gzip) from ../shared; skips where it is absent."""
    if not (MNIST_T10K / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"../shared/data/mnist-t10k not found at {MNIST_T10K} (a user's clone has no ../shared)")
    return MNIST_T10K


def assert_first_threaded_call_completes(code: str, what: str) -> None:
    """Guard for threaded kernel tests: ``code`` (a first threaded call) finishes in a fresh
    process. The pool once deadlocked there (a late-starting worker missed its first job);
    the subprocess and its timeout make a regression fail instead of hanging the suite."""
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the first threaded {what} call of a fresh process hung (thread-pool deadlock)")
    assert proc.returncode == 0, proc.stderr


def kernel_settings(max_examples: int) -> settings:
    """Hypothesis settings of the kernel property tests: fixed examples, no database, no deadline."""
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def pack_pm(pm: np.ndarray) -> np.ndarray:
    """Pack ±1 values along the last axis into uint64 words: bit 1 where -1, tail bits 0.
    Written without the C++ packer so the kernel tests do not depend on it."""
    pm = np.asarray(pm)
    c = pm.shape[-1]
    words = (c + 63) // 64
    bits = np.zeros(pm.shape[:-1] + (words * 64,), dtype=bool)
    bits[..., :c] = pm < 0
    # Byte b of a word holds bits 8b..8b+7, least significant first: little-endian uint64.
    packed = np.packbits(bits, axis=-1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64).reshape(pm.shape[:-1] + (words,))


def random_pm(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Random ±1 int8 array (int8 keeps the big cached problems small)."""
    return np.where(rng.random(shape) < 0.5, -1, 1).astype(np.int8)


@pytest.fixture
def one_torch_thread():
    """One torch thread for a test module's small forwards (an autouse fixture of the module requests it): on a
    shared 2-core machine torch's second OpenMP thread mostly spin-waits (5x the CPU time under load)."""
    import torch  # here: the sanitizer runs use this file without torch installed

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def ref_float_stage(y, scale, bias, act, post_scale=None, post_bias=None):
    """The specification of the kernels' float output stage (BinaryConv2d.run_float, bgemm_float), in
    numpy float32 steps (each rounded on its own)."""
    z = y.astype(np.float32) * scale + bias
    if act == "relu":
        z = np.maximum(z, np.float32(0))
    elif act == "hardtanh":
        z = np.clip(z, np.float32(-1), np.float32(1))
    return z if post_scale is None else z * post_scale + post_bias
