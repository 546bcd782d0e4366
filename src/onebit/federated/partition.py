"""How a data set's training rows are dealt out to federated clients: IID or Dirichlet non-IID.

- :func:`iid_partition`: a seeded shuffle cut into N near-equal parts (sizes differ by ≤ 1).
- :func:`dirichlet_partition`: for each class c, proportions ``p_c ~ Dirichlet(α·1_N)`` split that
  class's rows among the N clients (Hsu, Qi, Brown, "Measuring the Effects of Non-Identical Data
  Distribution for Federated Visual Classification", arXiv:1909.06335, 2019). Small α gives each
  client few classes; α → ∞ tends to IID. Draws repeat until every client has at least
  ``min_size`` rows (as in Hsu et al.'s and FedML's code), at most 1,000 times.

Both return one sorted ``int64`` index array per client; together they cover every row once.
"""

from __future__ import annotations

import math

import numpy as np

from onebit.errors import ConfigError, DataError

__all__ = ["dirichlet_partition", "iid_partition", "partition_counts"]


def _check(labels: np.ndarray, clients: int) -> np.ndarray:
    if isinstance(clients, bool) or not isinstance(clients, int) or clients < 1:
        raise ConfigError(f"the number of clients must be a positive integer, got {clients!r}")
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"labels must be a 1-D integer array, got shape {y.shape} and dtype {y.dtype}")
    if len(y) < clients:
        raise ConfigError(f"{len(y)} training rows cannot be dealt to {clients} clients")
    return y


def iid_partition(labels: np.ndarray, clients: int, seed: int = 0) -> list[np.ndarray]:
    """A seeded random permutation of the rows cut into ``clients`` parts of near-equal size."""
    y = _check(labels, clients)
    order = np.random.default_rng(seed).permutation(len(y))
    return [np.sort(part).astype(np.int64) for part in np.array_split(order, clients)]


def dirichlet_partition(labels: np.ndarray, clients: int, alpha: float, seed: int = 0,
                        min_size: int = 10) -> list[np.ndarray]:
    """Per class, Dirichlet(α)-distributed shares of its rows to each client (label skew)."""
    y = _check(labels, clients)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not (alpha > 0 and math.isfinite(alpha)):
        raise ConfigError(f"the Dirichlet concentration α must be a positive number, got {alpha!r}")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 0:
        raise ConfigError(f"min_size must be a non-negative integer, got {min_size!r}")
    if min_size * clients > len(y):
        raise ConfigError(f"{clients} clients × min_size {min_size} exceeds the {len(y)} training rows")
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    for _ in range(1000):
        parts: list[list[np.ndarray]] = [[] for _ in range(clients)]
        for c in classes:
            rows = rng.permutation(np.flatnonzero(y == c))
            shares = rng.dirichlet(np.full(clients, float(alpha)))
            cuts = (np.cumsum(shares)[:-1] * len(rows)).astype(int)
            for k, chunk in enumerate(np.split(rows, cuts)):
                parts[k].append(chunk)
        result = [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]
        if min(len(r) for r in result) >= min_size:
            return result
    raise ConfigError(f"no Dirichlet(α={alpha}) draw gave every one of {clients} clients {min_size} rows in 1,000 "
                      "tries; raise α or lower the number of clients")


def partition_counts(labels: np.ndarray, parts: list[np.ndarray], num_classes: int) -> np.ndarray:
    """``(clients, classes)`` table of how many rows of each class each client holds."""
    y = np.asarray(labels)
    return np.stack([np.bincount(y[p], minlength=num_classes) for p in parts])
