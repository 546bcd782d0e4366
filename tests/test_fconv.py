"""Float convolution and float pooling kernels (onebit._core.FloatConv2d, fconv_reference, fpool2d).

fconv_reference (fconv_scalar.cpp) is the specification: the float32 FMA chain over (kh, kw, c).
It is checked against an independent float64 numpy convolution (within the FMA-chain error
bound) and PyTorch; then every ISA this CPU can run is forced in turn (isa=...) and must give
exactly its bits, for any thread count, with the padding, the max-pool and the output stage
(scale, bias, act or packed bits) reproduced by numpy on the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from onebit import _core
from tests.conftest import kernel_settings, pack_pm

ISAS = _core.available_isas()
SETTINGS = kernel_settings(60)
U = 2.0**-24


def out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def padded(x, pad, value):
    n, h, w, c = x.shape
    xp = np.full((n, h + 2 * pad[0], w + 2 * pad[1], c), value, dtype=np.float64)
    xp[:, pad[0] : pad[0] + h, pad[1] : pad[1] + w] = x
    return xp


def conv64(x, w, groups, stride, pad, dil, pad_value):
    """float64 NHWC convolution, an explicit sum over taps (independent of the kernels)."""
    n, h, wd, c = x.shape
    o, kh, kw, cg = w.shape
    og = o // groups
    oh, ow = out_size(h, kh, stride[0], pad[0], dil[0]), out_size(wd, kw, stride[1], pad[1], dil[1])
    xp = padded(x, pad, pad_value)
    y = np.zeros((n, oh, ow, o))
    for i in range(kh):
        for j in range(kw):
            tap = xp[:, i * dil[0] : i * dil[0] + stride[0] * (oh - 1) + 1 : stride[0],
                     j * dil[1] : j * dil[1] + stride[1] * (ow - 1) + 1 : stride[1]]
            for g in range(groups):
                a = tap[..., g * cg : (g + 1) * cg]
                y[..., g * og : (g + 1) * og] += a @ w[g * og : (g + 1) * og, i, j, :].T.astype(np.float64)
    return y


def pool_ref(y, kernel, stride, pad, mean=False):
    """Max (padded positions skipped) or average (padded zeros count) of float32 NHWC y, the
    window's valid taps taken in row-major order, as the kernel specifies."""
    n, h, w, c = y.shape
    ph, pw = (h + 2 * pad[0] - kernel[0]) // stride[0] + 1, (w + 2 * pad[1] - kernel[1]) // stride[1] + 1
    out = np.zeros((n, ph, pw, c), np.float32)
    for r in range(ph):
        for q in range(pw):
            acc = None
            for i in range(kernel[0]):
                for j in range(kernel[1]):
                    ih, iw = r * stride[0] - pad[0] + i, q * stride[1] - pad[1] + j
                    if 0 <= ih < h and 0 <= iw < w:
                        v = y[:, ih, iw]
                        acc = v.copy() if acc is None else (acc + v if mean else np.maximum(acc, v))
            out[:, r, q] = acc * np.float32(1.0 / (kernel[0] * kernel[1])) if mean else acc
    return out


def stage_ref(y, scale, bias, act, bits):
    z = y * scale
    z += bias
    if bits:
        return pack_pm(np.where(z < 0, -1, 1))
    if act == "relu":
        z = np.where(z > 0, z, np.float32(0))
    elif act == "hardtanh":
        z = np.clip(z, np.float32(-1), np.float32(1))
    return z.astype(np.float32)


