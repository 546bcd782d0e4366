"""Per-channel float steps between binary layers (onebit._core.channel_affine, channel_prelu,
add, pack_shifted): equal to numpy's separate float32 operations on every ISA and thread count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onebit import _core
from tests.conftest import kernel_settings, pack_pm

ISAS = _core.available_isas()


def ref_prelu(x, shift_in, slope, shift_out):
    """RPReLU as the runtime specifies it: z = x − shift_in; (max(z, 0) + min(z, 0)·slope) + shift_out."""
    z = x - shift_in
    return (np.maximum(z, np.float32(0)) + np.minimum(z, np.float32(0)) * slope) + shift_out


def ref_pack_shifted(x, shift):
    return pack_pm(np.where(x - shift < 0, -1, 1))


def case(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[:: 7] = 0.0  # zeros: the sign's and the PReLU's edge
    c = shape[-1]
    params = [rng.standard_normal(c).astype(np.float32) for _ in range(3)]
    params[0].reshape(-1)[:: 5] = 0.0
    return x, params


def check(x, params, isa, threads):
    a, b, d = params
    y = np.roll(x, 1)
    for t in threads:
        np.testing.assert_array_equal(_core.channel_affine(x, a, b, t, isa), x * a + b)
        np.testing.assert_array_equal(_core.channel_prelu(x, a, b, d, t, isa), ref_prelu(x, a, b, d))
        np.testing.assert_array_equal(_core.add(x, y, t, isa), x + y)
        got = _core.pack_shifted(x, a, t, isa)
        assert got.dtype == np.uint64 and got.shape == (*x.shape[:-1], (x.shape[-1] + 63) // 64)
        np.testing.assert_array_equal(got, ref_pack_shifted(x, a))


@pytest.mark.parametrize("isa", ISAS)
@kernel_settings(60)
@given(shape=st.lists(st.integers(0, 9), min_size=0, max_size=3).map(tuple), c=st.integers(1, 200),
       seed=st.integers(0, 2**32 - 1))
def test_channel_ops_match_numpy(isa, shape, c, seed):
    x, params = case((*shape, c), seed)
    check(x, params, isa, (1, 2))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", [(1, 56, 56, 64), (2, 14, 14, 1024), (3, 7, 7, 130)])
def test_channel_ops_threads_identical(isa, shape):
    """Activations large enough to be split across 2-3 threads."""
    x, params = case(shape, sum(shape))
    check(x, params, isa, (1, 2, 3))


@pytest.mark.parametrize("isa", ISAS)
@kernel_settings(60)
@given(widths=st.lists(st.integers(1, 150), min_size=1, max_size=5), rows=st.lists(st.integers(0, 6), max_size=3),
       shifted=st.booleans(), affine=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_pack_shifted_parts_is_the_sign_of_the_concat(isa, widths, rows, shifted, affine, seed):
    """Parts of any widths (bits of a part start mid-word), with or without an affine (a
    BatchNorm: x·scale + bias, each step rounded) and a shift."""
    rng = np.random.default_rng(seed)
    parts = [rng.standard_normal((*rows, c)).astype(np.float32) for c in widths]
    joined = np.concatenate(parts, axis=-1)
    c = joined.shape[-1]
    shift, scale, bias = (rng.standard_normal(c).astype(np.float32) for _ in range(3))
    z = joined * scale + bias if affine else joined
    want = ref_pack_shifted(z, shift if shifted else 0)
    kw = dict(scale=scale, bias=bias) if affine else {}
    for t in (1, 2):
        np.testing.assert_array_equal(_core.pack_shifted_parts(parts, shift if shifted else None, t, isa, **kw), want)


@pytest.mark.parametrize("isa", ISAS)
def test_pack_shifted_parts_threads(isa):
    """A DenseNet block's input: 160 + 5 × 64 channels of 56 × 56 pixels, split across threads."""
    rng = np.random.default_rng(3)
    parts = [rng.standard_normal((1, 56, 56, c)).astype(np.float32) for c in (160, 64, 64, 64, 64, 64)]
    shift = rng.standard_normal(480).astype(np.float32)
    want = ref_pack_shifted(np.concatenate(parts, axis=-1), shift)
    for t in (1, 2, 3):
        np.testing.assert_array_equal(_core.pack_shifted_parts(parts, shift, t, isa), want)


@kernel_settings(60)
@given(widths=st.lists(st.integers(1, 150), min_size=1, max_size=5), rows=st.integers(0, 9),
       planes=st.lists(st.integers(1, 4), min_size=5, max_size=5), seed=st.integers(0, 2**32 - 1))
def test_concat_bits_joins_planes(widths, rows, planes, seed):
    """A DenseNet layer's input gathered from its parts' planes (runtime/fusion.py share_signs):
    part i's bits from plane k of planes[i] side by side, parts starting mid-word, 1-3 threads,
    equal to packing the concatenation of the ±1 values."""
    rng = np.random.default_rng(seed)
    values = [np.where(rng.random((rows, c)) < 0.5, -1, 1) for c in widths]
    srcs, offsets = [], []
    for v, n in zip(values, planes):
        k = int(rng.integers(0, n))  # the plane that holds this part's bits
        stack = [pack_pm(v if j == k else -v) for j in range(n)]
        srcs.append(np.ascontiguousarray(np.concatenate(stack, axis=-1)))
        offsets.append(k * ((v.shape[-1] + 63) // 64))
    want = pack_pm(np.concatenate(values, axis=-1))
    for t in (1, 2, 3):
        np.testing.assert_array_equal(_core.concat_bits(srcs, offsets, list(widths), t), want)


def test_channel_ops_errors():
    x, v = np.zeros((2, 3, 4), np.float32), np.zeros(4, np.float32)
    w = np.zeros((2, 3, 2), np.uint64)
    cases = [
        (lambda: _core.channel_affine(x, v[:3], v), r"scale needs 4 entries"),
        (lambda: _core.channel_affine(x.astype(np.float64), v, v), "float32"),
        (lambda: _core.channel_affine(x[:, :, ::2], v[:2], v[:2]), "C-contiguous"),
        (lambda: _core.channel_prelu(x, v, v, v.astype(np.int32)), "shift_out must be float32"),
        (lambda: _core.add(x, x[0]), "one shape"),
        (lambda: _core.pack_shifted(np.float32(1.0).reshape(()), v), "at least 1-D"),
        (lambda: _core.pack_shifted(x, v, num_threads=-1), "num_threads"),
        (lambda: _core.add(x, x, isa="bogus"), "bogus"),
        (lambda: _core.pack_shifted_parts([], None), "must not be empty"),
        (lambda: _core.pack_shifted_parts([x, x[:1]], None), "agree in all but the last axis"),
        (lambda: _core.pack_shifted_parts([x, x], v), "shift needs 8 entries"),
        (lambda: _core.pack_shifted_parts([x, x.astype(np.float64)], None), "float32"),
        (lambda: _core.pack_shifted_parts([x], None, scale=v), "scale and bias must be given together"),
        (lambda: _core.pack_shifted_parts([x], None, scale=v, bias=v[:3]), "bias needs 4 entries"),
        (lambda: _core.concat_bits([], [], []), "one part at least"),
        (lambda: _core.concat_bits([w, w[:1]], [0, 0], [64, 64]), "agree in all but the last axis"),
        (lambda: _core.concat_bits([w], [1], [65]), "65 bits at word 1 do not fit its rows of 2 words"),
        (lambda: _core.concat_bits([w], [0], [0]), "at least 1 bit, got 0"),
        (lambda: _core.concat_bits([w.astype(np.int64)], [0], [64]), "uint64"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()
