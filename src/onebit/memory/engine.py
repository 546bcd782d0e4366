"""The B-matrix iteration on onebit's packed kernels (``onebit._core``, no torch).

The neurons' states are ±1, so each iteration packs them into bits (bit 1 = −1) and one
kernel call computes the fields ``B f`` of a batch of states (all clamp values of one
clamped neuron share its ``B``). ``B`` itself is real-valued for the delta rule, so its signs
alone are not the network; two engine paths:

- ``"float-input"``: the real ``B`` (float32) is the float operand of onebit's float-input
  kernel (``BinaryWeightsF32``, built on the packed states: ``run(B) = B · Fᵀ``). Exact when
  ``B`` holds integers whose row sums of magnitudes stay below 2²⁴ (every partial sum is then
  a float32 integer, whatever the order of the additions): true of the Hebbian ``T`` as it
  is (entries in ``[−k, k]``), and of the delta rule's ``W`` after
  :func:`~onebit.memory.storage.quantize_weights` (8 bits: ``|entry| ≤ 127``, exact to
  ``N = 132,104``). The capacity cost is that of the quantization (measured by the
  ``lingashetty2010_delta_rule`` experiment).
- ``"xnor"``: the binarized ``sgn(B)`` (sgn(0) = +1) in the XNOR-popcount GEMM
  (``PackedWeights``, ``bgemm``). ``B``'s zeros above its diagonal are not ±1: the packed
  matrix holds +1 there and the fields are corrected exactly by the suffix sums of the
  state, ``(B f)_a = (S f)_a − Σ_{b≥a} f_b``. The capacity cost is that of keeping only the
  signs of the weights.

Both give bit for bit the states and iteration counts of the numpy reference
(:func:`onebit.memory.retrieval.retrieve` with ``engine="numpy"`` on the integer ``W``, resp. on
``sgn(W)``): the first field ``B f⁰ = x_i · B[:, 0]`` of the fragment (whose zeros bits
cannot hold) is computed as that outer product, every later one by the kernel.
"""

from __future__ import annotations

import numpy as np

from onebit import _core
from onebit.errors import ConfigError
from onebit.memory.retrieval import iterate

__all__ = ["EXACT_LIMIT", "binarize_weights", "packed_iteration"]

EXACT_LIMIT = 2**24  # float32 holds every integer below this exactly


def binarize_weights(weights: np.ndarray) -> np.ndarray:
    """``sgn(W)`` off the diagonal (sgn(0) = +1), 0 on it, float64: the matrix the ``"xnor"`` path runs."""
    w = np.where(np.asarray(weights, dtype=np.float64) >= 0, 1.0, -1.0)
    np.fill_diagonal(w, 0.0)
    return w


def _check_exact(w: np.ndarray) -> None:
    if not np.array_equal(w, np.round(w)):
        raise ConfigError("engine 'float-input' needs integer-valued weights (exact float32 sums): quantize them "
                          "with onebit.memory.quantize_weights(W, bits) or use engine='numpy' or 'xnor'")
    widest = float(np.abs(w).sum(axis=1).max())
    if widest >= EXACT_LIMIT:
        raise ConfigError(f"engine 'float-input': a row's sum of |weights| is {widest:.0f} ≥ 2^24, where float32 "
                          "sums stop being exact; quantize with fewer bits")


def packed_iteration(weights: np.ndarray, order: np.ndarray, values: np.ndarray, engine: str,
                     num_threads: int = 0) -> tuple[np.ndarray, int]:
    """The iteration of :func:`onebit.memory.retrieval.iterate` (binary) with the fields from a
    packed kernel; returns the states in spreading order and the number of fields computed."""
    n = weights.shape[0]
    gathered = weights[np.ix_(order, order)]
    lower = np.tri(n, k=-1, dtype=bool)
    if engine == "float-input":
        _check_exact(weights)
        b = np.where(lower, gathered, 0.0).astype(np.float32)
        first = np.outer(values, b[:, 0].astype(np.float64))

        def product(f: np.ndarray) -> np.ndarray:
            states = _core.BinaryWeightsF32(_core.pack_rows(np.ascontiguousarray(f, np.float32)), n)
            return states.run(b, num_threads).T.astype(np.float64)
    elif engine == "xnor":
        # sgn(B) below the diagonal, +1 on and above it (corrected by the suffix sums below)
        signs = np.where(lower & (gathered < 0), np.float32(-1.0), np.float32(1.0))
        first = np.outer(values, np.where(lower[:, 0], signs[:, 0], 0.0).astype(np.float64))
        packed = _core.PackedWeights(_core.pack_rows(signs), n)

        def product(f: np.ndarray) -> np.ndarray:
            s_f = _core.bgemm(_core.pack_rows(np.ascontiguousarray(f, np.float32)), packed, num_threads)
            suffix = np.cumsum(f[:, ::-1], axis=1)[:, ::-1]
            return s_f.astype(np.float64) - suffix
    else:  # retrieve() checked the name
        raise ConfigError(f"unknown packed engine {engine!r}")
    return iterate(product, values, n, 2, 1.0, first=first)