def problem(seed, n, h, w, c, o, kernel, groups):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    wt = rng.standard_normal((o, *kernel, c // groups)).astype(np.float32)
    return x, wt, rng


def check_all_isas(conv, x, expect, threads=(1, 2, 3), **kw):
    for isa in ISAS:
        for t in threads:
            y = conv.run(x, num_threads=t, isa=isa, **kw)
            assert y.dtype == expect.dtype and y.shape == expect.shape
            np.testing.assert_array_equal(y, expect, err_msg=f"isa={isa} threads={t} {kw.get('act')} {kw.get('bits')}")


# ---- the reference ----


@pytest.mark.parametrize("case", [
    (2, 9, 11, 3, 20, (3, 3), 1, (1, 1), (1, 1), (1, 1), 0.0),
    (1, 12, 12, 3, 64, (7, 7), 1, (2, 2), (3, 3), (1, 1), 0.0),
    (1, 8, 7, 6, 9, (3, 2), 3, (2, 1), (1, 2), (2, 1), -1.0),
    (1, 7, 7, 40, 40, (3, 3), 40, (1, 1), (1, 1), (1, 1), 1.0),
    (1, 5, 6, 96, 48, (1, 1), 1, (2, 2), (0, 0), (1, 1), 0.0),
])
def test_reference_matches_float64_and_torch(case):
    n, h, w, c, o, kernel, groups, stride, pad, dil, pv = case
    x, wt, _ = problem(sum(case[:5]), n, h, w, c, o, kernel, groups)
    y = _core.fconv_reference(x, wt, groups, stride, pad, dil, pv)
    exact = conv64(x, wt, groups, stride, pad, dil, pv)
    # An FMA chain of K terms: |error| <= K u sum |x w| (+ u |y| for the last rounding).
    kdim = kernel[0] * kernel[1] * (c // groups)
    bound = (kdim + 1) * U * conv64(np.abs(x), np.abs(wt), groups, stride, pad, dil, abs(pv))
    assert y.shape == exact.shape and y.dtype == np.float32
    assert (np.abs(y - exact) <= bound).all()
    torch = pytest.importorskip("torch")  # the sanitizer build's venv has no torch
    xt = torch.from_numpy(padded(x, pad, pv).astype(np.float32)).permute(0, 3, 1, 2)
    yt = torch.nn.functional.conv2d(xt, torch.from_numpy(wt).permute(0, 3, 1, 2), stride=stride, dilation=dil,
                                    groups=groups).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(y, yt, rtol=0, atol=1e-4 * np.abs(yt).max())


# ---- every ISA: exactly the reference's bits ----


@given(
    n=st.integers(1, 2), h=st.integers(1, 9), w=st.integers(1, 9),
    cg=st.integers(1, 5), groups=st.integers(1, 3), og=st.integers(1, 20),
    kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
    ph=st.integers(0, 2), pw=st.integers(0, 2), dh=st.integers(1, 2), dw=st.integers(1, 2),
    pv=st.sampled_from([0.0, -1.0, 1.0, 0.5]), seed=st.integers(0, 2**16),
)
@SETTINGS
def test_raw_matches_reference(n, h, w, cg, groups, og, kh, kw, sh, sw, ph, pw, dh, dw, pv, seed):
    assume(out_size(h, kh, sh, ph, dh) >= 1 and out_size(w, kw, sw, pw, dw) >= 1)
    c, o = cg * groups, og * groups
    x, wt, _ = problem(seed, n, h, w, c, o, (kh, kw), groups)
    conv = _core.FloatConv2d(wt, c, groups, (sh, sw), (ph, pw), (dh, dw), pv)
    ref = _core.fconv_reference(x, wt, groups, (sh, sw), (ph, pw), (dh, dw), pv)
    check_all_isas(conv, x, ref, threads=(1, 2))


@given(
    c=st.integers(1, 80), kh=st.integers(1, 3), kw=st.integers(1, 3), s=st.integers(1, 2), p=st.integers(0, 1),
    d=st.integers(1, 2), h=st.integers(3, 8), seed=st.integers(0, 2**16),
)
@SETTINGS
def test_depthwise_matches_reference(c, kh, kw, s, p, d, h, seed):
    assume(out_size(h, kh, s, p, d) >= 1 and out_size(h + 1, kw, s, p, d) >= 1)
    x, wt, _ = problem(seed, 1, h, h + 1, c, c, (kh, kw), c)
    conv = _core.FloatConv2d(wt, c, c, s, p, d, 0.0)
    assert conv.depthwise
    check_all_isas(conv, x, _core.fconv_reference(x, wt, c, s, p, d, 0.0), threads=(1, 2))


@given(
    o=st.integers(1, 70), groups=st.sampled_from([1, 2]), act=st.sampled_from(["none", "relu", "hardtanh"]),
    bits=st.booleans(), pool=st.sampled_from([None, ((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (1, 0))]),
    seed=st.integers(0, 2**16),
)
@SETTINGS
def test_pool_and_stage_match_numpy(o, groups, act, bits, pool, seed):
    assume(not (bits and act != "none"))
    o = o * groups
    x, wt, rng = problem(seed, 2, 9, 8, 2 * groups, o, (3, 3), groups)
    scale = rng.uniform(-2, 2, o).astype(np.float32)
    bias = (0.3 * rng.standard_normal(o)).astype(np.float32)
    conv = _core.FloatConv2d(wt, 2 * groups, groups, 1, 1, 1, 0.0)
    y = _core.fconv_reference(x, wt, groups, 1, 1, 1, 0.0)
    if pool is not None:
        y = pool_ref(y, *pool)
    expect = stage_ref(y, scale, bias, act, bits)
    check_all_isas(conv, x, expect, scale=scale, bias=bias, act=act, bits=bits, pool=pool)


@given(
    c=st.integers(1, 40), act=st.sampled_from([None, "none", "relu", "hardtanh"]), bits=st.booleans(),
    pool=st.sampled_from([((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (1, 0))]),
    seed=st.integers(0, 2**16),
)
@SETTINGS
def test_pool_stage_kernel_depthwise_and_raw(c, act, bits, pool, seed):
    """The one-pass pool + stage kernel on a depthwise conv's rows (C channels, no panel
    padding) and on raw pooled output (no stage), every ISA against numpy."""
    assume(not (bits and act != "none"))
    x, wt, rng = problem(seed, 2, 9, 8, c, c, (3, 3), c)
    conv = _core.FloatConv2d(wt, c, c, 1, 1, 1, 0.0)
    assert conv.depthwise
    y = pool_ref(_core.fconv_reference(x, wt, c, 1, 1, 1, 0.0), *pool)
    if act is None:
        check_all_isas(conv, x, y, pool=pool)
        return
    scale = rng.uniform(-2, 2, c).astype(np.float32)
    bias = (0.3 * rng.standard_normal(c)).astype(np.float32)
    check_all_isas(conv, x, stage_ref(y, scale, bias, act, bits), scale=scale, bias=bias, act=act, bits=bits,
                   pool=pool)


@pytest.mark.parametrize("groups", [1, 2, 32])
def test_fused_stage_with_panel_multiple_groups(groups):
    """O / groups a multiple of 16 (the stage fused into the micro-kernel per group) and depthwise."""
    o = 64 if groups < 32 else 32
    x, wt, rng = problem(groups, 1, 10, 10, 32, o, (3, 3), groups)
    scale, bias = rng.standard_normal(o).astype(np.float32), rng.standard_normal(o).astype(np.float32)
    conv = _core.FloatConv2d(wt, 32, groups, 1, 1, 1, 0.0)
    y = _core.fconv_reference(x, wt, groups, 1, 1, 1, 0.0)
    for bits in (False, True):
        expect = stage_ref(y, scale, bias, "relu" if not bits else "none", bits)
        check_all_isas(conv, x, expect, scale=scale, bias=bias, act="relu" if not bits else "none", bits=bits)


@pytest.mark.parametrize("shape", [
    (1, 32, 32, 3, 128, (3, 3), 1, 1),    # BinaryNet VGG-small's first conv (±1 weights)
    (2, 40, 40, 3, 64, (7, 7), 2, 3),     # Bi-Real Net's stem, smaller image
    (1, 14, 14, 128, 256, (1, 1), 1, 0),  # a 1x1 shortcut
])
def test_first_layers_thread_count_independent(shape):
    n, h, w, c, o, kernel, s, p = shape
    x, wt, rng = problem(o, n, h, w, c, o, kernel, 1)
    wt = np.where(wt < 0, -1.0, 1.0).astype(np.float32) if c == 3 and kernel == (3, 3) else wt
    scale, bias = rng.standard_normal(o).astype(np.float32), rng.standard_normal(o).astype(np.float32)
    conv = _core.FloatConv2d(wt, c, 1, s, p, 1, 0.0)
    ref = _core.fconv_reference(x, wt, 1, s, p, 1, 0.0)
    for bits, pool in ((True, None), (False, None), (False, ((3, 3), (2, 2), (1, 1)))):
        y = pool_ref(ref, *pool) if pool else ref
        expect = stage_ref(y, scale, bias, "none" if bits else "relu", bits)
        check_all_isas(conv, x, expect, threads=(1, 2, 3, 4), scale=scale, bias=bias,
                       act="none" if bits else "relu", bits=bits, pool=pool)


def test_profile_returns_times():
    x, wt, _ = problem(0, 1, 8, 8, 3, 16, (3, 3), 1)
    conv = _core.FloatConv2d(wt, 3, 1, 1, 1, 1, 0.0)
    y, prep, gemm, stage = conv.run(x, num_threads=1, profile=True)
    np.testing.assert_array_equal(y, _core.fconv_reference(x, wt, 1, 1, 1, 1, 0.0))
    assert prep >= 0 and gemm > 0 and stage >= 0


# ---- float pooling ----


@given(
    h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 40), kh=st.integers(1, 4), kw=st.integers(1, 4),
    sh=st.integers(1, 3), sw=st.integers(1, 3), mean=st.booleans(), seed=st.integers(0, 2**16),
)
@SETTINGS
def test_fpool2d_matches_numpy(h, w, c, kh, kw, sh, sw, mean, seed):
    ph, pw = kh // 2, kw // 2
    assume((h + 2 * ph - kh) // sh + 1 >= 1 and (w + 2 * pw - kw) // sw + 1 >= 1)
    x = np.random.default_rng(seed).standard_normal((2, h, w, c)).astype(np.float32)
    expect = pool_ref(x, (kh, kw), (sh, sw), (ph, pw), mean)
    for t in (1, 2):
        np.testing.assert_array_equal(_core.fpool2d(x, (kh, kw), (sh, sw), (ph, pw), mean, t), expect)
    for isa in ISAS:  # each ISA's max kernel
        np.testing.assert_array_equal(_core.fpool2d(x, (kh, kw), (sh, sw), (ph, pw), mean, 1, isa=isa), expect)


def test_fpool2d_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal((2, 17, 15, 24)).astype(np.float32)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    mx = torch.nn.functional.max_pool2d(xt, 3, 2, 1).permute(0, 2, 3, 1).numpy()
    av = torch.nn.functional.avg_pool2d(xt, 2, 2, 0).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(_core.fpool2d(x, 3, 2, 1, False, 2), mx)
    np.testing.assert_allclose(_core.fpool2d(x, 2, 2, 0, True, 2), av, rtol=1e-6, atol=1e-6)


# ---- bad arguments: clear errors, no crash ----


def test_bad_arguments_raise():
    wt = np.ones((8, 3, 3, 2), np.float32)
    with pytest.raises(ValueError, match="groups"):
        _core.FloatConv2d(wt, 3, 1)
    with pytest.raises(ValueError, match="stride"):
        _core.FloatConv2d(wt, 2, 1, (0, 1))
    conv = _core.FloatConv2d(wt, 2, 1, 1, 0, 1, 0.0)
    x = np.zeros((1, 5, 5, 2), np.float32)
    with pytest.raises(ValueError, match="channels"):
        conv.run(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match="too small"):
        conv.run(np.zeros((1, 2, 5, 2), np.float32))
    with pytest.raises(ValueError, match="together"):
        conv.run(x, scale=np.ones(8, np.float32))
    with pytest.raises(ValueError, match="8 entries"):
        conv.run(x, scale=np.ones(7, np.float32), bias=np.ones(7, np.float32))
    with pytest.raises(ValueError, match="act must be"):
        conv.run(x, scale=np.ones(8, np.float32), bias=np.ones(8, np.float32), act="gelu")
    with pytest.raises(ValueError, match="need scale"):
        conv.run(x, bits=True)
    with pytest.raises(ValueError, match="padding"):
        conv.run(x, scale=np.ones(8, np.float32), bias=np.ones(8, np.float32), pool=(2, 2, 2))
    with pytest.raises(ValueError, match="float32"):
        conv.run(x.astype(np.float64))
    with pytest.raises(ValueError, match="does not fit"):
        _core.fpool2d(x, 7, 1, 0)


# ---- in a model: the runtime's float-input first conv ----


def test_model_first_conv_thread_count_independent(tmp_path):
    """BinaryNet's VGG-small (narrow) exported: its float-input first conv runs in FloatConv2d
    (±1 weights expanded at load, the sign of the next layer fused); the logits match
    PyTorch and are the same bits for 1, 2 and 3 threads."""
    torch = pytest.importorskip("torch")
    from onebit.export import export
    from onebit.models import create_model
    from onebit.runtime import load

    torch.manual_seed(0)
    model = create_model("binarynet_cnn", num_classes=10, in_shape=(3, 16, 16), channels=(16, 32, 64), hidden=64)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-2, 2)
            m.running_var.uniform_(1, 4)
    model.eval()
    path = tmp_path / "vgg.onebit"
    export(model, path, torch.randn(2, 3, 16, 16), verbose=False)
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    engine = load(path, num_threads=1)
    assert engine.layers[1].kind == "binary weights, float input"
    first = engine(x)
    with torch.no_grad():
        expect = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(first, expect, rtol=0, atol=1e-4 * np.abs(expect).max())
    for t in (2, 3):
        engine.num_threads = t
        np.testing.assert_array_equal(engine(x), first)


# ---- the FMA peak loop (the float side of benchmarks/bench_roofline.py) ----


@pytest.mark.parametrize("isa", [n for n in _core.available_isas() if n in ("avx2", "avx512")] or ["<none>"])
def test_peak_float_macs(isa):
    """16 chains x 16 lanes (AVX-512) or 12 x 8 (AVX2) MACs per iteration, linear in iters, positive time."""
    if isa == "<none>":
        pytest.skip("no FMA ISA on this CPU")
    macs, seconds = _core.peak_float_macs(isa, 1000)
    assert macs == 1000 * (16 * 16 if isa == "avx512" else 12 * 8) and seconds > 0
    assert _core.peak_float_macs(isa, 3000)[0] == 3 * macs


def test_peak_float_macs_errors():
    """No loop for the scalar reference, iters >= 1: ValueError naming the valid choices / the rule."""
    with pytest.raises(ValueError, match=r"no FMA peak loop for scalar \(valid: avx2, avx512"):
        _core.peak_float_macs("scalar", 10)
    with pytest.raises(ValueError, match="unknown|valid"):
        _core.peak_float_macs("sse9", 10)
    if "avx512" in _core.available_isas():
        with pytest.raises(ValueError, match="iters must be >= 1"):
            _core.peak_float_macs("avx512", 0)
