"""Retrieval from a single clamped neuron by Kak's B-matrix iteration, and the active sites.

**Spreading order.** The network has a proximity matrix ``P`` (``P[i, j]`` = separation of
neurons i and j along the neural pathways; Kak, "Single neuron memories and the network's
proximity matrix", arXiv:0906.0798). Activity started at the clamped neuron ``i`` reaches
the other neurons in order of their proximity to ``i``: ``σ = (i, then the others sorted by
P[i, j], ties by lower index)``. Default ``P``: neurons on a line, ``P[i, j] = |i − j|``
(:func:`line_proximity`), so the activity spreads out to both sides, the nearer first.

**B-matrix.** In the spreading order, ``B`` is the strictly lower-triangular part of the
interconnection matrix: ``B[a, b] = W[σ_a, σ_b]`` for ``b < a``, else 0 (Kak's ``T = B + Bᵀ``
for a symmetric Hebbian ``T``; for the delta rule's non-symmetric ``W`` the rows are the
receiving neurons). Neuron ``σ_a`` therefore listens only to the neurons the activity
reached before it.

**Iteration.** From the fragment ``f⁰ = (x_i, 0, …, 0)`` (in spreading order; 0 = not yet
active), ``f ← sgn(B f)`` with the clamped neuron held, until ``f`` stops changing. ``B`` is
strictly lower triangular, so position ``a`` depends only on positions ``< a``: after step
``a`` it never changes again, the iteration reaches its unique fixed point after at most
``N − 1`` steps (one more confirms it), and the fixed point is the forward substitution
``f_a = sgn(Σ_{b<a} B[a, b] f_b)``. A memory ``x`` is **retrieved from neuron i** when the
fixed point started from ``x_i`` equals ``x``; the neurons from which a memory is retrieved
are its **active sites** (Lingashetty, arXiv:1006.4754 and 1007.0417).

**A zero field** (``ties=``). The fragment is three-valued (0 = not yet active), and a field
``(B f)_a`` can be exactly 0 (the Hebbian ``T`` is integer). ``"plus"`` (default, onebit's
sgn(0) = +1): the neuron turns +1. ``"silent"``: it stays 0, the mathematical sign (``sign(0) =
0`` as in numpy or MATLAB), so a memory whose fixed point keeps a silent neuron is not
retrieved; silent neurons add nothing to the later fields. The papers' text, which would say
which one they used, was not available here; numpy engine only (packed states are ±1 bits).

**Multi-level** (``levels = L > 2``): ``f_a ← Q_L(g · (B f)_a / e_a)`` with
``e_a = Σ_{b<a} f_b²`` the energy of the active fragment (0 ⇒ field 0) and ``g`` the matrix's
gain (1 for the Hebbian ``T``; ``mean ‖x‖²`` for the delta rule, whose ``W x ≈ x``): for a
single stored memory and a correct fragment the normalized field equals ``x_a`` exactly under
Hebbian storage. At ``L = 2`` it is the binary rule (``g / e_a > 0`` does not change a sign).

Engines (``engine=``): ``"numpy"`` (the reference, float64), ``"float-input"`` and ``"xnor"``
(onebit's packed kernels; :mod:`onebit.memory.engine`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from onebit.errors import ConfigError, unknown_choice
from onebit.memory.multilevel import level_values, quantize_levels
from onebit.memory.storage import check_patterns

__all__ = ["ENGINES", "TIES", "Retrieval", "active_sites", "b_matrix", "line_proximity", "memories_retrieved",
           "point_proximity", "retrieve", "spreading_order"]

ENGINES = ("numpy", "float-input", "xnor")
TIES = ("plus", "silent")
Product = Callable[[np.ndarray], np.ndarray]


def line_proximity(n: int) -> np.ndarray:
    """Neurons on a line: ``P[i, j] = |i − j|``, float64 ``(n, n)``."""
    if type(n) is not int or n < 1:
        raise ConfigError(f"N must be an integer ≥ 1, got {n!r}")
    idx = np.arange(n, dtype=np.float64)
    return np.abs(idx[:, None] - idx[None, :])


def point_proximity(points: np.ndarray) -> np.ndarray:
    """Neurons at ``points`` (n, d): ``P[i, j]`` = Euclidean distance, float64 ``(n, n)``."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or not np.isfinite(p).all():
        raise ConfigError(f"points must be a finite (N, d) array with N ≥ 1, got shape {p.shape}")
    return np.linalg.norm(p[:, None, :] - p[None, :, :], axis=-1)


