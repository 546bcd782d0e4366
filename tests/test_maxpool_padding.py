"""Max-pools with TensorFlow's "same" padding: a bottom/right padding (``padding_end``) that differs
from the top/left one, padded positions never winning the max (−∞).

Kernels (``bmaxpool2d``, ``fpool2d``, the pools fused into ``BinaryConv2d.run_threshold`` and
``FloatConv2d.run``) against numpy references that pad explicitly (−∞ for the max, +∞ for the
min of the binary kernel's OR channels) on every ISA this CPU runs; then the exporter's fold of
``ConstantPad2d(−∞)`` (or any pad value that cannot win: ≤ −1 after a sign, ≤ 0 after a ReLU)
before ``nn.MaxPool2d`` into the ``maxpool2d`` node, run by the engine equal to PyTorch.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import onebit.runtime as rt
from onebit import _core
from onebit.errors import ExportError
from onebit.export import export
from onebit.nn import QuantConv2d, QuantLinear
from onebit.nn.quantizers import SteSign
from onebit.runtime.container import read_container, write_container
from tests.conftest import kernel_settings, pack_pm, random_pm
from tests.exporting import check_export, randomize_bn, refuses
from tests.test_bconv import make_conv, pm_of, ref_threshold

ISAS = _core.available_isas()
SETTINGS = kernel_settings(40)


# ---- references: pad explicitly, then the plain window max ----


def padded_windows(x, kernel, stride, pad, pad_end, fill):
    """x (N, H, W, C) padded with ``fill`` (top, left) = pad, (bottom, right) = pad_end, and the
    (OH, OW) of floor-mode windows on it."""
    n, h, w, c = x.shape
    xp = np.full((n, h + pad[0] + pad_end[0], w + pad[1] + pad_end[1], c), fill, dtype=x.dtype)
    xp[:, pad[0] : pad[0] + h, pad[1] : pad[1] + w] = x
    oh, ow = (xp.shape[1] - kernel[0]) // stride[0] + 1, (xp.shape[2] - kernel[1]) // stride[1] + 1
    return xp, oh, ow


def ref_max(x, kernel, stride, pad, pad_end, fill, reduce=np.maximum):
    xp, oh, ow = padded_windows(x, kernel, stride, pad, pad_end, fill)
    out = np.full((x.shape[0], oh, ow, x.shape[3]), fill, dtype=x.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            out = reduce(out, xp[:, i : i + stride[0] * (oh - 1) + 1 : stride[0], j : j + stride[1] * (ow - 1) + 1 : stride[1]])
    return out


def ref_pool_pm(x_pm, kernel, stride, pad, pad_end, and_channels):
    """±1 pool: max (−∞ padding) where and_channels, min (+∞ padding) elsewhere."""
    x = x_pm.astype(np.int64)
    mx = ref_max(x, kernel, stride, pad, pad_end, -9)
    mn = ref_max(x, kernel, stride, pad, pad_end, 9, np.minimum)
    assert (np.abs(mx) == 1).all() and (np.abs(mn) == 1).all()  # every window holds an image pixel
    return np.where(and_channels, mx, mn)


@st.composite
def pools(draw, max_size=9):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    pad_end = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    h = draw(st.integers(max(1, kernel[0] - pad[0] - pad_end[0]), max_size))
    w = draw(st.integers(max(1, kernel[1] - pad[1] - pad_end[1]), max_size))
    return kernel, stride, pad, pad_end, h, w


# ---- kernels ----


@pytest.mark.parametrize("isa", ISAS)
@SETTINGS
@given(pool=pools(), n=st.integers(1, 2), c=st.sampled_from([1, 3, 63, 64, 65, 130]), seed=st.integers(0, 2**16))
def test_bmaxpool2d_with_padding_end_matches_reference(isa, pool, n, c, seed):
    kernel, stride, pad, pad_end, h, w = pool
    rng = np.random.default_rng(seed)
    x_pm = random_pm(rng, n, h, w, c)
    and_channels = rng.random(c) < 0.5
    want = pack_pm(ref_pool_pm(x_pm, kernel, stride, pad, pad_end, and_channels))
    and_mask = pack_pm(np.where(and_channels, -1, 1)[None])[0]
    for threads in (1, 2):
        got = _core.bmaxpool2d(pack_pm(x_pm), c, kernel, stride, pad, and_mask, threads, isa, padding_end=pad_end)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@SETTINGS
@given(pool=pools(), c=st.integers(1, 20), seed=st.integers(0, 2**16))
def test_fpool2d_with_padding_end_matches_reference(pool, c, seed):
    kernel, stride, pad, pad_end, h, w = pool
    x = np.random.default_rng(seed).standard_normal((2, h, w, c)).astype(np.float32)
    want = ref_max(x, kernel, stride, pad, pad_end, -np.inf)
    assert np.isfinite(want).all()
    for threads in (1, 2):
        np.testing.assert_array_equal(_core.fpool2d(x, kernel, stride, pad, False, threads, padding_end=pad_end), want)


@pytest.mark.parametrize("h,w", [(8, 8), (7, 9), (16, 15)])
def test_fpool2d_equals_torch_with_a_minus_inf_pad(h, w):
    """TensorFlow's "same" 3 × 3 / 2 max-pool: PyTorch's ConstantPad2d(−∞) then MaxPool2d, as the
    Larq converter writes it, equals fpool2d with padding (t, l) and padding_end (b, r)."""
    x = np.random.default_rng(h * w).standard_normal((2, h, w, 5)).astype(np.float32)
    pads = []
    for size in (h, w):
        total = max((math.ceil(size / 2) - 1) * 2 + 3 - size, 0)
        pads.append((total // 2, total - total // 2))
    (t, b), (left, r) = pads
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    want = nn.MaxPool2d(3, 2)(nn.ConstantPad2d((left, r, t, b), -math.inf)(xt)).permute(0, 2, 3, 1).numpy()
    got = _core.fpool2d(x, 3, 2, (t, left), False, 1, padding_end=(b, r))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("isa", ISAS)
@SETTINGS
@given(pool=pools(max_size=4), c=st.sampled_from([3, 64, 70]), o=st.integers(1, 70), seed=st.integers(0, 2**16))
def test_fused_binary_pool_with_padding_end(isa, pool, c, o, seed):
    kernel, stride, pad, pad_end, _, _ = pool
    rng = np.random.default_rng(seed)
    h, w = kernel[0] + 1 + seed % 5, kernel[1] + 2  # a 3 × 3 conv with padding 1 keeps the size
    conv, x, y = make_conv(rng, 2, h, w, c, o, 3, padding=1)
    thresholds = rng.integers(-6, 7, size=o).astype(np.int32)
    flips = np.where(rng.random(o) < 0.5, -1, 1).astype(np.int8)
    bits = pm_of(ref_threshold(y, thresholds, flips), o)
    want = pack_pm(ref_pool_pm(bits, kernel, stride, pad, pad_end, flips > 0))
    and_mask = pack_pm(np.where(flips > 0, -1, 1)[None])[0]
    for threads in (1, 2):
        got = conv.run_threshold(x, thresholds, flips, num_threads=threads, isa=isa,
                                 pool=(kernel, stride, pad, pad_end), and_mask=and_mask)
        np.testing.assert_array_equal(got, want)


@SETTINGS
@given(pool=pools(max_size=4), o=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_fused_float_pool_with_padding_end(pool, o, seed):
    kernel, stride, pad, pad_end, _, _ = pool
    rng = np.random.default_rng(seed)
    h, w = kernel[0] + 1 + seed % 5, kernel[1] + 2
    x = rng.standard_normal((2, h, w, 3)).astype(np.float32)
    wt = rng.standard_normal((o, 3, 3, 3)).astype(np.float32)
    conv = _core.FloatConv2d(wt, 3, 1, 1, 1, 1, 0.0)
    want = ref_max(_core.fconv_reference(x, wt, 1, 1, 1, 1, 0.0), kernel, stride, pad, pad_end, -np.inf)
    for isa in ISAS:
        for threads in (1, 2):
            got = conv.run(x, num_threads=threads, isa=isa, pool=(kernel, stride, pad, pad_end))
            np.testing.assert_array_equal(got, want)


def test_kernel_padding_end_errors():
    x = np.zeros((1, 5, 5, 1), np.uint64)
    m = np.zeros(1, np.uint64)
    with pytest.raises(ValueError, match="padding_end must be in 0..kernel/2"):
        _core.bmaxpool2d(x, 3, 3, 2, 0, m, padding_end=2)
    with pytest.raises(ValueError, match="padding_end"):
        _core.fpool2d(np.zeros((1, 5, 5, 2), np.float32), 3, 2, 0, padding_end=(0, 2))
    with pytest.raises(ValueError, match="padding_end must be an int or a pair"):
        _core.fpool2d(np.zeros((1, 5, 5, 2), np.float32), 3, 2, 0, padding_end="a")
    with pytest.raises(ValueError, match="does not fit a 2x2 input"):  # (2 - 3) // 2 + 1 truncated to 1 before
        _core.fpool2d(np.zeros((1, 2, 2, 1), np.float32), 3, 2, 0)
    conv = _core.FloatConv2d(np.zeros((2, 1, 1, 3), np.float32), 3)
    with pytest.raises(ValueError, match=r"\(kernel, stride, padding\[, padding_end\]\)"):
        conv.run(np.zeros((1, 5, 5, 3), np.float32), pool=(3, 2, 0, 1, 1))


# ---- export: the pad folds into the maxpool2d node ----


def _stem(pad: nn.Module, *before: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return randomize_bn(nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), *before, pad, nn.MaxPool2d(3, 2),
        QuantConv2d(16, 8, 3, padding=1, input_quantizer="ste_sign", weight_quantizer="ste_sign"), nn.BatchNorm2d(8),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 10)))


def _pool_nodes(path) -> list[dict]:
    _, meta = read_container(path)
    graph = json.loads(meta["onebit"])
    assert graph["version"] == 4
    return [n for n in graph["nodes"] if n["op"] == "maxpool2d"]


@pytest.mark.parametrize("pad,before,bits", [
    (nn.ConstantPad2d((0, 1, 0, 1), -math.inf), (), False),  # the Larq converter's TensorFlow "same"
    (nn.ConstantPad2d((1, 0, 0, 1), -math.inf), (nn.ReLU(),), False),
    (nn.ConstantPad2d((0, 1, 0, 1), 0.0), (nn.ReLU(),), False),  # 0 never wins after a ReLU
    (nn.ConstantPad2d((0, 1, 0, 1), -1.0), (nn.Hardtanh(),), False),
    (nn.ConstantPad2d((0, 1, 0, 1), -1.0), (SteSign(),), True),  # on packed bits
])
def test_a_pad_that_never_wins_folds_into_the_maxpool_node(pad, before, bits, tmp_path):
    model = _stem(pad, *before)
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    check_export(model, x, tmp_path / "m.onebit")
    (node,) = _pool_nodes(tmp_path / "m.onebit")
    left, right, top, bottom = pad.padding
    assert node["pool"]["padding"] == [top, left] and node["pool"]["padding_end"] == [bottom, right]
    (layer,) = [l for l in rt.load(tmp_path / "m.onebit").layers if l.name == node["name"]]
    assert layer.kind == ("binary" if bits else "float")


@pytest.mark.parametrize("pad,features,want", [
    (nn.Identity(), 8 * 3 * 4, ([1, 1], None)),
    (nn.ConstantPad2d((0, 0, 0, 1), -math.inf), 8 * 4 * 4, ([1, 1], [2, 1])),
])
def test_maxpool_with_its_own_padding(pad, features, want, tmp_path):
    """nn.MaxPool2d(padding=1) (−∞ in PyTorch) alone, where it fuses into the conv node, and with a −∞
    ConstantPad2d before it, whose padding adds to the pool's own."""
    torch.manual_seed(0)
    model = randomize_bn(nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), pad, nn.MaxPool2d(4, 2, padding=1),
        QuantConv2d(16, 8, 3, padding=1, input_quantizer="ste_sign", weight_quantizer="ste_sign"),
        nn.Flatten(), QuantLinear(features, 10, input_quantizer="ste_sign", weight_quantizer="ste_sign")))
    x = torch.randn(16, 3, 7, 8, generator=torch.Generator().manual_seed(2))
    check_export(model, x, tmp_path / "p.onebit")
    _, meta = read_container(tmp_path / "p.onebit")
    (pool,) = [n["pool"] for n in json.loads(meta["onebit"])["nodes"] if "pool" in n and n["pool"]["kernel"] == [4, 4]]
    assert (pool["padding"], pool.get("padding_end")) == want


