"""Bit packing kernels (onebit._core.pack_rows / unpack_rows) and their numpy glue.

Every ISA this CPU can run is forced in turn and checked against an independent numpy
reference of the encoding: bit j of word j // 64 is set iff value j is < 0 (an ordered
compare: +0.0, -0.0 and NaN pack as +1, -inf as -1), and the tail bits are 0.
"""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onebit import _core
from onebit.errors import ConfigError, OnebitError
from onebit.runtime import pack_bits, unpack_bits
from tests.conftest import assert_first_threaded_call_completes, kernel_settings

ISAS = _core.available_isas()
FAST = kernel_settings(100)

# float32 values whose packing is easy to get wrong, as bit patterns (NaN payloads and
# the sign of NaN must not matter; only an ordered "< 0" does).
SPECIAL_BITS = np.array(
    [
        0x00000000,  # +0.0          -> +1
        0x80000000,  # -0.0          -> +1
        0x7FC00000,  # +NaN          -> +1
        0xFFC00000,  # -NaN          -> +1 (sign bit set, still not < 0)
        0x7F800001,  # signalling NaN -> +1
        0xFF800001,  # -sNaN         -> +1
        0xFF800000,  # -inf          -> -1
        0x7F800000,  # +inf          -> +1
        0x00000001,  # +min denormal -> +1
        0x80000001,  # -min denormal -> -1
        0x3F800000,  # +1.0          -> +1
        0xBF800000,  # -1.0          -> -1
        0xFF7FFFFF,  # -max float    -> -1
    ],
    dtype=np.uint32,
).view(np.float32)


def ref_pack(x):
    """Independent reference: (rows, cols) float32 -> (rows, ceil(cols/64)) uint64."""
    rows, cols = x.shape
    words = (cols + 63) // 64
    with np.errstate(invalid="ignore"):
        neg = x < 0
    padded = np.zeros((rows, words * 64), dtype=np.uint64)
    padded[:, :cols] = neg
    shifts = np.arange(64, dtype=np.uint64)
    return np.bitwise_or.reduce(padded.reshape(rows, words, 64) << shifts, axis=2).astype(np.uint64)


