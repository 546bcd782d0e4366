"""Shared fixtures: the ../shared folder beside the checkout, deterministic torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