@pytest.mark.parametrize("model,match", [
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.ConstantPad2d((0, 1, 0, 1), 0.5), nn.MaxPool2d(3, 2)),
     "with a value that never wins the max"),  # 0.5 may win: the conv's output is unbounded
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.ConstantPad2d((0, 1, 0, 1), 0.5), nn.MaxPool2d(3, 2)),
     "never wins the max"),  # above the ReLU's floor
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.ConstantPad2d((0, 2, 0, 0), -math.inf), nn.MaxPool2d(3, 2)),
     "more than half its kernel"),
    (nn.Sequential(nn.ConstantPad2d((0, 1, 0, 1), -math.inf), nn.MaxPool2d(3, 2), nn.Flatten(), nn.Linear(48, 2)),
     "needs non-negative padding of a convolution's output"),
])
def test_pads_before_a_maxpool_that_cannot_fold_are_refused(model, match, tmp_path):
    with pytest.raises(ExportError, match=match):
        export(model.eval(), tmp_path / "bad.onebit", torch.randn(2, 3, 8, 8), verbose=False)


def test_reader_checks_the_pool_padding_end(tmp_path):
    model = _stem(nn.ConstantPad2d((0, 1, 0, 1), -math.inf))
    export(model, tmp_path / "m.onebit", torch.randn(2, 3, 8, 8), verbose=False)
    tensors, meta = read_container(tmp_path / "m.onebit")
    graph = json.loads(meta["onebit"])
    i = next(i for i, n in enumerate(graph["nodes"]) if n["op"] == "maxpool2d")
    rewrite = refuses(tmp_path / "m.onebit", tmp_path / "g.onebit")

    rewrite(lambda g: g["nodes"][i]["pool"].update(padding_end=[2, 1]), r"padding_end \(2, 1\) must be at most half")
    rewrite(lambda g: g["nodes"][i]["pool"].update(padding_end=[1]), "padding_end must be two integers")
    rewrite(lambda g: g["nodes"][i].update(op="avgpool2d"), "avgpool2d takes no padding_end")
    # version 3 files (no pool padding_end) are still read
    g3 = json.loads(json.dumps(graph))
    g3["version"] = 3
    del g3["nodes"][i]["pool"]["padding_end"]
    g3["nodes"][i]["pool"]["padding"] = [1, 1]
    write_container(tmp_path / "v3.onebit", tensors, {"onebit": json.dumps(g3)})
    assert rt.load(tmp_path / "v3.onebit")(np.zeros((2, 3, 8, 8), np.float32)).shape == (2, 10)