def ref_bits(packed, cols):
    """Bit j of each row (j < cols) as a bool matrix, read straight off the words."""
    j = np.arange(cols)
    return ((packed[:, j // 64] >> (j % 64).astype(np.uint64)) & np.uint64(1)).astype(bool)


def sample(rows, cols, seed, special_fraction):
    """Random float32 (rows, cols), a fraction of the entries replaced by special values."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols), dtype=np.float32)
    mask = rng.random((rows, cols)) < special_fraction
    x[mask] = rng.choice(SPECIAL_BITS, size=int(mask.sum()))
    return x


@pytest.fixture(scope="module")
def threads_work():
    """The first threaded call of a fresh process completes (see conftest)."""
    code = (
        "import numpy as np; from onebit import _core; "
        "x = np.ones((1100, 513), np.float32); "
        "assert (_core.pack_rows(-x, num_threads=2) == _core.pack_rows(-x, num_threads=1)).all()"
    )
    assert_first_threaded_call_completes(code, "pack_rows")


shapes = st.tuples(
    st.integers(0, 24),
    st.one_of(st.integers(0, 3), st.integers(4, 200), st.sampled_from([63, 64, 65, 127, 128, 129, 511, 512, 513])),
)


@pytest.mark.parametrize("isa", ISAS)
@FAST
@given(shape=shapes, seed=st.integers(0, 2**32 - 1), special=st.sampled_from([0.0, 0.1, 0.5]))
def test_pack_matches_numpy_reference(isa, shape, seed, special):
    """pack_rows equals the numpy encoding (incl. tail bits 0) for random shapes, any thread count."""
    x = sample(*shape, seed, special)
    expect = ref_pack(x)
    got = _core.pack_rows(x, num_threads=1, isa=isa)
    assert got.dtype == np.uint64 and got.shape == expect.shape
    np.testing.assert_array_equal(got, expect)
    np.testing.assert_array_equal(_core.pack_rows(x, num_threads=2, isa=isa), expect)


@pytest.mark.parametrize("isa", ISAS)
@FAST
@given(shape=shapes, seed=st.integers(0, 2**32 - 1), special=st.sampled_from([0.0, 0.3]))
def test_unpack_of_pack_is_sign(isa, shape, seed, special):
    """unpack(pack(x)) == where(x < 0, -1, +1) as float32, exactly."""
    x = sample(*shape, seed, special)
    with np.errstate(invalid="ignore"):
        expect = np.where(x < 0, -1.0, 1.0).astype(np.float32)
    packed = _core.pack_rows(x, isa=isa)
    got = _core.unpack_rows(packed, x.shape[1], num_threads=1, isa=isa)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_array_equal(got, expect)
    np.testing.assert_array_equal(_core.unpack_rows(packed, x.shape[1], num_threads=2, isa=isa), expect)


@pytest.mark.parametrize("isa", ISAS)
@FAST
@given(rows=st.integers(0, 16), cols=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
def test_unpack_reads_bits_and_ignores_tail(isa, rows, cols, seed):
    """unpack_rows gives -1 exactly where a bit j < cols is set, whatever the tail bits hold;
    packing that again gives the words with the tail cleared."""
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 2**64, size=(rows, (cols + 63) // 64), dtype=np.uint64)
    got = _core.unpack_rows(words, cols, isa=isa)
    np.testing.assert_array_equal(got, np.where(ref_bits(words, cols), -1.0, 1.0).astype(np.float32))
    clean = words.copy()
    if cols % 64 and rows:
        clean[:, -1] &= np.uint64((1 << (cols % 64)) - 1)
    np.testing.assert_array_equal(_core.pack_rows(got, isa=isa), clean)


@pytest.mark.parametrize("isa", ISAS)
def test_special_values(isa):
    """+-0.0 and every NaN pack as +1, -inf and negative denormals as -1, at every position of
    a word (the SIMD body and the scalar/masked tail)."""
    expect_neg = np.array([0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 1], dtype=bool)
    n = len(SPECIAL_BITS)
    for cols in (n, 64, 100, 130):
        # Each special value at every column of the row (rotated), so every lane sees all.
        idx = (np.arange(cols)[None, :] + np.arange(n)[:, None]) % n
        x = SPECIAL_BITS[idx]
        got = ref_bits(_core.pack_rows(x, isa=isa), cols)
        np.testing.assert_array_equal(got, expect_neg[idx])
        np.testing.assert_array_equal(_core.pack_rows(x, isa=isa), ref_pack(x))


@pytest.mark.parametrize("isa", ISAS)
def test_explicit_edge_shapes(isa):
    """cols = 0 gives zero words; rows = 0 gives zero rows; cols = 1 and 64 pack one word."""
    assert _core.pack_rows(np.zeros((3, 0), np.float32), isa=isa).shape == (3, 0)
    assert _core.pack_rows(np.zeros((0, 5), np.float32), isa=isa).shape == (0, 1)
    assert _core.pack_rows(np.zeros((0, 0), np.float32), isa=isa).shape == (0, 0)
    assert _core.unpack_rows(np.zeros((3, 0), np.uint64), 0, isa=isa).shape == (3, 0)
    assert _core.unpack_rows(np.zeros((0, 2), np.uint64), 100, isa=isa).shape == (0, 100)
    one = _core.pack_rows(np.array([[-2.0], [0.0], [np.nan], [-np.inf]], np.float32), isa=isa)
    np.testing.assert_array_equal(one, np.array([[1], [0], [0], [1]], np.uint64))
    full = _core.pack_rows(-np.ones((2, 64), np.float32), isa=isa)
    np.testing.assert_array_equal(full, np.full((2, 1), 2**64 - 1, np.uint64))
    tail = _core.pack_rows(-np.ones((1, 65), np.float32), isa=isa)
    np.testing.assert_array_equal(tail, np.array([[2**64 - 1, 1]], np.uint64))


@pytest.mark.parametrize("isa", ISAS)
def test_threaded_path_identical(isa, threads_work):
    """Inputs big enough to be split over 2 threads pack and unpack exactly as with 1 thread
    and as the reference (1100 x 513 floats is over the per-thread minimum twice)."""
    x = sample(1100, 513, seed=7, special_fraction=0.05)
    expect = ref_pack(x)
    one = _core.pack_rows(x, num_threads=1, isa=isa)
    two = _core.pack_rows(x, num_threads=2, isa=isa)
    np.testing.assert_array_equal(one, expect)
    np.testing.assert_array_equal(two, expect)
    np.testing.assert_array_equal(_core.pack_rows(x, num_threads=0, isa=isa), expect)
    u1 = _core.unpack_rows(expect, 513, num_threads=1, isa=isa)
    u2 = _core.unpack_rows(expect, 513, num_threads=2, isa=isa)
    np.testing.assert_array_equal(u1, u2)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(u2, np.where(x < 0, -1.0, 1.0).astype(np.float32))


def test_isas_agree_and_default_isa_is_one_of_them():
    """All ISAs, and the default (isa=''), give the same words on the same input."""
    x = sample(37, 333, seed=3, special_fraction=0.2)
    results = [_core.pack_rows(x, isa=isa) for isa in ISAS] + [_core.pack_rows(x)]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    assert _core.selected_isa() in ISAS


def test_outputs_are_fresh_arrays():
    """Results are new, writable, C-contiguous arrays; read-only inputs are accepted and not modified."""
    x = sample(5, 70, seed=1, special_fraction=0.0)
    x.flags.writeable = False
    packed = _core.pack_rows(x)
    assert packed.flags.c_contiguous and packed.flags.writeable
    packed.flags.writeable = False
    back = _core.unpack_rows(packed, 70)
    assert back.flags.c_contiguous and back.flags.writeable
    back[:] = 0  # writing the result touches nothing else
    np.testing.assert_array_equal(_core.pack_rows(x), ref_pack(x))


# ---- errors: a clear ValueError, never a crash ----


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros((2, 3), np.float64), "x must be float32"),
        (np.zeros((2, 3), np.int32), "x must be float32"),
        (np.zeros(3, np.float32), r"x must be 2-D, got shape \(3,\)"),
        (np.zeros((2, 3, 4), np.float32), r"x must be 2-D, got shape \(2, 3, 4\)"),
        (np.zeros((4, 6), np.float32)[:, ::2], "C-contiguous"),
        (np.zeros((4, 6), np.float32).T, "C-contiguous"),
        (np.zeros((6, 4), np.float32)[::-1], "C-contiguous"),
        (np.broadcast_to(np.zeros(5, np.float32), (3, 5)), "C-contiguous"),
    ],
)
def test_pack_rows_rejects_bad_arrays(x, match):
    """Wrong dtype, rank or layout raises ValueError naming the problem."""
    with pytest.raises(ValueError, match=match):
        _core.pack_rows(x)


@pytest.mark.parametrize(
    ("packed", "cols", "match"),
    [
        (np.zeros((2, 2), np.int64), 100, "packed must be uint64"),
        (np.zeros((2, 2), np.float32), 100, "packed must be uint64"),
        (np.zeros(2, np.uint64), 100, "must be 2-D"),
        (np.zeros((2, 2), np.uint64), 129, r"129 cols need 3 words per row, got shape \(2, 2\)"),
        (np.zeros((2, 2), np.uint64), 64, "64 cols need 1 words"),
        (np.zeros((2, 1), np.uint64), 0, "0 cols need 0 words"),
        (np.zeros((2, 1), np.uint64), -5, "-5 cols"),
        (np.zeros((2, 4), np.uint64)[:, ::2], 100, "C-contiguous"),
    ],
)
def test_unpack_rows_rejects_bad_arrays(packed, cols, match):
    """Wrong dtype, rank, layout or a word count that does not match cols raises ValueError."""
    with pytest.raises(ValueError, match=match):
        _core.unpack_rows(packed, cols)


@pytest.mark.parametrize("threads", [-1, -100, 257, 10_000])
def test_bad_thread_counts(threads):
    """num_threads outside 0..256 raises ValueError naming the valid range."""
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="num_threads must be in 1..256"):
        _core.pack_rows(x, num_threads=threads)
    with pytest.raises(ValueError, match="num_threads must be in 1..256"):
        _core.unpack_rows(np.zeros((2, 1), np.uint64), 3, num_threads=threads)


@pytest.mark.parametrize("name", ["bogus", "AVX2", "avx-512", " scalar", "neon"])
def test_unknown_isa_name(name):
    """An unknown isa= raises ValueError that lists the valid choices."""
    with pytest.raises(ValueError, match="valid choices: scalar, avx2, avx512"):
        _core.pack_rows(np.zeros((2, 3), np.float32), isa=name)
    with pytest.raises(ValueError, match="valid choices"):
        _core.unpack_rows(np.zeros((2, 1), np.uint64), 3, isa=name)


@pytest.mark.parametrize("name", [n for n in ("avx2", "avx512") if n not in ISAS] or ["<none>"])
def test_unsupported_isa_name(name):
    """A known ISA this CPU cannot run raises ValueError naming the ones it can."""
    if name == "<none>":
        pytest.skip("this CPU runs every ISA")
    with pytest.raises(ValueError, match="valid choices here: " + ", ".join(ISAS)):
        _core.pack_rows(np.zeros((2, 3), np.float32), isa=name)


def test_non_array_arguments_raise_type_error():
    """Arguments that are not arrays at all are refused with TypeError, not a crash."""
    with pytest.raises(TypeError):
        _core.pack_rows("not an array")
    with pytest.raises(TypeError):
        _core.unpack_rows(np.zeros((1, 1), np.uint64), "64")


# ---- onebit.runtime.pack_bits / unpack_bits ----


@FAST
@given(
    lead=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    cols=st.integers(1, 150),
    seed=st.integers(0, 2**32 - 1),
)
def test_pack_bits_nd_matches_reference(lead, cols, seed):
    """pack_bits packs the last axis of any-rank float32 input as the reference does, and
    unpack_bits inverts it to the signs."""
    x = sample(int(np.prod(lead, dtype=np.int64)), cols, seed, 0.1).reshape(*lead, cols)
    packed = pack_bits(x)
    assert packed.shape == (*lead, (cols + 63) // 64) and packed.dtype == np.uint64
    np.testing.assert_array_equal(packed.reshape(-1, packed.shape[-1]), ref_pack(x.reshape(-1, cols)))
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(unpack_bits(packed, cols), np.where(x < 0, -1.0, 1.0).astype(np.float32))


@pytest.mark.parametrize(
    "call",
    [
        lambda: pack_bits(np.zeros((0, 3), np.float32)).shape == (0, 1),
        lambda: pack_bits(np.zeros((2, 0), np.float32)).shape == (2, 0),
        lambda: unpack_bits(np.zeros((3, 0), np.uint64), 0).shape == (3, 0),
    ],
    ids=["no-rows", "no-channels", "unpack-no-channels"],
)
def test_pack_bits_empty_inputs(call):
    """Empty inputs give empty outputs, as _core.pack_rows / unpack_rows do."""
    assert call()


def test_pack_bits_accepts_non_contiguous_views():
    """pack_bits copies views into contiguous memory itself (the kernel refuses them)."""
    base = sample(6, 200, seed=5, special_fraction=0.1)
    for view in (base[:, ::2], base.T, base[::-1]):
        np.testing.assert_array_equal(pack_bits(view), ref_pack(np.ascontiguousarray(view)))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: pack_bits(np.zeros((2, 3), np.float64)), "float32"),
        (lambda: pack_bits(np.float32(1.0)), "scalar"),
        (lambda: unpack_bits(np.zeros((2, 3), np.int64), 130), "uint64"),
        (lambda: unpack_bits(np.zeros((2, 3), np.uint64), 200), "200 channels need 4 words"),
        (lambda: unpack_bits(np.uint64(0), 1), "words"),
    ],
)
def test_pack_bits_errors_are_onebit_errors(call, match):
    """The runtime glue raises onebit's ConfigError (a ValueError) with a clear message."""
    with pytest.raises(ConfigError, match=match) as info:
        call()
    assert isinstance(info.value, OnebitError) and isinstance(info.value, ValueError)