def _check_proximity(proximity: np.ndarray | None, n: int) -> np.ndarray:
    if proximity is None:
        return line_proximity(n)
    p = np.asarray(proximity, dtype=np.float64)
    if p.shape != (n, n) or not np.isfinite(p).all():
        raise ConfigError(f"proximity must be a finite ({n}, {n}) matrix for N={n} neurons, got shape {p.shape}")
    return p


def spreading_order(proximity: np.ndarray, clamped: int) -> np.ndarray:
    """The order in which activity started at ``clamped`` reaches the neurons: ``clamped`` first,
    then the others by increasing ``proximity[clamped, j]``, ties by lower index (int64 ``(N,)``)."""
    p = np.asarray(proximity, dtype=np.float64)
    n = p.shape[0]
    if type(clamped) not in (int, np.int64, np.int32) or not 0 <= clamped < n:
        raise ConfigError(f"clamped must be a neuron index in [0, {n - 1}], got {clamped!r}")
    others = np.delete(np.arange(n, dtype=np.int64), clamped)
    ranked = others[np.argsort(p[clamped, others], kind="stable")]
    return np.concatenate([[int(clamped)], ranked]).astype(np.int64)


def b_matrix(weights: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``B[a, b] = W[σ_a, σ_b]`` for ``b < a``, else 0 (strictly lower triangular in the order σ)."""
    w = np.asarray(weights)
    return np.tril(w[np.ix_(order, order)], -1)


def _check_weights(weights: object) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] == 0:
        raise ConfigError(f"weights must be a square (N, N) matrix with N ≥ 1, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ConfigError("weights hold NaN or infinite values")
    return w


@dataclass(frozen=True)
class Retrieval:
    """The fixed points reached from one clamped neuron: ``states`` (M, N) float64 in neuron
    order (row m started from ``values[m]``), ``iterations`` the products ``B f`` computed
    (the last one confirms the fixed point), ``order`` the spreading order."""

    states: np.ndarray
    iterations: int
    order: np.ndarray


def iterate(product: Product, values: np.ndarray, n: int, levels: int, gain: float,
            first: np.ndarray | None = None, ties: str = "plus") -> tuple[np.ndarray, int]:
    """Kak's iteration in spreading order: ``f ← step(product(f))`` from the fragment
    ``(values, 0, …, 0)``, position 0 held, until unchanged (at most ``N + 1`` products).
    ``first``: the first field ``B f⁰`` if the caller computes it (an engine whose states are bits
    cannot hold the fragment's zeros); ``ties``: a zero field gives +1 (``"plus"``) or 0
    (``"silent"``, binary only). Returns the states in spreading order and the count."""
    f = np.zeros((len(values), n))
    f[:, 0] = values
    for it in range(1, n + 2):
        y = first if (it == 1 and first is not None) else product(f)
        if levels == 2:
            nxt = np.sign(y) if ties == "silent" else np.where(y >= 0, 1.0, -1.0)
        else:
            energy = np.zeros_like(f)  # Σ_{b<a} f_b², from the earlier positions only (exactly)
            energy[:, 1:] = np.cumsum(f * f, axis=1)[:, :-1]
            with np.errstate(divide="ignore", invalid="ignore"):
                field = np.where(energy > 0, gain * y / np.where(energy > 0, energy, 1.0), 0.0)
            nxt = quantize_levels(field, levels)
        nxt[:, 0] = values
        if np.array_equal(nxt, f):
            return f, it
        f = nxt
    raise AssertionError("the B-matrix iteration did not reach its fixed point in N + 1 steps")  # cannot happen


def retrieve(weights: np.ndarray, clamped: int, values: object, proximity: np.ndarray | None = None, *,
             engine: str = "numpy", levels: int = 2, gain: float = 1.0, num_threads: int = 0,
             ties: str = "plus") -> Retrieval:
    """Retrieve from neuron ``clamped`` held at each of ``values`` (M clamp values; one level each).

    Args:
        weights: the interconnection matrix ``W`` (N, N) (:func:`~onebit.memory.storage.hebbian`,
            :func:`~onebit.memory.storage.delta_rule`).
        clamped: the clamped neuron's index.
        values: its value(s), ±1 (or one of the ``levels`` levels).
        proximity: ``P`` (N, N); default :func:`line_proximity`.
        engine: ``"numpy"`` (reference), ``"float-input"`` (±1 states against the real ``B`` in
            onebit's float-input kernel: ``W`` must be integer-valued, see
            :func:`~onebit.memory.storage.quantize_weights`) or ``"xnor"`` (``sgn(W)`` against the
            states in the XNOR-popcount kernel); the packed engines need ``levels = 2``.
        levels: neuron levels (2: ±1); gain: the multi-level field's gain ``g`` (ignored at 2).
        num_threads: the engine's threads (0: its default).
        ties: a zero field gives +1 (``"plus"``, sgn(0) = +1) or leaves the neuron silent at 0
            (``"silent"``; numpy engine, ``levels = 2``).
    """
    w = _check_weights(weights)
    n = w.shape[0]
    order = spreading_order(_check_proximity(proximity, n), clamped)
    vals = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if vals.ndim != 1 or not np.isin(vals, level_values(levels)).all():
        raise ConfigError(f"values must be clamp values in {level_values(levels).tolist()}, got {values!r}")
    _check_engine(engine, levels, gain, ties)
    return _retrieve(w, order, vals, engine, levels, float(gain), num_threads, ties)


def _check_engine(engine: str, levels: int, gain: float, ties: str = "plus") -> None:
    if engine not in ENGINES:
        raise unknown_choice("retrieval engine", engine, ENGINES)
    if ties not in TIES:
        raise unknown_choice("ties", ties, TIES)
    if ties == "silent" and (engine != "numpy" or levels != 2):
        raise ConfigError(f"ties='silent' needs engine='numpy' and levels=2 (packed states are ±1 bits), got "
                          f"engine={engine!r}, levels={levels}")
    if engine != "numpy" and levels != 2:
        raise ConfigError(f"engine {engine!r} runs ±1 neurons only (levels=2); use engine='numpy' for "
                          f"levels={levels}")
    if not (isinstance(gain, (int, float, np.floating)) and np.isfinite(gain) and gain > 0):
        raise ConfigError(f"gain must be a positive finite number, got {gain!r}")


def _retrieve(w: np.ndarray, order: np.ndarray, vals: np.ndarray, engine: str, levels: int, gain: float,
              num_threads: int, ties: str = "plus") -> Retrieval:
    """:func:`retrieve` on checked arguments."""
    n = w.shape[0]
    if engine == "numpy":
        b = b_matrix(w, order)
        states, iterations = iterate(lambda f: f @ b.T, vals, n, levels, gain, ties=ties)
    else:
        from onebit.memory.engine import packed_iteration

        states, iterations = packed_iteration(w, order, vals, engine, num_threads)
    out = np.empty_like(states)
    out[:, order] = states
    return Retrieval(states=out, iterations=iterations, order=order)


def active_sites(weights: np.ndarray, patterns: object, proximity: np.ndarray | None = None, *,
                 engine: str = "numpy", levels: int = 2, gain: float = 1.0, num_threads: int = 0,
                 ties: str = "plus") -> np.ndarray:
    """``sites[m, i]``: memory ``m`` is retrieved from neuron ``i`` (clamped to ``x_m[i]``), bool ``(k, N)``.

    One :func:`retrieve` per neuron, from each distinct value the memories hold there (they share
    the neuron's ``B``; memories with the same value there share the fixed point). ``ties``: as in
    :func:`retrieve`.
    """
    x = check_patterns(patterns, levels)
    w = _check_weights(weights)
    if x.shape[1] != w.shape[0]:
        raise ConfigError(f"patterns have N={x.shape[1]} neurons but weights are {w.shape}")
    p = _check_proximity(proximity, w.shape[0])
    _check_engine(engine, levels, gain, ties)
    sites = np.zeros(x.shape, dtype=bool)
    for i in range(w.shape[0]):
        starts, which = np.unique(x[:, i], return_inverse=True)  # memories with one value there share a start
        r = _retrieve(w, spreading_order(p, i), starts, engine, levels, float(gain), num_threads, ties)
        sites[:, i] = (r.states[which] == x).all(axis=1)
    return sites


def memories_retrieved(sites: np.ndarray) -> int:
    """The number of memories with at least one active site."""
    return int(np.asarray(sites).any(axis=1).sum())
