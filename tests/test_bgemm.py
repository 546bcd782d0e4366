"""Binary GEMM kernels (onebit._core.bgemm, bgemm_threshold, bgemm_reference, PackedWeights)
and the run-time ISA dispatch.

Every ISA this CPU can run is forced in turn (isa=...) and, in subprocesses, through the
ONEBIT_ISA environment variable. The reference is plain numpy on ±1 integer matrices:
C = a_pm @ w_pm.T, which must equal K - 2 * popcount(a ^ w) on the packed words exactly.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onebit import _core
from tests.conftest import assert_first_threaded_call_completes, kernel_settings, pack_pm, random_pm, ref_float_stage

ISAS = _core.available_isas()
ALL_ISA_NAMES = ("scalar", "avx2", "avx512")
NR = _core.BGEMM_NR
KC_BITS = _core.BGEMM_KC_WORDS * 64
I32 = np.iinfo(np.int32)
FAST = kernel_settings(100)


# ---- independent numpy references ----


def ref_gemm(a_pm, w_pm):
    """C = a_pm @ w_pm.T on ±1 integers, in int64 (exact)."""
    return a_pm.astype(np.int64) @ w_pm.T.astype(np.int64)


def ref_popcount_gemm(a, w, k):
    """C = K - 2 * popcount(a ^ w) on packed words (numpy's bitwise_count)."""
    if a.shape[0] == 0 or w.shape[0] == 0:
        return np.zeros((a.shape[0], w.shape[0]), np.int64)
    x = a[:, None, :] ^ w[None, :, :]
    return k - 2 * np.bitwise_count(x).sum(axis=2, dtype=np.int64)


def ref_threshold(c, thresh, signs):
    """Packed bits along n: bit 1 (-1) unless sign[n] * (C[m, n] - T[n]) >= 0; tail bits 0."""
    plus = signs.astype(np.int64) * (c.astype(np.int64) - thresh.astype(np.int64)) >= 0
    return pack_pm(np.where(plus, 1, -1))


@functools.lru_cache(maxsize=64)
def problem(m, n, k, seed):
    """Random ±1 activations (m, k) and weights (n, k), and their packed words (read-only:
    cached and shared between tests)."""
    rng = np.random.default_rng(seed)
    a_pm, w_pm = random_pm(rng, m, k), random_pm(rng, n, k)
    arrays = a_pm, w_pm, pack_pm(a_pm), pack_pm(w_pm)
    for x in arrays:
        x.flags.writeable = False
    return arrays


@functools.lru_cache(maxsize=16)
def expected(m, n, k, seed):
    """ref_gemm of problem(m, n, k, seed), cached (read-only)."""
    a_pm, w_pm, _, _ = problem(m, n, k, seed)
    c = ref_gemm(a_pm, w_pm)
    c.flags.writeable = False
    return c


def check_bgemm(isa, m, n, k, seed, threads=(1, 2)):
    """bgemm with each thread count and bgemm_reference equal the integer reference."""
    a_pm, w_pm, a, w = problem(m, n, k, seed)
    expect = expected(m, n, k, seed)
    weights = _core.PackedWeights(w, k)
    for t in threads:
        got = _core.bgemm(a, weights, num_threads=t, isa=isa)
        assert got.dtype == np.int32 and got.shape == (m, n)
        np.testing.assert_array_equal(got, expect, err_msg=f"isa={isa} m={m} n={n} k={k} threads={t}")
    np.testing.assert_array_equal(_core.bgemm_reference(a, w, k), expect)
    return a, w, weights, expect


@pytest.fixture(scope="module")
def threads_work():
    """The first threaded call of a fresh process completes (see conftest)."""
    code = (
        "import numpy as np; from onebit import _core; "
        "a = np.zeros((64, 33), np.uint64); w = _core.PackedWeights(np.zeros((100, 33), np.uint64), 2100); "
        "assert (_core.bgemm(a, w, num_threads=2) == 2100).all()"
    )
    assert_first_threaded_call_completes(code, "bgemm")


# ---- bgemm ----


def test_popcount_identity_of_the_reference():
    """The two references agree: a_pm @ w_pm.T == K - 2 * popcount(a ^ w) (tail bits 0 cancel)."""
    for m, n, k in [(3, 5, 1), (4, 7, 63), (2, 3, 64), (5, 2, 200)]:
        a_pm, w_pm, a, w = problem(m, n, k, seed=k)
        np.testing.assert_array_equal(ref_gemm(a_pm, w_pm), ref_popcount_gemm(a, w, k))


@pytest.mark.parametrize("isa", ISAS)
@FAST
@given(
    m=st.one_of(st.just(1), st.integers(0, 20)),
    n=st.one_of(st.integers(0, 70), st.sampled_from([31, 32, 33, 64, 65, 97])),
    k=st.one_of(st.integers(1, 260), st.sampled_from([1, 63, 64, 65, 127, 128, 129, 1000])),
    seed=st.integers(0, 2**32 - 1),
)
def test_bgemm_matches_integer_reference(isa, m, n, k, seed):
    """bgemm == a_pm @ w_pm.T exactly over random M, N, K (M=1, N and K off the block sizes),
    with 1 and 2 threads; bgemm_reference agrees."""
    check_bgemm(isa, m, n, k, seed)


@pytest.mark.parametrize("isa", ISAS)
def test_bgemm_every_row_remainder(isa):
    """Every M from 1 to 2 * MR + 1 (every remainder of the micro-kernel rows) is exact."""
    mr = _core.bgemm_micro_rows(isa)
    for m in range(1, 2 * mr + 2):
        check_bgemm(isa, m, 45, 130, seed=m, threads=(1,))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(
    ("m_rule", "n", "k"),
    [
        ("2mr+3", 70, 2 * KC_BITS + 77),  # 3 K blocks, the last partial; N = 2 tiles + 6
        ("2mr+3", 33, KC_BITS),  # exactly one K block
        ("2mr+3", 33, KC_BITS + 1),  # one word over the block
        ("mr+1", 40, KC_BITS + 64),  # smallest M that blocks K
        ("1", 50, 2 * KC_BITS + 5),  # GEMV: no K blocking, long K
        ("mr", 33, KC_BITS + 300),  # M = MR: one row block, no K blocking
    ],
)
def test_bgemm_k_blocks(isa, m_rule, n, k):
    """K spanning several K blocks (K > BGEMM_KC_WORDS * 64 = 8192 bits), around the block edge,
    for the blocked and the GEMV paths."""
    mr = _core.bgemm_micro_rows(isa)
    m = {"2mr+3": 2 * mr + 3, "mr+1": mr + 1, "1": 1, "mr": mr}[m_rule]
    check_bgemm(isa, m, n, k, seed=k + m)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(("m", "n", "k"), [(64, 100, 2053), (3, 1100, 8192 + 64), (1, 1100, 8192 + 64)])
def test_bgemm_threaded_identical(isa, m, n, k, threads_work):
    """Problems big enough to be split over 2 threads (M x N x words >= 2 x 65536 word pairs),
    blocked and GEMV, give exactly the 1-thread result and the reference."""
    _, _, weights, expect = check_bgemm(isa, m, n, k, seed=m * n)
    assert m * n * weights.words >= 2 * 65536


@pytest.mark.parametrize("isa", ISAS)
def test_bgemm_extreme_patterns(isa):
    """Identical rows give +K, complementary rows -K, with K over several blocks (no int32 slip)."""
    k = 2 * KC_BITS + 33
    mr = _core.bgemm_micro_rows(isa)
    ones = np.ones((1, k), np.int8)
    a_pm = np.repeat(np.vstack([ones, -ones]), mr + 1, axis=0)
    w_pm = np.vstack([ones, -ones, ones])
    got = _core.bgemm(pack_pm(a_pm), _core.PackedWeights(pack_pm(w_pm), k), isa=isa)
    np.testing.assert_array_equal(got, ref_gemm(a_pm, w_pm))
    assert set(np.unique(got)) == {k, -k}


def test_bgemm_isas_agree_with_default():
    """Every ISA and the default (isa='') give the same matrix."""
    a_pm, w_pm, a, w = problem(13, 77, 700, seed=11)
    weights = _core.PackedWeights(w, 700)
    for isa in [*ISAS, ""]:
        np.testing.assert_array_equal(_core.bgemm(a, weights, isa=isa), ref_gemm(a_pm, w_pm))


def test_bgemm_concurrent_callers(threads_work):
    """Python threads calling bgemm at once (GIL released, pool busy) all get exact results."""
    a_pm, w_pm, a, w = problem(64, 100, 2053, seed=5)
    weights = _core.PackedWeights(w, 2053)
    expect = ref_gemm(a_pm, w_pm)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: _core.bgemm(a, weights, num_threads=2, isa=ISAS[i % len(ISAS)]), range(8)))
    for r in results:
        np.testing.assert_array_equal(r, expect)


