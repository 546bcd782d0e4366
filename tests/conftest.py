"""Shared fixtures: the ../shared folder beside the checkout, deterministic torch."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MNIST_T10K = SHARED / "data" / "mnist-t10k"


@pytest.fixture
def mnist_t10k_dir() -> Path:
    """The real MNIST test set (IDX, gzip) from ../shared; skips where it is absent."""
    if not (MNIST_T10K / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"../shared/data/mnist-t10k not found at {MNIST_T10K} (a user's clone has no ../shared)")
    return MNIST_T10K
