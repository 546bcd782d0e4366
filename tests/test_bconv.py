"""Binary convolution and max-pool kernels (onebit._core.BinaryConv2d, bmaxpool2d).

Every ISA this CPU can run is forced in turn (isa=...). The references are plain numpy on
±1 integer tensors: the input padded with pad_value, then a sum over kernel taps of
patch @ weights.T (exact in int64), which is PyTorch's conv2d of the padded ±1 input; one
test also checks the reference itself against torch.nn.functional.conv2d.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onebit import _core
from tests.conftest import kernel_settings, pack_pm, random_pm, ref_float_stage

ISAS = _core.available_isas()
SETTINGS = kernel_settings(50)


# ---- independent numpy references ----


def out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def ref_conv(x_pm, w_pm, groups=1, stride=(1, 1), padding=(0, 0), dilation=(1, 1), pad_value=1):
    """Integer conv of ±1 NHWC x (N, H, W, C) with ±1 w (O, KH, KW, C/groups), input padded
    with pad_value: an explicit sum over taps, int64."""
    n, h, w, c = x_pm.shape
    o, kh, kw, cg = w_pm.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    og = o // groups
    oh, ow = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
    xp = np.full((n, h + 2 * ph, w + 2 * pw, c), pad_value, dtype=np.int64)
    xp[:, ph : ph + h, pw : pw + w, :] = x_pm
    y = np.zeros((n, oh, ow, o), dtype=np.int64)
    wi = w_pm.astype(np.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, ky * dh : ky * dh + sh * (oh - 1) + 1 : sh, kx * dw : kx * dw + sw * (ow - 1) + 1 : sw, :]
            for g in range(groups):
                a = patch[..., g * cg : (g + 1) * cg].reshape(-1, cg)
                y[..., g * og : (g + 1) * og] += (a @ wi[g * og : (g + 1) * og, ky, kx, :].T).reshape(n, oh, ow, og)
    return y


def ref_threshold(y, thresholds, flips):
    """Packed bits along o: +1 (bit 0) iff flips[o] * (y - thresholds[o]) >= 0."""
    plus = flips.astype(np.int64) * (y - thresholds.astype(np.int64)) >= 0
    return pack_pm(np.where(plus, 1, -1))


def ref_maxpool(x_pm, kernel, stride, padding, and_channels):
    """±1 pooling with padded positions ignored: max where and_channels, min elsewhere."""
    n, h, w, c = x_pm.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    lo = np.full((n, h + 2 * ph, w + 2 * pw, c), -9, dtype=np.int64)  # -inf for max
    hi = np.full((n, h + 2 * ph, w + 2 * pw, c), 9, dtype=np.int64)  # +inf for min
    lo[:, ph : ph + h, pw : pw + w] = x_pm
    hi[:, ph : ph + h, pw : pw + w] = x_pm
    mx = np.full((n, oh, ow, c), -9, dtype=np.int64)
    mn = np.full((n, oh, ow, c), 9, dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            sl = (slice(None), slice(ky, ky + sh * (oh - 1) + 1, sh), slice(kx, kx + sw * (ow - 1) + 1, sw))
            mx = np.maximum(mx, lo[sl])
            mn = np.minimum(mn, hi[sl])
    return np.where(and_channels, mx, mn)


def make_conv(rng, n, h, w, c, o, k, groups=1, stride=1, padding=0, dilation=1, pad_value=1):
    kh, kw = (k, k) if isinstance(k, int) else k
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    x_pm = random_pm(rng, n, h, w, c)
    w_pm = random_pm(rng, o, kh, kw, c // groups)
    conv = _core.BinaryConv2d(pack_pm(w_pm), c, groups, pair(stride), pair(padding), pair(dilation), pad_value)
    ref = ref_conv(x_pm, w_pm, groups, pair(stride), pair(padding), pair(dilation), pad_value)
    return conv, pack_pm(x_pm), ref


def check_conv(conv, x, ref, rng, isa, threads=(1, 2)):
    """run and run_threshold equal the references, identical for every thread count."""
    o = conv.out_channels
    thresholds = rng.integers(-8, 9, size=o).astype(np.int32)
    flips = np.where(rng.random(o) < 0.5, -1, 1).astype(np.int8)
    want_bits = ref_threshold(ref, thresholds, flips)
    for t in threads:
        y = conv.run(x, num_threads=t, isa=isa)
        assert y.dtype == np.int32 and y.shape == ref.shape
        np.testing.assert_array_equal(y, ref)
        bits = conv.run_threshold(x, thresholds, flips, num_threads=t, isa=isa)
        assert bits.dtype == np.uint64 and bits.shape == ref.shape[:3] + ((o + 63) // 64,)
        np.testing.assert_array_equal(bits, want_bits)
    for act in ("none", "relu", "hardtanh"):  # run_float: the float stage fused per tile
        scale, bias, ps, pb = (rng.standard_normal(o).astype(np.float32) * 0.3 for _ in range(4))
        post = rng.random() < 0.5
        want = ref_float_stage(ref, scale, bias, act, ps if post else None, pb if post else None)
        for t in threads:
            got = conv.run_float(x, scale, bias, act, ps if post else None, pb if post else None, num_threads=t, isa=isa)
            assert got.dtype == np.float32 and got.shape == ref.shape
            np.testing.assert_array_equal(got, want)


# ---- reference sanity ----


@pytest.mark.parametrize("pad_value", [-1, 0, 1])
def test_reference_matches_torch(pad_value):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x_pm = random_pm(rng, 2, 7, 8, 130)
    w_pm = random_pm(rng, 12, 3, 5, 65)
    y = ref_conv(x_pm, w_pm, groups=2, stride=(2, 1), padding=(2, 1), dilation=(1, 2), pad_value=pad_value)
    xt = torch.from_numpy(x_pm.astype(np.float64)).permute(0, 3, 1, 2)
    xt = torch.nn.functional.pad(xt, (1, 1, 2, 2), value=float(pad_value))
    wt = torch.from_numpy(w_pm.astype(np.float64)).permute(0, 3, 1, 2)
    yt = torch.nn.functional.conv2d(xt, wt, stride=(2, 1), dilation=(1, 2), groups=2)
    np.testing.assert_array_equal(y, yt.permute(0, 2, 3, 1).numpy().astype(np.int64))
    # and the max-pool reference against torch (max where the mask is set, -maxpool(-x) elsewhere)
    xp = random_pm(rng, 2, 7, 9, 5)
    t = torch.from_numpy(xp.astype(np.float64)).permute(0, 3, 1, 2)
    mx = torch.nn.functional.max_pool2d(t, 3, 2, 1).permute(0, 2, 3, 1).numpy()
    mn = -torch.nn.functional.max_pool2d(-t, 3, 2, 1).permute(0, 2, 3, 1).numpy()
    mask = np.array([True, False, True, True, False])
    np.testing.assert_array_equal(ref_maxpool(xp, (3, 3), (2, 2), (1, 1), mask), np.where(mask, mx, mn))


# ---- convolution: property tests ----


@st.composite
def conv_cases(draw):
    grouped = draw(st.booleans())
    if grouped:
        groups = draw(st.sampled_from([2, 3]))
        c = groups * 64 * draw(st.sampled_from([1, 2]))
        o = groups * draw(st.integers(1, 40))
    else:
        groups = 1
        c = draw(st.sampled_from([1, 3, 8, 16, 32, 48, 63, 64, 65, 130]))
        o = draw(st.integers(1, 70))
    kh = draw(st.sampled_from([1, 3, 5, 7]))
    kw = draw(st.sampled_from([kh, 1, 3]))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    pad_value = draw(st.sampled_from([-1, 0, 1]))
    n = draw(st.integers(1, 3))
    # input at least as big as the dilated kernel minus the padding
    h = draw(st.integers(max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0]), 15))
    w = draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1]), 15))
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(
        n=n, h=h, w=w, c=c, o=o, k=(kh, kw), groups=groups, stride=stride, padding=padding, dilation=dilation,
        pad_value=pad_value, seed=seed,
    )  # fmt: skip


@pytest.mark.parametrize("isa", ISAS)
@SETTINGS
@given(case=conv_cases())
def test_conv_matches_reference(isa, case):
    rng = np.random.default_rng(case.pop("seed"))
    conv, x, ref = make_conv(rng, **case)
    assert conv.output_shape(case["h"], case["w"]) == ref.shape[1:3]
    check_conv(conv, x, ref, rng, isa)


# ---- convolution: explicit cases ----

EXPLICIT = [
    # (n, h, w, c, o, k, groups, stride, padding, dilation)
    (1, 9, 9, 3, 16, 3, 1, 1, 1, 1),
    (2, 8, 7, 63, 33, 3, 1, 2, 1, 1),
    (2, 7, 9, 65, 40, 5, 1, 1, 2, 1),
    (1, 11, 10, 130, 70, 7, 1, 2, 3, 1),
    (3, 9, 9, 64, 64, 3, 1, 1, 2, 2),
    (2, 6, 6, 128, 64, 3, 2, 1, 1, 1),  # grouped, 32 channels of output per group
    (1, 6, 5, 128, 20, 3, 2, 1, 1, 1),  # grouped, output groups not 32-aligned
    (2, 5, 5, 192, 96, 1, 3, 1, 0, 1),  # grouped 1x1 (direct path)
    (2, 5, 7, 130, 65, 1, 1, 1, 0, 1),  # 1x1 stride 1: direct GEMM on x
    (2, 9, 8, 70, 30, 1, 1, 2, 1, 1),  # 1x1 with stride and padding: im2col
    (1, 2, 2, 65, 9, 7, 1, 1, 3, 1),  # kernel larger than the image, every pixel a border
    (1, 3, 3, 5, 7, 3, 1, 1, 4, 1),  # padding larger than the kernel: all-padding pixels
    # dense taps (one group, C < 64): C bits per tap, one after the other, in a row of words_for(KH*KW*C) words
    (2, 9, 10, 32, 40, 3, 1, 1, 1, 1),  # QuickNet's 32-channel 3x3: 32-bit lanes, the interior in registers
    (1, 9, 9, 32, 33, 3, 1, 2, 1, 2),  # strided and dilated interior
    (1, 8, 7, 16, 20, 3, 1, 1, 1, 1),  # 16-bit lanes
    (2, 7, 9, 8, 70, 5, 1, 1, 2, 1),  # 8-bit lanes, a 5x5 kernel (no register path)
    (1, 9, 8, 48, 30, 3, 1, 1, 1, 1),  # 48 channels: taps straddle words
    (1, 6, 6, 63, 9, 3, 1, 1, 0, 1),  # 63 channels: 9 taps in 9 words, no saving: one word per tap
]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("pad_value", [-1, 0, 1])
@pytest.mark.parametrize("case", EXPLICIT, ids=lambda c: "n{}_{}x{}_c{}_o{}_k{}_g{}_s{}_p{}_d{}".format(*c))
def test_conv_explicit(isa, pad_value, case):
    n, h, w, c, o, k, groups, stride, padding, dilation = case
    rng = np.random.default_rng(hash(case) % 2**32)
    conv, x, ref = make_conv(rng, n, h, w, c, o, k, groups, stride, padding, dilation, pad_value)
    check_conv(conv, x, ref, rng, isa)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(
    "case",
    [
        # big enough for 2-3 threads even on avx512: balanced pixel tasks (4 or 2 per
        # thread), and the output-channel split of images with a few pixels per thread
        (1, 8, 8, 512, 512, 3, 1, 0),  # batch 1, small image: 2 pixel tasks per thread
        (1, 3, 3, 512, 512, 3, 1, 0),  # 9 pixels: channel split
        (1, 13, 11, 256, 256, 3, 1, 1),  # 143 pixels, not a multiple of any task count
        (4, 16, 16, 128, 256, 3, 1, 0),  # pixel tiles
        (2, 16, 16, 512, 200, 3, 2, 0),  # grouped, 100 outputs per group: no channel split for thresholds
        (4, 9, 9, 64, 96, 3, 1, -1),  # several threads on scalar / avx2 only
    ],
)
def test_conv_threads_identical(isa, case):
    n, h, w, c, o, k, groups, pad_value = case
    rng = np.random.default_rng(7)
    conv, x, ref = make_conv(rng, n, h, w, c, o, k, groups, 1, 1, 1, pad_value)
    check_conv(conv, x, ref, rng, isa, threads=(1, 2, 3))


def test_conv_all_isas_identical_and_default():
    rng = np.random.default_rng(3)
    conv, x, ref = make_conv(rng, 2, 9, 9, 100, 45, 3, 1, 2, 1, 1, 0)
    for isa in ISAS:
        np.testing.assert_array_equal(conv.run(x, isa=isa), ref)
    np.testing.assert_array_equal(conv.run(x), ref)
    y, t_im2col, t_gemm, t_epi = conv._run_profiled(x, num_threads=1)
    np.testing.assert_array_equal(y, ref)
    assert t_im2col >= 0 and t_gemm > 0 and t_epi >= 0


def test_conv_batch_zero_and_properties():
    rng = np.random.default_rng(4)
    w = pack_pm(random_pm(rng, 6, 3, 5, 64))
    conv = _core.BinaryConv2d(w, 128, groups=2, stride=(2, 1), padding=(1, 2), dilation=(1, 2), pad_value=0)
    assert conv.out_channels == 6 and conv.in_channels == 128 and conv.groups == 2
    assert conv.kernel_size == (3, 5) and conv.stride == (2, 1) and conv.padding == (1, 2)
    assert conv.dilation == (1, 2) and conv.pad_value == 0
    assert conv.output_shape(9, 9) == (5, 5)
    # ints accepted for the pairs
    conv2 = _core.BinaryConv2d(np.ascontiguousarray(w[:, :, :3]), 128, 2, 2, 1, 1)
    assert conv2.stride == (2, 2) and conv2.padding == (1, 1) and conv2.dilation == (1, 1) and conv2.pad_value == 1
    x = np.zeros((0, 9, 9, 2), np.uint64)
    assert conv.run(x).shape == (0, 5, 5, 6)
    t, f = np.zeros(6, np.int32), np.ones(6, np.int8)
    assert conv.run_threshold(x, t, f).shape == (0, 5, 5, 1)


# ---- max-pool ----


def random_mask(rng, c):
    return rng.random(c) < 0.5


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(
    "case",
    [
        # (n, h, w, c, kernel, stride, padding)
        (2, 8, 8, 64, 2, 2, 0),
        (1, 9, 7, 3, 2, 2, 0),
        (2, 9, 9, 130, 3, 2, 1),
        (3, 10, 7, 65, 3, 2, 1),
        (1, 5, 6, 200, (3, 2), (1, 2), (1, 0)),
        (2, 4, 4, 1, 1, 1, 0),
        (1, 33, 31, 512, 3, 1, 1),  # big enough for several threads
    ],
)
@pytest.mark.parametrize("mask", ["random", "all", "none"])
def test_maxpool(isa, case, mask):
    n, h, w, c, k, s, p = case
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    rng = np.random.default_rng(c * 1000 + h)
    x_pm = random_pm(rng, n, h, w, c)
    and_channels = {"random": random_mask(rng, c), "all": np.ones(c, bool), "none": np.zeros(c, bool)}[mask]
    want = pack_pm(ref_maxpool(x_pm, pair(k), pair(s), pair(p), and_channels))
    and_mask = pack_pm(np.where(and_channels, -1, 1)[None])[0]
    for threads in (1, 2):
        got = _core.bmaxpool2d(pack_pm(x_pm), c, k, s, p, and_mask, num_threads=threads, isa=isa)
        assert got.dtype == np.uint64 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_maxpool_then_threshold_equals_threshold_then_pool():
    """Why the mask: max-pool of the integers then threshold == AND-pool (flip +1) or
    OR-pool (flip -1) of the thresholded bits."""
    rng = np.random.default_rng(11)
    conv, x, y = make_conv(rng, 2, 8, 8, 64, 70, 3, 1, 1, 1, 1, 1)
    thresholds = rng.integers(-6, 7, size=70).astype(np.int32)
    flips = np.where(rng.random(70) < 0.5, -1, 1).astype(np.int8)
    bits = conv.run_threshold(x, thresholds, flips)
    pooled_y = y.reshape(2, 4, 2, 4, 2, 70).max(axis=(2, 4))
    want = ref_threshold(pooled_y, thresholds, flips)
    and_mask = pack_pm(np.where(flips > 0, -1, 1)[None])[0]
    np.testing.assert_array_equal(_core.bmaxpool2d(bits, 70, 2, 2, 0, and_mask), want)


# ---- float output with the fused steps after it (residual, RPReLU, signs) ----


def ref_prelu(z, shift_in, slope, shift_out):
    u = z - shift_in
    return (np.maximum(u, np.float32(0)) + np.minimum(u, np.float32(0)) * slope) + shift_out


def check_fused_float(conv, x, ref, rng, isa, threads=(1, 2)):
    """run_float(gate=, residual=, prelu=, residual_last=, signs=, sign_shift=) equals the numpy
    steps one by one."""
    o = ref.shape[-1]
    scale, bias, ps, pb, si, sl, so, sh = (rng.standard_normal(o).astype(np.float32) * 0.3 for _ in range(8))
    residual = rng.standard_normal(ref.shape).astype(np.float32)
    for act in ("none", "relu", "hardtanh"):
        post = (ps, pb) if rng.random() < 0.5 else (None, None)
        use_res, shift = rng.random() < 0.7, sh if rng.random() < 0.5 else None
        prelu = [None, (si, sl, so), (si, sl, so), "relu"][rng.integers(4)]
        gate = rng.standard_normal((ref.shape[0], o)).astype(np.float32) if rng.random() < 0.5 else None
        last = use_res and isinstance(prelu, tuple) and rng.random() < 0.5  # Real-to-Binary Net's order
        want = ref_float_stage(ref, scale, bias, act, *post)
        if gate is not None:
            want = want * gate[:, None, None, :]  # the unfused channel_mul node's numpy
        if use_res and not last:
            want = want + residual
        if prelu == "relu":
            want = np.maximum(want, np.float32(0))  # the unfused node's numpy
        elif prelu is not None:
            want = ref_prelu(want, si, sl, so)
        if last:
            want = want + residual
        want_bits = pack_pm(np.where(want - (0 if shift is None else shift) < 0, -1, 1))
        for t in threads:
            kw = dict(residual=residual if use_res else None, prelu=prelu, gate=gate, residual_last=last)
            got, bits = conv.run_float(x, scale, bias, act, *post, num_threads=t, isa=isa, signs=True, sign_shift=shift,
                                       **kw)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(bits, want_bits)
            np.testing.assert_array_equal(conv.run_float(x, scale, bias, act, *post, num_threads=t, isa=isa, **kw), want)


@pytest.mark.parametrize("isa", ISAS)
def test_fused_relu_is_numpys_maximum_bit_for_bit(isa):
    """prelu='relu' gives numpy.maximum(z, 0)'s bits, the unfused node's, on its edge cases too:
    -0 and every negative -> +0, NaN kept (the residual carries them into z)."""
    rng = np.random.default_rng(7)
    conv, x, ref = make_conv(rng, 1, 4, 4, 64, 48, 3, 1, 1, 1, 1, 1)
    zero = np.zeros(48, np.float32)
    residual = rng.standard_normal(ref.shape).astype(np.float32)
    edge = np.array([-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf, -1e-45, 1e-45], np.float32)
    residual.flat[: edge.size] = edge
    z = ref.astype(np.float32) * zero  # 0 * y: +0 or -0 where y < 0; the residual decides
    want = np.maximum(z + residual, np.float32(0))
    got = conv.run_float(x, zero, zero, "none", residual=residual, prelu="relu", isa=isa)
    assert got.tobytes() == want.tobytes()
    assert not np.signbit(got[got == 0]).any()


@pytest.mark.parametrize("isa", ISAS)
@SETTINGS
@given(case=conv_cases())
def test_fused_float_steps_match_reference(isa, case):
    rng = np.random.default_rng(case.pop("seed"))
    conv, x, ref = make_conv(rng, **case)
    check_fused_float(conv, x, ref, rng, isa)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", [(1, 56, 56, 64, 64), (1, 7, 7, 512, 512), (1, 3, 3, 256, 256), (2, 9, 7, 130, 70)])
def test_fused_float_steps_threads(isa, case):
    """Big enough for 2-3 threads; the 3x3 image would split output channels but for the signs."""
    n, h, w, c, o = case
    rng = np.random.default_rng(h * o)
    conv, x, ref = make_conv(rng, n, h, w, c, o, 3, 1, 1, 1, 1, 1)
    check_fused_float(conv, x, ref, rng, isa, threads=(1, 2, 3))


def test_fused_float_steps_errors():
    conv = _core.BinaryConv2d(_w(o=4, k=3, c=64), 64, padding=(1, 1))
    x = np.zeros((1, 5, 5, 1), np.uint64)
    v = np.zeros(4, np.float32)
    r = np.zeros((1, 5, 5, 4), np.float32)
    cases = [
        (lambda: conv.run_float(x, v, v, residual=r[:, :4]), r"residual must have the output's shape \(1, 5, 5, 4\)"),
        (lambda: conv.run_float(x, v, v, residual=r.astype(np.float64)), "residual must be float32"),
        (lambda: conv.run_float(x, v, v, residual=[1.0]), "residual must be a numpy array"),
        (lambda: conv.run_float(x, v, v, prelu=(v, v)), r"prelu must be \(shift_in, slope, shift_out\)"),
        (lambda: conv.run_float(x, v, v, prelu="gelu"), r"prelu must be \(shift_in, slope, shift_out\) or 'relu', got 'gelu'"),
        (lambda: conv.run_float(x, v, v, prelu=(v, v[:3], v)), "prelu slope needs 4 entries"),
        (lambda: conv.run_float(x, v, v, sign_shift=v), "sign_shift needs signs=True"),
        (lambda: conv.run_float(x, v, v, residual_last=True), "residual_last needs a residual"),
        (lambda: conv.run_float(x, v, v, gate=v), "gate must be 2-D"),
        (lambda: conv.run_float(x, v, v, gate=np.zeros((2, 4), np.float32)), r"gate must be \(N, O\)"),
        (lambda: conv.run_float(x, v, v, gate=np.zeros((1, 4), np.float64)), "gate must be float32"),
        (lambda: conv.run_float(x, v, v, signs=True, sign_shift=v[:2]), "sign_shift needs 4 entries"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


# ---- threshold with a fused max-pool ----


@st.composite
def fused_pool_cases(draw):
    case = draw(conv_cases())
    oh = out_size(case["h"], case["k"][0], case["stride"][0], case["padding"][0], case["dilation"][0])
    ow = out_size(case["w"], case["k"][1], case["stride"][1], case["padding"][1], case["dilation"][1])
    kernel = (draw(st.integers(1, min(3, oh))), draw(st.integers(1, min(3, ow))))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    return case, kernel, stride, padding


def check_fused_pool(conv, x, ref, rng, isa, kernel, stride, padding, threads=(1, 2, 3)):
    o = ref.shape[-1]
    thresholds = rng.integers(-6, 7, size=o).astype(np.int32)
    flips = np.where(rng.random(o) < 0.5, -1, 1).astype(np.int8)
    bits = pm_of(ref_threshold(ref, thresholds, flips), o)
    want = pack_pm(ref_maxpool(bits, kernel, stride, padding, flips > 0))
    and_mask = pack_pm(np.where(flips > 0, -1, 1)[None])[0]
    for t in threads:
        got = conv.run_threshold(x, thresholds, flips, num_threads=t, isa=isa, pool=(kernel, stride, padding),
                                 and_mask=and_mask)
        assert got.dtype == np.uint64 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def pm_of(bits, c):
    """The ±1 int8 values of packed bits (bit set = -1), c channels."""
    b = np.unpackbits(bits.view(np.uint8), axis=-1, bitorder="little")[..., :c]
    return np.where(b == 1, -1, 1).astype(np.int8)


@pytest.mark.parametrize("isa", ISAS)
@SETTINGS
@given(case=fused_pool_cases())
def test_fused_pool_matches_reference(isa, case):
    conv_case, kernel, stride, padding = case
    conv_case = dict(conv_case)
    rng = np.random.default_rng(conv_case.pop("seed"))
    conv, x, ref = make_conv(rng, **conv_case)
    check_fused_pool(conv, x, ref, rng, isa, kernel, stride, padding, threads=(1, 2))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(
    "case",
    [
        # (n, h, w, c, o, pool kernel, stride, padding): big enough for several threads,
        # odd 32-channel counts (a last word half the stage never writes), overlapping and
        # padded windows, batches whose tasks span images
        (1, 32, 32, 128, 128, 2, 2, 0),  # VGG-small's first pool
        (1, 8, 8, 512, 512, 2, 2, 0),
        (2, 16, 16, 256, 96, 3, 2, 1),
        (3, 15, 17, 64, 33, 3, 1, 1),
        (1, 9, 9, 256, 32, (3, 2), (3, 1), (1, 0)),
    ],
)
def test_fused_pool_threads(isa, case):
    n, h, w, c, o, k, s, p = case
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    rng = np.random.default_rng(o * 31 + h)
    conv, x, ref = make_conv(rng, n, h, w, c, o, 3, 1, 1, 1, 1, 0)
    check_fused_pool(conv, x, ref, rng, isa, pair(k), pair(s), pair(p))


def test_fused_pool_errors():
    conv = _core.BinaryConv2d(_w(o=4, k=3, c=64), 64, padding=(1, 1))
    x = np.zeros((1, 5, 5, 1), np.uint64)
    t, f = np.zeros(4, np.int32), np.ones(4, np.int8)
    m = np.zeros(1, np.uint64)
    cases = [
        (lambda: conv.run_threshold(x, t, f, pool=(2, 2, 0)), "pool and and_mask must be given together"),
        (lambda: conv.run_threshold(x, t, f, and_mask=m), "pool and and_mask must be given together"),
        (lambda: conv.run_threshold(x, t, f, pool=(2, 2), and_mask=m), r"\(kernel, stride, padding\[, padding_end\]\)"),
        (lambda: conv.run_threshold(x, t, f, pool=(2, "a", 0), and_mask=m), "pool stride"),
        (lambda: conv.run_threshold(x, t, f, pool=(2, 2, 0), and_mask=np.zeros(2, np.uint64)), "1 words"),
        (lambda: conv.run_threshold(x, t, f, pool=(2, 2, 0), and_mask=m.astype(np.int64)), "uint64"),
        (lambda: conv.run_threshold(x, t, f, pool=(2, 2, 0), and_mask=m | np.uint64(1 << 9)), "beyond channel 4"),
        (lambda: conv.run_threshold(x, t, f, pool=(6, 1, 0), and_mask=m), "smaller than the kernel"),
        (lambda: conv.run_threshold(x, t, f, pool=(2, 2, 2), and_mask=m), "padding must be in 0..kernel/2"),
        (lambda: conv.run_threshold(x, t, f, pool=(2, 2, 0), and_mask=[0]), "numpy array"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


# ---- errors ----


def _w(o=4, k=3, c=64):
    return pack_pm(np.ones((o, k, k, c), np.int8))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(weights=_w().astype(np.int64), in_channels=64), "uint64"),
        (dict(weights=_w()[0], in_channels=64), "4-D"),
        (dict(weights=np.asfortranarray(_w(4, 3, 128)), in_channels=128), "C-contiguous"),
        (dict(weights=_w(), in_channels=130), "words per tap"),
        (dict(weights=_w(c=63) | np.uint64(1 << 63), in_channels=63), "beyond channel 63"),
        (dict(weights=_w(), in_channels=0), "in_channels"),
        (dict(weights=_w(c=48), in_channels=96, groups=2), "multiple of 64"),
        (dict(weights=_w(o=3), in_channels=128, groups=2), "divisible by groups"),
        (dict(weights=_w(), in_channels=64, groups=3), "groups"),
        (dict(weights=_w(), in_channels=64, stride=(0, 1)), "stride"),
        (dict(weights=_w(), in_channels=64, dilation=(1, 0)), "dilation"),
        (dict(weights=_w(), in_channels=64, padding=(-1, 0)), "padding"),
        (dict(weights=_w(), in_channels=64, padding=(1, 2, 3)), "pair of ints"),
        (dict(weights=_w(), in_channels=64, stride=1.5), "pair of ints"),
        (dict(weights=_w(), in_channels=64, pad_value=2), "pad_value"),
        (dict(weights=np.zeros((0, 3, 3, 1), np.uint64), in_channels=64), "O, KH, KW >= 1"),
    ],
)
def test_conv_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _core.BinaryConv2d(**kwargs)


def test_conv_run_errors():
    conv = _core.BinaryConv2d(_w(o=4, k=3, c=65), 65, padding=(0, 1), pad_value=0)
    x = np.zeros((1, 5, 5, 2), np.uint64)
    t, f = np.zeros(4, np.int32), np.ones(4, np.int8)
    cases = [
        (lambda: conv.run(x.astype(np.int64)), "uint64"),
        (lambda: conv.run(x[0]), "4-D"),
        (lambda: conv.run(x[:, :, ::2]), "C-contiguous"),
        (lambda: conv.run(np.zeros((1, 5, 5, 1), np.uint64)), "words per pixel"),
        (lambda: conv.run(x | np.uint64(1 << 5)), r"pixel \(0, 0, 0\).*beyond channel 65"),
        (lambda: conv.run(np.zeros((1, 2, 5, 2), np.uint64)), "output size would be < 1"),
        (lambda: conv.run(np.zeros((1, 0, 5, 2), np.uint64)), "input size"),
        (lambda: conv.output_shape(2, 9), "output size would be < 1"),
        (lambda: conv.run(x, num_threads=-1), "num_threads"),
        (lambda: conv.run(x, isa="bogus"), "bogus"),
        (lambda: conv.run_threshold(x, t[:3], f), "4 entries"),
        (lambda: conv.run_threshold(x, t, f.astype(np.int32)), "int8"),
        (lambda: conv.run_threshold(x, t.astype(np.int64), f), "int32"),
        (lambda: conv.run_threshold(x, t, np.array([1, 0, 1, 1], np.int8)), r"\+1 or -1"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


def test_conv_run_float_errors():
    conv = _core.BinaryConv2d(pack_pm(random_pm(np.random.default_rng(0), 4, 3, 3, 64)), 64, 1, (1, 1), (1, 1), (1, 1), 1)
    x = np.zeros((1, 5, 5, 1), np.uint64)
    ones = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="scale needs 4 entries"):
        conv.run_float(x, np.ones(3, np.float32), ones)
    with pytest.raises(ValueError, match="act must be one of none, relu, hardtanh"):
        conv.run_float(x, ones, ones, "gelu")
    with pytest.raises(ValueError, match="post_scale and post_bias must be given together"):
        conv.run_float(x, ones, ones, "relu", ones, None)
    with pytest.raises(ValueError, match="bias must be float32"):
        conv.run_float(x, ones, np.ones(4))
    assert conv.run_float(x, ones, ones).shape == (1, 5, 5, 4)


def test_maxpool_errors():
    x = np.zeros((1, 4, 4, 2), np.uint64)
    m = np.zeros(2, np.uint64)
    cases = [
        (lambda: _core.bmaxpool2d(x.astype(np.int64), 65, 2, 2, 0, m), "uint64"),
        (lambda: _core.bmaxpool2d(x, 65, 2, 2, 0, m.astype(np.int64)), "uint64"),
        (lambda: _core.bmaxpool2d(x, 64, 2, 2, 0, m[:1]), "words per pixel"),
        (lambda: _core.bmaxpool2d(x, 65, 2, 2, 0, m[:1]), "and_mask must have 2 words"),
        (lambda: _core.bmaxpool2d(x, 65, 2, 2, 0, m | np.uint64(1 << 40)), "and_mask has bits set"),
        (lambda: _core.bmaxpool2d(x | np.uint64(1 << 63), 65, 2, 2, 0, m), "beyond channel 65"),
        (lambda: _core.bmaxpool2d(x, 0, 2, 2, 0, m), "channels"),
        (lambda: _core.bmaxpool2d(x, 65, 0, 2, 0, m), "kernel"),
        (lambda: _core.bmaxpool2d(x, 65, 2, 0, 0, m), "stride"),
        (lambda: _core.bmaxpool2d(x, 65, 2, 2, 2, m), "padding"),
        (lambda: _core.bmaxpool2d(x, 65, 5, 1, 0, m), "output size would be < 1"),
        (lambda: _core.bmaxpool2d(x, 65, (2, 2, 2), 2, 0, m), "pair of ints"),
        (lambda: _core.bmaxpool2d(x, 65, 2, 2, 0, m, num_threads=1000), "num_threads"),
        (lambda: _core.bmaxpool2d(x, 65, 2, 2, 0, m, isa="bogus"), "bogus"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()