# ---- binary convs with groups narrower than a word (depthwise): unpacked, float kernel, exact ----


@pytest.mark.parametrize("pad_value,stride,pool,same", [
    (1, 1, None, False), (-1, 2, nn.MaxPool2d(2), False), (0, 1, None, True), (0, 2, nn.MaxPool2d(3, 2, 1), True),
])
def test_binary_depthwise_conv_runs_on_the_engine(pad_value, stride, pool, same, tmp_path):
    """A binary-input depthwise conv (8 channels, one a group: BinaryConv2d packs whole words per
    group) with thresholds after it (out bits) and one with a float output, pools, every pad value,
    TensorFlow's "same" at stride 2."""
    torch.manual_seed(pad_value + 3 * stride)
    q = dict(input_quantizer="ste_sign", weight_quantizer="ste_sign")
    model = randomize_bn(nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8),
        QuantConv2d(8, 8, 3, stride=stride, padding="same" if same else 1, groups=8, pad_value=pad_value, **q),
        nn.BatchNorm2d(8), *([pool] if pool is not None else []),
        QuantConv2d(8, 16, 3, padding=1, groups=8, pad_value=pad_value, **q), nn.BatchNorm2d(16),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)))
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    check_export(model, x, tmp_path / "d.onebit")
    layers = [l for l in rt.load(tmp_path / "d.onebit").layers if l.kind.startswith("binary, unpacked")]
    assert [l.out_bits for l in layers] == [True, False]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_c_export_runs_the_padded_maxpool_and_refuses_narrow_binary_groups(tmp_path):
    from onebit.deploy import to_c
    from tests.test_deploy_c import _host_outputs, _inputs, _runtime

    export(_stem(nn.ConstantPad2d((0, 1, 0, 1), -math.inf)), tmp_path / "m.onebit", torch.randn(2, 3, 8, 8),
           verbose=False)
    x = _inputs((3, 8, 8), 8, seed=3)
    _, logits = _host_outputs(tmp_path / "m.onebit", tmp_path / "c", x)
    np.testing.assert_array_equal(logits, _runtime(tmp_path / "m.onebit", x))
    q = dict(input_quantizer="ste_sign", weight_quantizer="ste_sign")
    model = nn.Sequential(nn.Conv2d(3, 8, 3), QuantConv2d(8, 8, 3, groups=8, **q), nn.Flatten(), nn.Linear(8 * 16, 2))
    export(model.eval(), tmp_path / "d.onebit", torch.randn(2, 3, 8, 8), verbose=False)
    with pytest.raises(ExportError, match="1 channels per group, which the C export does not support"):
        to_c(tmp_path / "d.onebit", tmp_path / "dc")