def test_bgemm_reference_spec():
    """bgemm_reference (the scalar specification) equals the numpy references directly."""
    a_pm, w_pm, a, w = problem(7, 9, 333, seed=2)
    np.testing.assert_array_equal(_core.bgemm_reference(a, w, 333), ref_gemm(a_pm, w_pm))
    np.testing.assert_array_equal(_core.bgemm_reference(a, w, 333), ref_popcount_gemm(a, w, 333))
    assert _core.bgemm_reference(a[:0], w, 333).shape == (0, 9)


# ---- PackedWeights ----


@FAST
@given(n=st.integers(0, 100), k=st.integers(1, 700), seed=st.integers(0, 2**32 - 1))
def test_packed_weights_roundtrip(n, k, seed):
    """PackedWeights.unpack() gives back the rows it was built from; n, k, words, tiles,
    nr and nbytes describe the padded layout."""
    rng = np.random.default_rng(seed)
    w = pack_pm(random_pm(rng, n, k))
    pw = _core.PackedWeights(w, k)
    back = pw.unpack()
    assert back.dtype == np.uint64 and back.shape == (n, (k + 63) // 64)
    np.testing.assert_array_equal(back, w)
    tiles = (n + NR - 1) // NR
    assert (pw.n, pw.k, pw.words, pw.tiles) == (n, k, (k + 63) // 64, tiles)
    assert _core.PackedWeights.nr == NR == 32
    assert pw.nbytes == tiles * pw.words * NR * 8


def test_packed_weights_copy_input():
    """PackedWeights copies: changing the source array afterwards changes nothing."""
    a_pm, w_pm, a, w = problem(3, 40, 100, seed=9)
    w = w.copy()
    pw = _core.PackedWeights(w, 100)
    w[:] = 0
    np.testing.assert_array_equal(_core.bgemm(a, pw), ref_gemm(a_pm, w_pm))
    np.testing.assert_array_equal(pw.unpack(), pack_pm(w_pm))


# ---- bgemm_threshold ----


def threshold_case(rng, c, n):
    """Thresholds mixing ties (T = some C[m, n]), near misses, random and int32 extremes."""
    kinds = rng.integers(0, 5, size=n)
    picks = c[rng.integers(0, c.shape[0], size=n), np.arange(n)] if c.shape[0] else np.zeros(n, np.int64)
    near = picks + rng.choice([-1, 1], size=n)
    extreme = rng.choice([I32.min, I32.max], size=n)
    t = np.select(
        [kinds == 0, kinds == 1, kinds == 2, kinds == 3],
        [picks, near, rng.integers(-300, 300, size=n), extreme],
        default=picks,
    )
    signs = rng.choice(np.array([-1, 1], np.int8), size=n)
    return t.astype(np.int32), signs


def check_threshold(isa, m, n, k, seed, threads=(1, 2)):
    a_pm, w_pm, a, w = problem(m, n, k, seed)
    c = expected(m, n, k, seed)
    rng = np.random.default_rng(seed + 1)
    t, s = threshold_case(rng, c, n)
    expect = ref_threshold(c, t, s)
    weights = _core.PackedWeights(w, k)
    for th in threads:
        got = _core.bgemm_threshold(a, weights, t, s, num_threads=th, isa=isa)
        assert got.dtype == np.uint64 and got.shape == (m, (n + 63) // 64)
        np.testing.assert_array_equal(got, expect, err_msg=f"isa={isa} m={m} n={n} k={k} threads={th}")
    return expect


@pytest.mark.parametrize("isa", ISAS)
@FAST
@given(
    m=st.one_of(st.just(1), st.integers(0, 20)),
    n=st.one_of(st.integers(0, 140), st.sampled_from([1, 31, 32, 33, 63, 64, 65, 96, 128, 129])),
    k=st.one_of(st.integers(1, 200), st.sampled_from([1, 64, 65, 640])),
    seed=st.integers(0, 2**32 - 1),
)
def test_threshold_matches_numpy_rule(isa, m, n, k, seed):
    """Bit n of row m is 0 (+1) iff sign[n] * (C[m, n] - T[n]) >= 0, packed along n, tail 0;
    ties, both signs, int32-extreme thresholds, N off 32 and 64; 1 and 2 threads."""
    check_threshold(isa, m, n, k, seed)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(
    ("m_rule", "n", "k"),
    [("2mr+3", 100, 2 * KC_BITS + 77), ("1", 70, KC_BITS + 65), ("mr+1", 33, KC_BITS + 1)],
)
def test_threshold_k_blocks(isa, m_rule, n, k):
    """The threshold stage after several K blocks (partial sums in scratch) is exact."""
    mr = _core.bgemm_micro_rows(isa)
    m = {"2mr+3": 2 * mr + 3, "1": 1, "mr+1": mr + 1}[m_rule]
    check_threshold(isa, m, n, k, seed=n + k)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(("m", "n", "k"), [(64, 100, 2053), (1, 1100, 8192 + 64)])
def test_threshold_threaded_identical(isa, m, n, k, threads_work):
    """Threaded threshold GEMM (tiles of one output word written by different tasks) is exact."""
    check_threshold(isa, m, n, k, seed=3)


@pytest.mark.parametrize("isa", ISAS)
def test_threshold_ties_and_tails(isa):
    """T = C exactly gives +1 for both signs; T = C + 1 gives -1 for s=+1 and +1 for s=-1;
    bits beyond N stay 0 (N = 100: 2 words, 28 tail bits)."""
    n, k = 100, 77
    a_pm, w_pm, a, w = problem(1, n, k, seed=4)
    c = ref_gemm(a_pm, w_pm)[0].astype(np.int32)
    pw = _core.PackedWeights(w, k)
    plus, minus = np.ones(n, np.int8), -np.ones(n, np.int8)
    for s in (plus, minus):
        np.testing.assert_array_equal(_core.bgemm_threshold(a, pw, c, s, isa=isa), np.zeros((1, 2), np.uint64))
    all_neg = np.array([[2**64 - 1, 2**36 - 1]], np.uint64)
    np.testing.assert_array_equal(_core.bgemm_threshold(a, pw, c + 1, plus, isa=isa), all_neg)
    np.testing.assert_array_equal(_core.bgemm_threshold(a, pw, c + 1, minus, isa=isa), np.zeros((1, 2), np.uint64))
    np.testing.assert_array_equal(_core.bgemm_threshold(a, pw, c - 1, minus, isa=isa), all_neg)
    extremes = np.full(n, I32.max, np.int32), np.full(n, I32.min, np.int32)
    np.testing.assert_array_equal(_core.bgemm_threshold(a, pw, extremes[0], plus, isa=isa), all_neg)
    np.testing.assert_array_equal(_core.bgemm_threshold(a, pw, extremes[1], minus, isa=isa), all_neg)


# ---- float output stage (bgemm_float) ----


def check_float(isa, m, n, k, seed, threads=(1, 2)):
    a_pm, w_pm, a, w = problem(m, n, k, seed)
    c = ref_gemm(a_pm, w_pm)
    rng = np.random.default_rng(seed)
    pw = _core.PackedWeights(w, k)
    for act in ("none", "relu", "hardtanh"):
        scale, bias, ps, pb = (rng.standard_normal(n).astype(np.float32) * 0.3 for _ in range(4))
        post = rng.random() < 0.5
        want = ref_float_stage(c, scale, bias, act, ps if post else None, pb if post else None)
        for t in threads:
            got = _core.bgemm_float(a, pw, scale, bias, act, ps if post else None, pb if post else None,
                                    num_threads=t, isa=isa)
            assert got.dtype == np.float32 and got.shape == (m, n)
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("isa", ISAS)
@kernel_settings(40)
@given(
    m=st.integers(0, 40), n=st.integers(1, 130), k=st.integers(1, 700), seed=st.integers(0, 2**32 - 1),
)
def test_float_stage_matches_numpy(isa, m, n, k, seed):
    check_float(isa, m, n, k, seed)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(("m", "n", "k"), [(64, 100, 2053), (1, 1100, 8192 + 64), (1, 10, 1024)])
def test_float_stage_threaded_identical(isa, m, n, k, threads_work):
    """K blocks (m > MR), the GEMV split over N, and the 10-class classifier of VGG-small."""
    check_float(isa, m, n, k, seed=m + n, threads=(1, 2, 3))


def test_float_stage_rejects_bad_arguments():
    a, w, pw = small()
    v = np.zeros(5, np.float32)
    cases = [
        (lambda: _core.bgemm_float(a, pw, v[:4], v), r"scale needs 5 entries"),
        (lambda: _core.bgemm_float(a, pw, v, v.astype(np.float64)), "bias must be float32"),
        (lambda: _core.bgemm_float(a, pw, v, v, "gelu"), "act must be one of none, relu, hardtanh"),
        (lambda: _core.bgemm_float(a, pw, v, v, "none", v), "post_scale and post_bias must be given together"),
        (lambda: _core.bgemm_float(a, pw, v, v, "none", [1.0] * 5, v), "numpy arrays"),
        (lambda: _core.bgemm_float(a, pw, v, v, "none", v[:2], v), r"post_scale needs 5 entries"),
        (lambda: _core.bgemm_float(_set_tail(a, 1, bit=63), pw, v, v), "row 1 of a has bits set beyond k=70"),
        (lambda: _core.bgemm_float(a, pw, v, v, num_threads=-1), "num_threads"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


# ---- errors: a clear ValueError, never a crash ----


def _set_tail(x, row, bit):
    """A copy of x with bit `bit` of row's last word set (k=70: bits 6..63 are padding)."""
    x = x.copy()
    x[row, -1] |= np.uint64(1 << bit)
    return x


def small():
    a_pm, w_pm, a, w = problem(3, 5, 70, seed=1)
    return a, w, _core.PackedWeights(w, 70)


@pytest.mark.parametrize(
    ("make_w", "k", "match"),
    [
        (lambda w: w.astype(np.int64), 70, "w must be uint64"),
        (lambda w: w.astype(np.float32), 70, "w must be uint64"),
        (lambda w: w[0], 70, "w must be 2-D"),
        (lambda w: w[None], 70, "w must be 2-D"),
        (lambda w: np.asfortranarray(w), 70, "C-contiguous"),
        (lambda w: np.repeat(w, 2, axis=1)[:, ::2], 70, "C-contiguous"),
        (lambda w: w, 0, "k must be >= 1"),
        (lambda w: w, -3, "k must be >= 1"),
        (lambda w: w, 200, r"k=200 needs 4 words per row, got w of shape \(5, 2\)"),
        (lambda w: w, 64, "k=64 needs 1 words"),
        (lambda w: w, 66, "row 0 of w has bits set beyond k=66"),  # 70-bit rows: bits 66..69 may be set
        (lambda w: _set_tail(w, 3, bit=63), 70, "row 3 of w has bits set beyond k=70"),
    ],
)
def test_packed_weights_rejects_bad_input(make_w, k, match):
    """PackedWeights refuses wrong dtype, rank, layout, k and set padding bits with ValueError."""
    a_pm, w_pm, a, w = problem(3, 5, 70, seed=1)
    w = pack_pm(np.where(np.arange(70) >= 66, -1, w_pm))  # every row has bits 66..69 set
    with pytest.raises(ValueError, match=match):
        _core.PackedWeights(make_w(w), k)


@pytest.mark.parametrize(
    ("make_a", "match"),
    [
        (lambda a: a.astype(np.int64), "a must be uint64"),
        (lambda a: a.view(np.int64), "a must be uint64"),
        (lambda a: a[0], "a must be 2-D"),
        (lambda a: a[None], "a must be 2-D"),
        (lambda a: np.asfortranarray(a), "C-contiguous"),
        (lambda a: a[::-1], "C-contiguous"),
        (lambda a: np.ascontiguousarray(a[:, :1]), r"a has 1 words per row but the weights have k=70 \(2 words\)"),
        (lambda a: np.hstack([a, a]), "a has 4 words per row"),
        (lambda a: _set_tail(a, 2, bit=6), "row 2 of a has bits set beyond k=70"),
    ],
)
def test_bgemm_rejects_bad_activations(make_a, match):
    """bgemm and bgemm_threshold refuse bad activations with ValueError naming the problem."""
    a, w, pw = small()
    bad = make_a(a)
    t, s = np.zeros(5, np.int32), np.ones(5, np.int8)
    with pytest.raises(ValueError, match=match):
        _core.bgemm(bad, pw)
    with pytest.raises(ValueError, match=match):
        _core.bgemm_threshold(bad, pw, t, s)


@pytest.mark.parametrize(
    ("t", "s", "match"),
    [
        (np.zeros(5, np.int64), np.ones(5, np.int8), "thresholds must be int32"),
        (np.zeros(5, np.float32), np.ones(5, np.int8), "thresholds must be int32"),
        (np.zeros(5, np.int32), np.ones(5, np.int32), "signs must be int8"),
        (np.zeros(5, np.int32), np.ones(5, np.bool_), "signs must be int8"),
        (np.zeros((1, 5), np.int32), np.ones(5, np.int8), "thresholds must be 1-D"),
        (np.zeros(5, np.int32), np.ones((5, 1), np.int8), "signs must be 1-D"),
        (np.zeros(10, np.int32)[::2], np.ones(5, np.int8), "C-contiguous"),
        (np.zeros(4, np.int32), np.ones(5, np.int8), r"need n=5 entries, got \(4,\) and \(5,\)"),
        (np.zeros(5, np.int32), np.ones(6, np.int8), r"need n=5 entries, got \(5,\) and \(6,\)"),
        (np.zeros(5, np.int32), np.array([1, -1, 0, 1, 1], np.int8), "signs must be \\+1 or -1, got 0 at index 2"),
        (np.zeros(5, np.int32), np.array([1, -1, 1, 1, 2], np.int8), "signs must be \\+1 or -1, got 2 at index 4"),
        (np.zeros(5, np.int32), np.array([1, -1, 1, -128, 1], np.int8), "got -128 at index 3"),
    ],
)
def test_threshold_rejects_bad_thresholds_and_signs(t, s, match):
    """bgemm_threshold refuses wrong dtypes, ranks, lengths and signs other than ±1."""
    a, w, pw = small()
    with pytest.raises(ValueError, match=match):
        _core.bgemm_threshold(a, pw, t, s)


@pytest.mark.parametrize("threads", [-1, 257, 100_000])
def test_bgemm_bad_thread_counts(threads):
    """num_threads outside 0..256 raises ValueError naming the valid range."""
    a, w, pw = small()
    with pytest.raises(ValueError, match="num_threads must be in 1..256"):
        _core.bgemm(a, pw, num_threads=threads)
    with pytest.raises(ValueError, match="num_threads must be in 1..256"):
        _core.bgemm_threshold(a, pw, np.zeros(5, np.int32), np.ones(5, np.int8), num_threads=threads)


@pytest.mark.parametrize("name", ["bogus", "AVX512", "avx-2", "sse"])
def test_bgemm_unknown_isa(name):
    """An unknown isa= raises ValueError listing the valid choices, in every entry point."""
    a, w, pw = small()
    calls = [
        lambda: _core.bgemm(a, pw, isa=name),
        lambda: _core.bgemm_threshold(a, pw, np.zeros(5, np.int32), np.ones(5, np.int8), isa=name),
        lambda: _core.bgemm_micro_rows(name),
        lambda: _core.isa_supported(name),
        lambda: _core.peak_binary_macs(name, 10),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=f"unknown ISA '{name}'; valid choices: scalar, avx2, avx512"):
            call()


@pytest.mark.parametrize("name", [n for n in ("avx2", "avx512") if n not in ISAS] or ["<none>"])
def test_bgemm_unsupported_isa(name):
    """An ISA the CPU cannot run raises ValueError naming the ones it can."""
    if name == "<none>":
        pytest.skip("this CPU runs every ISA")
    a, w, pw = small()
    with pytest.raises(ValueError, match="valid choices here: " + ", ".join(ISAS)):
        _core.bgemm(a, pw, isa=name)


@pytest.mark.parametrize(
    ("a", "w", "k", "match"),
    [
        (np.zeros((2, 2), np.uint64), np.zeros((3, 2), np.uint64), 200, "must both have ceil"),
        (np.zeros((2, 2), np.uint64), np.zeros((3, 1), np.uint64), 100, "must both have ceil"),
        (np.zeros((2, 2), np.uint64), np.zeros((3, 2), np.uint64), 0, "must both have ceil"),
        (np.zeros((2, 2), np.int64), np.zeros((3, 2), np.uint64), 100, "a must be uint64"),
        (np.zeros((2, 2), np.uint64), np.zeros(2, np.uint64), 100, "w must be 2-D"),
        (np.full((2, 2), 2**63, np.uint64), np.zeros((3, 2), np.uint64), 100, "row 0 of a has bits set beyond k=100"),
        (np.zeros((2, 2), np.uint64), np.full((3, 2), 2**63, np.uint64), 100, "row 0 of w has bits set beyond k=100"),
    ],
)
def test_bgemm_reference_rejects_bad_input(a, w, k, match):
    """bgemm_reference checks shapes, dtypes and padding bits like the fast path."""
    with pytest.raises(ValueError, match=match):
        _core.bgemm_reference(a, w, k)


def test_wrong_argument_types_raise_type_error():
    """Passing a raw array where PackedWeights is expected is a TypeError, not a crash."""
    a, w, pw = small()
    with pytest.raises(TypeError):
        _core.bgemm(a, w)
    with pytest.raises(TypeError):
        _core.bgemm_threshold(a, w, np.zeros(5, np.int32), np.ones(5, np.int8))


# ---- dispatch, micro-kernel shape, peak loop ----


def test_dispatch_introspection():
    """available_isas is an ordered subset of scalar < avx2 < avx512 starting with scalar;
    isa_supported agrees; every ISA has MR >= 1; constants are the documented ones."""
    assert ISAS[0] == "scalar"
    assert ISAS == [n for n in ALL_ISA_NAMES if n in ISAS]
    for name in ALL_ISA_NAMES:
        assert _core.isa_supported(name) == (name in ISAS)
    for name in ISAS:
        assert _core.bgemm_micro_rows(name) >= 1
    assert _core.bgemm_micro_rows() == _core.bgemm_micro_rows(_core.selected_isa())
    assert _core.selected_isa() in ISAS
    assert (NR, _core.BGEMM_KC_WORDS) == (32, 128)
    assert 1 <= _core.default_num_threads() <= 256
    assert isinstance(_core.cpu_features(), str)


@pytest.mark.parametrize("isa", [n for n in ISAS if n != "scalar"] or ["<none>"])
def test_peak_binary_macs(isa):
    """The peak loop of each SIMD ISA reports a positive MAC count (linear in iters), a
    positive time and its instruction mix."""
    if isa == "<none>":
        pytest.skip("no SIMD ISA on this CPU")
    macs, seconds, mix = _core.peak_binary_macs(isa, 2000)
    assert isinstance(macs, int) and macs > 0 and seconds > 0 and isinstance(mix, str) and mix
    assert _core.peak_binary_macs(isa, 4000)[0] == 2 * macs


def test_peak_binary_macs_errors():
    """Scalar has no peak loop and iters must be >= 1: ValueError naming the ISA / the rule."""
    with pytest.raises(ValueError, match="no peak loop for scalar"):
        _core.peak_binary_macs("scalar", 10)
    if ISAS[-1] != "scalar":
        with pytest.raises(ValueError, match="iters must be >= 1"):
            _core.peak_binary_macs(ISAS[-1], 0)


# ---- ONEBIT_ISA in a fresh process ----


def run_python(code, isa_env):
    """Run code in a fresh interpreter with ONEBIT_ISA set (or unset for None)."""
    env = {k: v for k, v in os.environ.items() if k != "ONEBIT_ISA"}
    if isa_env is not None:
        env["ONEBIT_ISA"] = isa_env
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=60
    )


FORCED = """
    import numpy as np
    from onebit import _core
    isa = _core.selected_isa()
    print(isa)
    rng = np.random.default_rng(0)
    # First kernel calls of the process, threaded (2 threads): the pool starts here.
    x = rng.standard_normal((1100, 513), dtype=np.float32)
    packed = _core.pack_rows(x, num_threads=2)
    assert np.array_equal(packed, _core.pack_rows(x, num_threads=1, isa="scalar"))
    a = _core.pack_rows(rng.standard_normal((64, 2053), dtype=np.float32))
    w = _core.pack_rows(rng.standard_normal((100, 2053), dtype=np.float32))
    pw = _core.PackedWeights(w, 2053)
    c = _core.bgemm(a, pw, num_threads=2)
    assert np.array_equal(c, _core.bgemm_reference(a, w, 2053))
    assert np.array_equal(c, _core.bgemm(a, pw, num_threads=1, isa=isa))
    t = c[0].copy()
    s = np.where(np.arange(100) % 2 == 0, 1, -1).astype(np.int8)
    bits = _core.bgemm_threshold(a, pw, t, s, num_threads=2)
    assert np.array_equal(bits, _core.bgemm_threshold(a, pw, t, s, num_threads=1, isa="scalar"))
    assert _core.bgemm_micro_rows() == _core.bgemm_micro_rows(isa)
    print("ok")
"""


@pytest.mark.parametrize("isa", ISAS)
def test_onebit_isa_env_forces_isa(isa):
    """ONEBIT_ISA=<isa> makes it the default ISA of a fresh process; the first (threaded)
    calls there complete and are exact."""
    proc = run_python(FORCED, isa)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [isa, "ok"]


def test_no_onebit_isa_selects_best():
    """Without ONEBIT_ISA (or with it empty) the best available ISA is selected."""
    for env in (None, ""):
        proc = run_python(FORCED, env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == [ISAS[-1], "ok"]


def test_onebit_isa_env_invalid():
    """An unknown ONEBIT_ISA raises ValueError naming it and the valid choices on every use of
    the default ISA (not cached), while an explicit isa= still works."""
    code = """
        import numpy as np
        from onebit import _core
        x = np.ones((2, 3), np.float32)
        for call in (_core.selected_isa, lambda: _core.pack_rows(x), lambda: _core.bgemm_micro_rows(),
                     _core.selected_isa):
            try:
                call()
            except ValueError as e:
                print(e)
            else:
                print("no error")
        print(_core.pack_rows(-x, isa="scalar")[0, 0])
    """
    for value in ("bogus", "AVX2", "avx512 "):
        proc = run_python(code, value)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert len(lines) == 5 and lines[-1] == "7"
        for line in lines[:-1]:
            assert line == f"ONEBIT_ISA='{value}' is not a known ISA; valid choices: scalar, avx2, avx512"


def test_onebit_isa_env_unsupported():
    """ONEBIT_ISA naming an ISA this CPU cannot run raises ValueError naming the ones it can."""
    missing = [n for n in ALL_ISA_NAMES if n not in ISAS]
    if not missing:
        pytest.skip("this CPU runs every ISA")
    code = """
        from onebit import _core
        try:
            _core.selected_isa()
        except ValueError as e:
            print(e)
    """
    proc = run_python(code, missing[0])
    assert proc.returncode == 0, proc.stderr
    assert "cannot run it" in proc.stdout and "valid choices here: " + ", ".join(ISAS) in proc.stdout
