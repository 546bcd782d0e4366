"""Float inputs x binary weights (onebit._core.BinaryWeightsF32, fgemm_bw_reference).

y = x @ s.T for float32 x (M, K) and a ±1 matrix s (N, K) given as packed bits (bit 1 = -1).
Every ISA this CPU can run is forced in turn (isa=...). The reference is numpy in float64;
the documented bound is |y - exact| <= 2**-17 * sum_k |x[m, k]| per output, for every ISA.
Exact statements: one ISA gives the same bits for 1 and 2 threads and for any batch (a row's
result does not depend on the other rows), avx2 and avx512 give the same bits, and inputs
whose partial sums are all representable give the exact integer result.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onebit import _core
from tests.conftest import assert_first_threaded_call_completes, pack_pm, random_pm

ISAS = _core.available_isas()
SIMD_ISAS = [isa for isa in ISAS if isa != "scalar"]
BOUND = 2.0**-17  # times sum_k |x[m, k]|, per output (fgemm_bw.h)
KC = _core.FGEMM_BW_KC
FAST = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# ---- independent numpy references ----


@functools.lru_cache(maxsize=32)
def problem(m, n, k, seed):
    """Random x (m, k) float32 (normal, with a few large and tiny entries), ±1 weights s (n, k),
    their packed words and the float64 reference (read-only: cached and shared)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float32)
    if m and k:
        x.flat[rng.integers(0, m * k, size=max(1, m * k // 50))] *= np.float32(1e3)
        x.flat[rng.integers(0, m * k, size=max(1, m * k // 50))] *= np.float32(1e-3)
    s = random_pm(rng, n, k)
    w = pack_pm(s)
    ref = x.astype(np.float64) @ s.T.astype(np.float64)
    for a in (x, s, w, ref):
        a.flags.writeable = False
    return x, s, w, ref


def assert_within_bound(y, x, ref, what):
    """|y - ref| <= BOUND * sum|x| row by row (plus the smallest subnormal for all-zero rows)."""
    assert y.dtype == np.float32 and y.shape == ref.shape, what
    scale = np.abs(x.astype(np.float64)).sum(axis=1, keepdims=True)
    err = np.abs(y.astype(np.float64) - ref)
    worst = float((err / np.maximum(scale, 1e-300)).max()) if err.size else 0.0
    assert np.all(err <= BOUND * scale + 1e-45), f"{what}: max error {worst:.3g} x sum|x| > {BOUND:.3g}"


def check(isa, m, n, k, seed, threads=(1, 2)):
    """run() with each thread count is within the bound, and identical across thread counts."""
    x, s, w, ref = problem(m, n, k, seed)
    weights = _core.BinaryWeightsF32(w, k)
    first = None
    for t in threads:
        y = weights.run(x, num_threads=t, isa=isa)
        assert_within_bound(y, x, ref, f"isa={isa} m={m} n={n} k={k} threads={t}")
        if first is None:
            first = y
        else:
            np.testing.assert_array_equal(y, first, err_msg=f"isa={isa} m={m} n={n} k={k}: 1 vs {t} threads")
    return x, w, weights, first


@pytest.fixture(scope="module")
def threads_work():
    """The first threaded call of a fresh process completes (see conftest)."""
    code = (
        "import numpy as np; from onebit import _core; "
        "w = _core.BinaryWeightsF32(np.zeros((4096, 64), np.uint64), 4096); "
        "assert (_core.BinaryWeightsF32.run(w, np.ones((8, 4096), np.float32), num_threads=2) == 4096).all()"
    )
    assert_first_threaded_call_completes(code, "BinaryWeightsF32.run")


# ---- results ----


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m", [1, 2, 3, 7, 64])
@pytest.mark.parametrize(("n", "k"), [(1, 1), (17, 5), (15, 63), (33, 64), (97, 65), (130, 784), (50, 2 * KC + 33)])
def test_matches_float64_reference(isa, m, n, k):
    """Within the bound of the float64 x @ s.T for K below, at and off the 64-bit word and the
    float32 block (FGEMM_BW_KC), M = 1, 2, 3, 7, 64 (every row-block remainder), N off the
    16-row panels and the register blocks; 1 and 2 threads give the same bits."""
    check(isa, m, n, k, seed=1000 * m + n + k)


@pytest.mark.parametrize("isa", ISAS)
@FAST
@given(
    m=st.one_of(st.just(1), st.integers(0, 14)),
    n=st.one_of(st.integers(0, 120), st.sampled_from([16, 31, 32, 48, 95, 96, 97, 193])),
    k=st.one_of(st.integers(1, 300), st.sampled_from([1, 2, 3, 4, 31, 32, 33, 255, 256, 257, 784])),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_shapes(isa, m, n, k, seed):
    """Random M (with empty batches), N and K: within the bound, 1 and 2 threads identical."""
    x, _, w, _ = problem(m, n, k, seed % 1000)
    y = check(isa, m, n, k, seed % 1000)[3]
    assert y.shape == (m, n)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(("m", "n", "k"), [(64, 1000, 784), (1, 4096, 4096), (64, 40, 4096), (37, 300, 1000)])
def test_threaded_identical(isa, m, n, k, threads_work):
    """Problems big enough to run on 2 threads (split over N; over rows too where N has only a
    few panels) give exactly the 1-thread result, within the bound."""
    check(isa, m, n, k, seed=m + n + k)


@pytest.mark.parametrize("isa", ISAS)
def test_batch_invariant(isa):
    """A row's result does not depend on the rest of the batch: each row alone, and any slice,
    gives the same bits as in the full batch."""
    x, _, w, _ = problem(13, 70, 600, seed=3)
    weights = _core.BinaryWeightsF32(w, 600)
    full = weights.run(x, isa=isa)
    for i in range(13):
        np.testing.assert_array_equal(weights.run(x[i : i + 1], isa=isa), full[i : i + 1])
    np.testing.assert_array_equal(weights.run(x[5:12], isa=isa), full[5:12])


@pytest.mark.skipif(len(SIMD_ISAS) < 2, reason="needs both avx2 and avx512")
def test_simd_isas_agree_bitwise():
    """avx2 and avx512 do the same float operations in the same order: the same bits."""
    for m, n, k in [(7, 97, 65), (64, 130, 784), (3, 50, 2 * KC + 33), (1, 16, 1)]:
        x, _, w, _ = problem(m, n, k, seed=m * k)
        weights = _core.BinaryWeightsF32(w, k)
        np.testing.assert_array_equal(weights.run(x, isa="avx2"), weights.run(x, isa="avx512"))


@pytest.mark.parametrize("isa", ISAS)
def test_exact_when_sums_are_representable(isa):
    """Small integers and halves (every partial sum exact in float32) give the exact result,
    equal to the integer GEMM; ±1 inputs give K - 2 * popcount(a ^ w) as bgemm does."""
    rng = np.random.default_rng(7)
    m, n, k = 9, 45, 1000
    s = random_pm(rng, n, k)
    w = pack_pm(s)
    weights = _core.BinaryWeightsF32(w, k)
    xi = rng.integers(-8, 9, size=(m, k)).astype(np.float32) / 2
    np.testing.assert_array_equal(weights.run(xi, isa=isa), (xi.astype(np.float64) @ s.T).astype(np.float32))
    a_pm = random_pm(rng, m, k)
    expect = _core.bgemm(pack_pm(a_pm), _core.PackedWeights(w, k), isa=isa)
    np.testing.assert_array_equal(weights.run(a_pm.astype(np.float32), isa=isa), expect.astype(np.float32))
    ones = np.ones((2, k), np.float32)
    extremes = _core.BinaryWeightsF32(pack_pm(np.vstack([np.ones((1, k)), -np.ones((1, k))])), k)
    np.testing.assert_array_equal(extremes.run(ones, isa=isa), [[k, -k], [k, -k]])


@pytest.mark.parametrize("isa", ISAS)
def test_large_dynamic_range(isa):
    """Cancellation against a huge entry: still within the bound relative to sum|x| (the
    float32 blocks go to double before they are added up)."""
    rng = np.random.default_rng(11)
    m, n, k = 4, 33, 3000
    x = rng.standard_normal((m, k)).astype(np.float32)
    x[:, 0] = 1e8
    x[:, 1] = -1e8
    x[1] *= 1e-30
    s = random_pm(rng, n, k)
    s[:, 1] = s[:, 0]  # the two huge terms cancel exactly in the true sum
    ref = x.astype(np.float64) @ s.T.astype(np.float64)
    y = _core.BinaryWeightsF32(pack_pm(s), k).run(x, isa=isa)
    assert_within_bound(y, x, ref, f"isa={isa}")


@pytest.mark.parametrize("isa", ISAS)
def test_nan_and_inf_do_not_crash(isa):
    """NaN / Inf rows give non-finite outputs in their own row only; other rows are unchanged."""
    x, _, w, _ = problem(6, 40, 300, seed=13)
    weights = _core.BinaryWeightsF32(w, 300)
    clean = weights.run(x, isa=isa)
    bad = x.copy()
    bad[1, 7] = np.nan
    bad[3, 299] = np.inf
    bad[4, :2] = [np.inf, -np.inf]
    y = weights.run(bad, isa=isa, num_threads=2)
    assert np.isnan(y[1]).all()
    assert not np.isfinite(y[3]).any() and not np.isfinite(y[4]).any()
    np.testing.assert_array_equal(y[[0, 2, 5]], clean[[0, 2, 5]])


def test_isas_and_default_agree_with_reference():
    """Every ISA, the default (isa='') and fgemm_bw_reference (the scalar specification) are
    within the bound; the reference itself is within ~1 rounding of float64."""
    x, _, w, ref = problem(11, 77, 700, seed=17)
    weights = _core.BinaryWeightsF32(w, 700)
    for isa in [*ISAS, ""]:
        assert_within_bound(weights.run(x, isa=isa), x, ref, f"isa={isa!r}")
    r = _core.fgemm_bw_reference(x, w, 700)
    scale = np.abs(x.astype(np.float64)).sum(axis=1, keepdims=True)
    assert np.all(np.abs(r - ref) <= 2.0**-22 * scale)
    np.testing.assert_array_equal(weights.run(x, isa="scalar"), r)
    assert _core.fgemm_bw_reference(x[:0], w, 700).shape == (0, 77)


def test_concurrent_callers(threads_work):
    """Python threads calling run() at once (GIL released, pool busy) all get the same bits."""
    x, _, w, _ = problem(64, 1000, 784, seed=5)
    weights = _core.BinaryWeightsF32(w, 784)
    expect = {isa: weights.run(x, num_threads=1, isa=isa) for isa in ISAS}
    with ThreadPoolExecutor(4) as pool:
        jobs = [(i, ISAS[i % len(ISAS)]) for i in range(8)]
        results = list(pool.map(lambda j: (j[1], weights.run(x, num_threads=2, isa=j[1])), jobs))
    for isa, y in results:
        np.testing.assert_array_equal(y, expect[isa])


# ---- BinaryWeightsF32 ----


@FAST
@given(n=st.integers(0, 70), k=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
def test_weights_roundtrip(n, k, seed):
    """unpack() gives back the packed rows; n, k and nbytes describe the padded layout."""
    w = pack_pm(random_pm(np.random.default_rng(seed), n, k))
    weights = _core.BinaryWeightsF32(w, k)
    back = weights.unpack()
    assert back.dtype == np.uint64 and back.shape == (n, (k + 63) // 64)
    np.testing.assert_array_equal(back, w)
    panels = (n + _core.FGEMM_BW_PANEL_ROWS - 1) // _core.FGEMM_BW_PANEL_ROWS
    assert (weights.n, weights.k) == (n, k)
    assert weights.nbytes == panels * _core.FGEMM_BW_PANEL_ROWS * ((k + 31) // 32) * 4


def test_weights_copy_input_and_empty_shapes():
    """The weights are copied at construction; empty batches and N = 0 give empty outputs."""
    x, _, w, ref = problem(3, 40, 100, seed=9)
    w2 = w.copy()
    weights = _core.BinaryWeightsF32(w2, 100)
    w2[:] = 0
    assert_within_bound(weights.run(x), x, ref, "after changing the source")
    assert weights.run(x[:0]).shape == (0, 40)
    none = _core.BinaryWeightsF32(np.zeros((0, 2), np.uint64), 100)
    assert none.run(x).shape == (3, 0)


# ---- errors ----


def _w(n=5, k=70):
    return pack_pm(np.ones((n, k), np.int8))


@pytest.mark.parametrize(
    ("make_w", "k", "match"),
    [
        (lambda: _w().astype(np.int64), 70, "must be uint64"),
        (lambda: _w()[0], 70, "must be 2-D"),
        (lambda: np.zeros((5, 4), np.uint64)[:, ::2], 70, "C-contiguous"),
        (lambda: _w(), 0, "k must be >= 1"),
        (lambda: _w(), 200, "needs 4 words per row"),
        (lambda: _w(), 64, "needs 1 words per row"),
        (lambda: np.full((3, 2), 1 << 63, np.uint64), 70, "row 0 of w has bits set beyond k=70"),
    ],
)
def test_weights_reject_bad_input(make_w, k, match):
    with pytest.raises(ValueError, match=match):
        _core.BinaryWeightsF32(make_w(), k)


@pytest.mark.parametrize(
    ("make_x", "kwargs", "match"),
    [
        (lambda: np.zeros((2, 70)), {}, "x must be float32"),
        (lambda: np.zeros((2, 70), np.int32), {}, "x must be float32"),
        (lambda: np.zeros(70, np.float32), {}, "x must be 2-D"),
        (lambda: np.zeros((1, 2, 70), np.float32), {}, "x must be 2-D"),
        (lambda: np.zeros((2, 140), np.float32)[:, ::2], {}, "C-contiguous"),
        (lambda: np.zeros((70, 2), np.float32).T, {}, "C-contiguous"),
        (lambda: np.zeros((2, 71), np.float32), {}, "x has 71 columns but the weights have k=70"),
        (lambda: np.zeros((2, 70), np.float32), {"num_threads": -1}, "num_threads must be in 1..256"),
        (lambda: np.zeros((2, 70), np.float32), {"num_threads": 257}, "num_threads must be in 1..256"),
        (lambda: np.zeros((2, 70), np.float32), {"isa": "sse9"}, "sse9"),
    ],
)
def test_run_rejects_bad_input(make_x, kwargs, match):
    weights = _core.BinaryWeightsF32(_w(), 70)
    with pytest.raises(ValueError, match=match):
        weights.run(make_x(), **kwargs)


def test_run_rejects_unsupported_isa():
    """An ISA this CPU cannot run is a ValueError naming it (skipped where all run)."""
    missing = [i for i in ("scalar", "avx2", "avx512") if i not in ISAS]
    if not missing:
        pytest.skip("this CPU runs every ISA")
    for isa in missing:
        with pytest.raises(ValueError, match=isa):
            _core.BinaryWeightsF32(_w(), 70).run(np.zeros((1, 70), np.float32), isa=isa)


def test_reference_rejects_bad_input():
    x = np.zeros((2, 70), np.float32)
    with pytest.raises(ValueError, match="must be \\(M, k\\)"):
        _core.fgemm_bw_reference(x, _w(), 71)
    with pytest.raises(ValueError, match="bits set beyond k=70"):
        _core.fgemm_bw_reference(x, np.full((1, 2), 1 << 63, np.uint64), 70)
    with pytest.raises(ValueError, match="x must be float32"):
        _core.fgemm_bw_reference(x.astype(np.float64), _w(), 70)
